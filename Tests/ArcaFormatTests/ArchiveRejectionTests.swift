@testable import ArcaFormat
import Testing

/// Every rejection FORMAT.md lists, each with its own error and location.
@Suite struct ArchiveRejectionTests {
    let streams = [
        Sample.Stream(name: "Patient", bytes: Sample.copyText(rows: 600)),
        Sample.Stream(schema: "clinic", name: "MedicalRecord", bytes: Sample.copyText(rows: 400, seed: 3)),
    ]

    func archive() throws -> (bytes: [UInt8], manifest: Manifest) { try Sample.archive(streams) }

    func openError(_ bytes: [UInt8]) -> ArchiveError? {
        Sample.archiveError { _ = try Sample.read(bytes) }
    }

    @Test(arguments: [0, 1, 63, 64, 100, 191])
    func tooShortIsTruncated(length: Int) throws {
        let (bytes, _) = try archive()
        guard case .truncated = openError(Array(bytes.prefix(length))) else { Issue.record("expected truncated"); return }
    }

    @Test func cutAnywhereIsRejected() throws {
        let (bytes, _) = try archive()
        for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 97)) {
            #expect(openError(Array(bytes.prefix(length))) != nil, "a file cut at \(length) bytes was accepted")
        }
    }

    @Test func badMagic() throws {
        var (bytes, _) = try archive()
        bytes[1] = UInt8(ascii: "X")
        guard case .badMagic = openError(bytes) else { Issue.record("expected badMagic"); return }
    }

    @Test func unknownVersion() throws {
        var (bytes, _) = try archive()
        bytes[8] = 7
        #expect(openError(bytes) == .unsupportedVersion(7))
    }

    @Test func headerChecksum() throws {
        let (bytes, _) = try archive()
        guard case .checksumMismatch(.header, _, _) = openError(bytes.flipping(bit: 0, at: 30)) else {
            Issue.record("expected a header checksum mismatch")
            return
        }
    }

    @Test func trailerEndMagic() throws {
        let (bytes, _) = try archive()
        guard case .badTrailer = openError(bytes.flipping(bit: 1, at: bytes.count - 2)) else { Issue.record("expected badTrailer"); return }
    }

    @Test func trailerChecksum() throws {
        let (bytes, _) = try archive()
        guard case .checksumMismatch(.trailer, _, _) = openError(bytes.flipping(bit: 3, at: bytes.count - 96 + 2)) else {
            Issue.record("expected a trailer checksum mismatch")
            return
        }
    }

    @Test func manifestByteFlip() throws {
        let (bytes, _) = try archive()
        let reader = try Sample.read(bytes)
        let inPayload = Int(reader.trailer.manifestOffset) + 40
        guard case .checksumMismatch(.manifest, _, _) = openError(bytes.flipping(bit: 5, at: inPayload)) else {
            Issue.record("expected a manifest checksum mismatch")
            return
        }
        guard case .checksumMismatch(.manifest, _, _) = openError(bytes.flipping(bit: 5, at: Int(reader.trailer.manifestOffset) + 3)) else {
            Issue.record("expected a manifest frame header checksum mismatch")
            return
        }
    }

    @Test func trailerFromAnotherArchive() throws {
        let (bytes, _) = try archive()
        var other = try Sample.archive([Sample.Stream(name: "x", bytes: [1, 2, 3])]).bytes
        other.replaceSubrange(24..<40, with: [UInt8](repeating: 7, count: 16))
        let spliced = Array(bytes.dropLast(96)) + Array(other.suffix(96))
        #expect(openError(spliced) != nil)
    }

    @Test func manifestNotJSON() throws {
        let (bytes, _) = try archive()
        let damaged = try Sample.rewriteManifest(bytes) { $0 = Array("{not json".utf8) }
        guard case .invalidManifest = openError(damaged) else { Issue.record("expected invalidManifest"); return }
    }

    @Test func manifestMissingField() throws {
        let (bytes, _) = try archive()
        let damaged = try Sample.rewriteManifest(bytes) { json in
            var text = String(decoding: json, as: UTF8.self)
            text = text.replacingOccurrences(of: #""backupId":"backup_20241201_140530","#, with: "")
            json = Array(text.utf8)
        }
        #expect(openError(damaged) == .invalidManifest("field backupId is missing at the top level"))
    }

    @Test func manifestChunkOutsideTheFile() throws {
        let (bytes, _) = try archive()
        let damaged = try Sample.rewriteManifest(bytes) { json in
            json = Array(String(decoding: json, as: UTF8.self).replacingOccurrences(of: #""offset":64,"#, with: #""offset":99999999,"#).utf8)
        }
        guard case .invalidManifest = openError(damaged) else { Issue.record("expected invalidManifest"); return }
    }

    @Test func chunkPayloadDamageIsLocated() throws {
        let (bytes, manifest) = try archive()
        let table = manifest.tables[1]
        let chunk = table.parts[0].chunks[1]
        let damaged = bytes.flipping(bit: 2, at: Int(chunk.offset) + 32 + 10)

        let report = try Sample.verify(damaged)
        #expect(report.problems.count == 2)  // the chunk, and the body digest
        #expect(report.problems.first == .checksumMismatch(
            .chunk(stream: "table clinic.MedicalRecord", sequence: 1, offset: chunk.offset), expected: chunk.crc32c,
            actual: CRC32C.checksum(Array(damaged[Int(chunk.offset) + 32..<Int(chunk.offset) + 32 + Int(chunk.storedLength)]))))
        #expect(report.problems.first?.description.contains("table clinic.MedicalRecord, chunk 1") == true)

        let reader = try Sample.read(damaged)
        #expect(throws: ArchiveError.self) { try Sample.tableBytes(reader, reader.manifest.tables[1]) }
        // The other table is intact and still readable on its own.
        #expect(try Sample.tableBytes(reader, reader.manifest.tables[0]) == streams[0].bytes)
    }

    @Test func frameHeaderThatDisagreesWithTheIndex() throws {
        var (bytes, manifest) = try archive()
        try Sample.rewriteFrameHeader(&bytes, at: manifest.tables[0].parts[0].chunks[0].offset) { $0.sequence = 5 }
        let report = try Sample.verify(bytes)
        guard case .indexMismatch(.chunk(stream: "table public.Patient", sequence: 0, _), _)? = report.problems.first else {
            Issue.record("expected indexMismatch, got \(report.problems)")
            return
        }
    }

    @Test func rawLengthAboveTheChunkSize() throws {
        var (bytes, manifest) = try archive()
        try Sample.rewriteFrameHeader(&bytes, at: manifest.tables[0].parts[0].chunks[0].offset) { $0.rawLength = 1 << 30 }
        let report = try Sample.verify(bytes)
        guard case .limitExceeded? = report.problems.first else { Issue.record("expected limitExceeded, got \(report.problems)"); return }
    }

    /// Changes the first chunk's payload in place and records the new CRC in
    /// its frame header and the manifest: damage only decompression can see.
    func damagingFirstPayload(_ change: (inout ArraySlice<UInt8>) -> Void) throws -> (bytes: [UInt8], manifest: Manifest) {
        var (bytes, manifest) = try archive()
        let chunk = manifest.tables[0].parts[0].chunks[0]
        let start = Int(chunk.offset) + 32
        change(&bytes[start..<start + Int(chunk.storedLength)])
        let crc = CRC32C.checksum(Array(bytes[start..<start + Int(chunk.storedLength)]))
        try Sample.rewriteFrameHeader(&bytes, at: chunk.offset) { $0.payloadCRC = crc }
        let rewritten = try Sample.rewriteManifest(bytes) { json in
            json = Array(String(decoding: json, as: UTF8.self).replacingOccurrences(of: #""crc32c":\#(chunk.crc32c),"#, with: #""crc32c":\#(crc),"#).utf8)
        }
        return (rewritten, manifest)
    }

    @Test func corruptZstdWithAValidChecksum() throws {
        let (bytes, _) = try damagingFirstPayload { payload in
            for index in payload.startIndex + 8..<payload.endIndex - 4 { payload[index] = 0x55 }
        }
        let report = try Sample.verify(bytes)
        guard case .decompressionFailed(.chunk(stream: "table public.Patient", sequence: 0, _), _)? = report.problems.first else {
            Issue.record("expected decompressionFailed, got \(report.problems)")
            return
        }
    }

    /// Version 3: the last four bytes of a zstd chunk are the checksum of its
    /// raw content, and decompression checks them; this is the end-to-end
    /// check a restore relies on instead of the stream's MD5.
    @Test func contentChecksumMismatch() throws {
        let (bytes, _) = try damagingFirstPayload { payload in payload[payload.endIndex - 1] ^= 0x01 }
        let expected = ArchiveError.decompressionFailed(
            .chunk(stream: "table public.Patient", sequence: 0, offset: 64),
            "the decompressed bytes do not match the frame's content checksum")
        #expect(try Sample.verify(bytes).problems.first == expected)
        let reader = try Sample.read(bytes)
        #expect(throws: expected) { try reader.readTable(reader.manifest.tables[0], checking: .chunkContent) { _ in } }
    }

    /// A version-3 zstd payload without a content checksum is rejected; the
    /// same payload in a version-2 archive is read.
    @Test func contentChecksumIsRequiredFromVersionThree() throws {
        let raw = Sample.copyText(rows: 50)
        var frame = [UInt8](repeating: 0, count: ZstdCompressor.bound(raw.count))
        let length = raw.withUnsafeBytes { source in
            frame.withUnsafeMutableBytes { ZstdCompressor(level: 3).compress(source, into: $0) }
        }
        #expect(frame[4] & 0x04 != 0, "the writer's zstd frames carry a content checksum")
        // Clearing the descriptor's flag and dropping the four checksum bytes
        // leaves a valid frame without a checksum.
        var unchecked = Array(frame[0..<length - 4])
        unchecked[4] &= ~0x04
        let header = FrameHeader(
            type: .dataChunk, codec: .zstd, streamID: 0, sequence: 0, rawLength: UInt32(raw.count),
            storedLength: UInt32(unchecked.count), payloadCRC: CRC32C.checksum(unchecked))
        let location = ArchiveLocation.chunk(stream: "t", sequence: 0, offset: 64)
        let current = ChunkDecoder(maximumRawLength: raw.count, archive: try Sample.fileHeader(version: 3))
        #expect(throws: ArchiveError.decompressionFailed(location, "the zstd frame carries no content checksum, which this format version requires")) {
            try unchecked.withUnsafeBytes { _ = try current.unpack($0, frame: header, location: location) }
        }
        let older = ChunkDecoder(maximumRawLength: raw.count, archive: try Sample.fileHeader(version: 2))
        #expect(try unchecked.withUnsafeBytes { Array(try older.unpack($0, frame: header, location: location)) } == raw)
    }

    @Test func tableDigestMismatch() throws {
        let (bytes, manifest) = try archive()
        let wrong = String(repeating: "0", count: 32)
        let damaged = try Sample.rewriteManifest(bytes) { json in
            json = Array(String(decoding: json, as: UTF8.self).replacingOccurrences(of: manifest.tables[0].md5, with: wrong).utf8)
        }
        let report = try Sample.verify(damaged)
        #expect(report.problems == [.digestMismatch(.stream("table public.Patient"), algorithm: "md5", expected: wrong, actual: manifest.tables[0].md5)])
        let reader = try Sample.read(damaged)
        #expect(throws: ArchiveError.digestMismatch(.stream("table public.Patient"), algorithm: "md5", expected: wrong, actual: manifest.tables[0].md5)) {
            try Sample.tableBytes(reader, reader.manifest.tables[0])
        }
        // A restore's read checks chunks, not the stream's digests, in an
        // archive whose chunks carry content checksums; in an older one,
        // whose chunks may not, it checks the MD5.
        #expect(throws: Never.self) { try reader.readTable(reader.manifest.tables[0], checking: .chunkContent) { _ in } }
        let older = try Sample.read(try Sample.rewriteVersion(damaged, to: 2))
        #expect(throws: ArchiveError.digestMismatch(.stream("table public.Patient"), algorithm: "md5", expected: wrong, actual: manifest.tables[0].md5)) {
            try older.readTable(older.manifest.tables[0], checking: .chunkContent) { _ in }
        }
    }

    @Test func everySingleBitFlipIsDetected() throws {
        let (bytes, _) = try Sample.archive([Sample.Stream(name: "t", bytes: Sample.copyText(rows: 40))])
        for index in bytes.indices {
            let damaged = bytes.flipping(bit: index % 8, at: index)
            let detected: Bool
            do {
                detected = !(try Sample.verify(damaged).isIntact)
            } catch is ArchiveError {
                detected = true
            }
            #expect(detected, "a flipped bit at offset \(index) went unnoticed")
        }
    }
}

import Foundation
