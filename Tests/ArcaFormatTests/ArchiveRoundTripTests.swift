@testable import ArcaFormat
import Testing

@Suite struct ArchiveRoundTripTests {
    @Test func interleavedStreamsReadBackExactly() throws {
        let streams = [
            Sample.Stream(name: "Patient", bytes: Sample.copyText(rows: 900)),
            Sample.Stream(schema: "clinic", name: "record with space", bytes: Sample.copyText(rows: 250, seed: 7)),
            Sample.Stream(name: "empty", bytes: []),
            Sample.Stream(name: "one byte", bytes: [0x0A]),
            Sample.Stream(name: "noise", bytes: Sample.noise(10_000)),
        ]
        let (bytes, manifest) = try Sample.archive(streams)
        let reader = try Sample.read(bytes)
        #expect(reader.manifest == manifest)
        for (index, stream) in streams.enumerated() {
            let table = reader.manifest.tables[index]
            #expect(try Sample.tableBytes(reader, table) == stream.bytes)
            #expect(table.md5 == Hex.encode(Digest.hash(.md5, stream.bytes)))
            #expect(table.sha256 == Hex.encode(Digest.hash(.sha256, stream.bytes)))
            #expect(table.rawBytes == UInt64(stream.bytes.count))
            #expect(table.parts[0].chunks.count == (stream.bytes.count + 4095) / 4096)
        }
        // Streams interleave: the first chunk of the second stream precedes the last of the first.
        #expect(reader.manifest.tables[1].parts[0].chunks[0].offset < reader.manifest.tables[0].parts[0].chunks.last!.offset)

        let report = try Sample.verify(bytes)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.chunksChecked == reader.manifest.tables.reduce(0) { $0 + $1.parts[0].chunks.count })
        #expect(report.fileMD5 == Hex.encode(Digest.hash(.md5, bytes)))
    }

    @Test func incompressibleChunksAreStored() throws {
        let (bytes, _) = try Sample.archive([Sample.Stream(name: "noise", bytes: Sample.noise(8192))])
        let reader = try Sample.read(bytes)
        let chunk = reader.manifest.tables[0].parts[0].chunks[0]
        let header = try FrameHeader.decode(Array(bytes[Int(chunk.offset)..<Int(chunk.offset) + 32]), at: chunk.offset, in: reader.header)
        #expect(header.codec == .stored)
        #expect(header.storedLength == header.rawLength)
        #expect(try Sample.tableBytes(reader, reader.manifest.tables[0]) == Sample.noise(8192))
    }

    @Test func compressibleChunksAreCompressed() throws {
        let text = Sample.copyText(rows: 2000)
        let (bytes, manifest) = try Sample.archive([Sample.Stream(name: "text", bytes: text)], chunkSize: 65536)
        #expect(manifest.tables[0].storedBytes * 3 < manifest.tables[0].rawBytes)
        #expect(bytes.count < text.count / 3)
    }

    @Test func uncompressedArchivesWork() throws {
        let text = Sample.copyText(rows: 300)
        let (bytes, _) = try Sample.archive([Sample.Stream(name: "t", bytes: text)], level: nil)
        let reader = try Sample.read(bytes)
        #expect(try Sample.tableBytes(reader, reader.manifest.tables[0]) == text)
        #expect(try Sample.verify(bytes).isIntact)
    }
}

/// The smallest valid archive, byte by byte (FORMAT.md, "Example").
@Suite struct GoldenArchiveTests {
    /// Version 1 (before encryption), version 2 (before required content
    /// checksums), version 3 (a stream per large object), version 4 (no
    /// references to other archives) and version 5 (no binary tables) are
    /// still read; an unencrypted version-6 archive without large objects,
    /// references or `copyFormat` is a valid archive of each, once its
    /// manifest has their `largeObjects` array.
    @Test(arguments: [UInt16(1), 2, 3, 4, 5])
    func olderVersionsAreStillRead(version: UInt16) throws {
        let rows = Sample.copyText(rows: 100)
        let (current, _) = try Sample.archive([Sample.Stream(name: "t", bytes: rows)])
        let reader = try Sample.read(try Sample.rewriteVersion(current, to: version))
        #expect(reader.header.version == version && reader.manifest.formatVersion == Int(version))
        #expect(try Sample.tableBytes(reader, reader.manifest.tables[0]) == rows)
    }

    @Test func smallestArchiveLayout() throws {
        let (bytes, manifest) = try Sample.archive([])
        #expect(Array(bytes[0..<8]) == [0x89, 0x41, 0x52, 0x43, 0x41, 0x0D, 0x0A, 0x1A])
        #expect(Array(bytes[8..<10]) == [6, 0])                // version
        #expect(Array(bytes[10..<12]) == [64, 0])              // header length
        #expect(Array(bytes[12..<16]) == [0, 0, 0, 0])         // flags
        #expect(Array(bytes[16..<20]) == [0x00, 0x10, 0, 0])   // chunk size 4096
        #expect(bytes[20] == 1 && bytes[21] == 3)              // zstd, level 3
        #expect(Array(bytes[24..<40]) == Sample.archiveID.bytes)
        #expect(bytes[40..<60].allSatisfy { $0 == 0 })
        #expect(Array(bytes[60..<64]) == le32(CRC32C.checksum(Array(bytes[0..<60]))))

        #expect(bytes[64] == 2)                                // manifest frame
        #expect(Array(bytes[68..<72]) == [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(bytes[72..<80].allSatisfy { $0 == 0 })
        #expect(Array(bytes[92..<96]) == le32(CRC32C.checksum(Array(bytes[64..<92]))))

        let trailer = Array(bytes[(bytes.count - 96)...])
        #expect(Array(trailer[0..<8]) == [64, 0, 0, 0, 0, 0, 0, 0])
        #expect(UInt64(bytes.count - 96 - 64) == UInt64(trailer[8]) | UInt64(trailer[9]) << 8)
        #expect(Array(trailer[16..<32]) == Sample.archiveID.bytes)
        #expect(Array(trailer[32..<48]) == Digest.hash(.md5, Array(bytes[0..<(bytes.count - 96)])))
        #expect(Array(trailer[48..<80]) == Digest.hash(.sha256, Array(bytes[0..<(bytes.count - 96)])))
        #expect(Array(trailer[84..<88]) == le32(CRC32C.checksum(Array(trailer[0..<84]))))
        #expect(Array(trailer[88..<96]) == Array("ARCAEND".utf8) + [0x1A])

        let reader = try Sample.read(bytes)
        #expect(reader.manifest == manifest)
        #expect(reader.manifest.tables.isEmpty)
        #expect(try Sample.verify(bytes).isIntact)
    }

    @Test func manifestIsDeterministicJSON() throws {
        let (_, manifest) = try Sample.archive([])
        let json = String(decoding: manifest.encoded(), as: UTF8.self)
        #expect(json.hasPrefix(#"{"archiveId":"101112131415161718191a1b1c1d1e1f","backupId":"backup_20241201_140530","chunkSize":4096,"#))
        #expect(json.contains(#""formatVersion":6"#) && !json.contains("largeObjects"))
    }

    private func le32(_ value: UInt32) -> [UInt8] {
        [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 24)]
    }
}
