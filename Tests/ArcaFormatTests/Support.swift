@testable import ArcaFormat
import Foundation

// No `import Testing` here: the libFuzzer target (scripts/fuzz.sh) builds
// this file with ArchiveMutator.swift outside the test runner.

/// Builds small archives in memory for the format tests.
enum Sample {
    static let archiveID = ArchiveID(bytes: Array(0x10..<0x20))

    struct Stream {
        var schema = "public"
        var name: String
        var bytes: [UInt8]
    }

    /// An archive with the given streams, written chunk by chunk with the
    /// chunks of all streams interleaved round-robin, as a parallel writer would.
    /// The large-object stream's raw bytes and the count its manifest entry gives.
    struct LargeObjectStream {
        var bytes: [UInt8]
        var count: UInt64
    }

    /// `objects` framed as FORMAT.md's records, each object's bytes in
    /// segments of at most `segment` bytes.
    static func largeObjectRecords(_ objects: [(oid: UInt32, bytes: [UInt8])], segment: Int = 1000) -> LargeObjectStream {
        var stream: [UInt8] = []
        for object in objects {
            stream += LargeObjectRecords.recordHeader(object.oid)
            for start in stride(from: 0, to: object.bytes.count, by: segment) {
                let piece = object.bytes[start..<min(object.bytes.count, start + segment)]
                stream += LargeObjectRecords.segmentHeader(UInt32(piece.count)) + piece
            }
            stream += LargeObjectRecords.end
        }
        return LargeObjectStream(bytes: stream, count: UInt64(objects.count))
    }

    static func archive(
        _ streams: [Stream], chunkSize: UInt32 = 4096, level: Int32? = 3, key: ArchiveKey? = nil, archiveID: ArchiveID = Sample.archiveID,
        largeObjects: LargeObjectStream? = nil
    ) throws -> (bytes: [UInt8], manifest: Manifest) {
        let sink = MemorySink()
        let header = FileHeader(chunkSize: chunkSize, compression: level == nil ? .stored : .zstd, compressionLevel: Int8(level ?? 0), archiveID: archiveID)
        let writer = try ArchiveWriter(sink: sink, header: header, key: key)
        let encoder = writer.makeEncoder(level: level)
        let writers = streams.indices.map { StreamWriter(archive: writer, encoder: encoder, stream: UInt32($0)) }
        var offsets = streams.map { _ in 0 }
        var progressed = true
        while progressed {
            progressed = false
            for (index, stream) in streams.enumerated() where offsets[index] < stream.bytes.count {
                let end = min(stream.bytes.count, offsets[index] + Int(chunkSize))
                try stream.bytes[offsets[index]..<end].withUnsafeBytes { try writers[index].append($0) }
                offsets[index] = end
                progressed = true
            }
        }
        var tables: [Manifest.Table] = []
        for (index, stream) in streams.enumerated() {
            let summary = try writers[index].finish()
            let rows = UInt64(stream.bytes.filter { $0 == UInt8(ascii: "\n") }.count)
            tables.append(Manifest.Table(
                schema: stream.schema, name: stream.name, kind: "table", parent: nil, columns: ["a", "b"],
                parts: [Manifest.Part(stream: UInt32(index), rows: rows, summary: summary)]))
        }
        let largeObjectData = try largeObjects.map { objects in
            let writer = StreamWriter(archive: writer, encoder: encoder, stream: UInt32(streams.count))
            try objects.bytes.withUnsafeBytes { try writer.append($0) }
            return Manifest.LargeObjectData(count: objects.count, stream: UInt32(streams.count), summary: try writer.finish())
        }
        let manifest = Manifest(
            archiveId: archiveID.description, backupId: "backup_20241201_140530", startedAt: "2024-12-01T14:05:30.123Z",
            completedAt: "2024-12-01T14:05:31.000Z", tool: .init(version: "test"),
            source: .init(database: "medical", serverVersion: "15.18", serverVersionNumber: 150018, snapshot: "00000003-0000001B-1", systemIdentifier: nil, encoding: "UTF8"),
            compression: .init(level: Int(level ?? 0)), chunkSize: chunkSize, tables: tables, sequences: [], largeObjects: largeObjectData)
        _ = try writer.finish(manifest: manifest)
        return (sink.bytes, manifest)
    }

    /// Deterministic COPY-like text: `rows` lines of tab-separated fields.
    static func copyText(rows: Int, seed: Int = 1) -> [UInt8] {
        var text = ""
        for row in 0..<rows {
            text += "\(row)\tpatient \(row * seed % 997)\tnote with \\t escapes and \\\\ backslashes \(row % 13)\n"
        }
        return Array(text.utf8)
    }

    /// Bytes zstd cannot shrink.
    static func noise(_ count: Int, seed: UInt64 = 42) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
    }

    static func read(_ bytes: [UInt8], key: ArchiveKey? = nil) throws -> ArchiveReader { try ArchiveReader(source: MemorySource(bytes), key: key) }

    static func tableBytes(_ reader: ArchiveReader, _ table: Manifest.Table) throws -> [UInt8] {
        var collected: [UInt8] = []
        try reader.readTable(table) { collected.append(contentsOf: $0) }
        return collected
    }

    static func verify(_ bytes: [UInt8], key: ArchiveKey? = nil) throws -> VerificationReport {
        try ArchiveVerifier(reader: try read(bytes, key: key)).verify()
    }

    /// Rewrites the frame header at `offset` through `change`, with a valid
    /// header CRC: damage a CRC alone would not reveal.
    static func rewriteFrameHeader(_ bytes: inout [UInt8], at offset: UInt64, _ change: (inout FrameHeader) -> Void) throws {
        let start = Int(offset)
        let archive = try FileHeader.decode(Array(bytes[0..<64]))
        var header = try FrameHeader.decode(Array(bytes[start..<start + 32]), at: offset, in: archive)
        change(&header)
        bytes.replaceSubrange(start..<start + 32, with: header.encoded())
    }

    /// Replaces the manifest with `change(manifest)`, rewriting its frame and
    /// the trailer (offsets, CRCs and body digests all valid).
    static func rewriteManifest(_ bytes: [UInt8], _ change: (inout [UInt8]) -> Void) throws -> [UInt8] {
        var json = try read(bytes).manifest.encoded()
        change(&json)
        return try replacingManifest(bytes, payload: json, codec: .stored, rawLength: UInt32(json.count))
    }

    /// The archive with `payload` as its manifest frame's payload, declared
    /// as `codec` and `rawLength`, and a trailer that points to it (CRCs and
    /// body digests valid): what a forger of an unencrypted archive can write.
    static func replacingManifest(_ bytes: [UInt8], payload: [UInt8], codec: Codec, rawLength: UInt32) throws -> [UInt8] {
        let outline = try ArchiveOutline(source: MemorySource(bytes))
        var body = Array(bytes[0..<Int(outline.trailer.manifestOffset)])
        let frame = FrameHeader(
            type: .manifest, codec: codec, streamID: ArchiveFormat.manifestStreamID, sequence: 0, rawLength: rawLength,
            storedLength: UInt32(payload.count), payloadCRC: CRC32C.checksum(payload))
        let manifestOffset = UInt64(body.count)
        body += frame.encoded() + payload
        let trailer = Trailer(
            manifestOffset: manifestOffset, manifestLength: UInt64(32 + payload.count), archiveID: outline.header.archiveID,
            bodyMD5: Digest.hash(.md5, body), bodySHA256: Digest.hash(.sha256, body))
        return body + trailer.encoded()
    }

    /// `raw` as one zstd frame with its content checksum, as the writer makes them.
    static func zstd(_ raw: [UInt8]) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: ZstdCompressor.bound(raw.count))
        let length = raw.withUnsafeBytes { source in frame.withUnsafeMutableBytes { ZstdCompressor(level: 3).compress(source, into: $0) } }
        return Array(frame[0..<length])
    }
}

extension Sample {
    /// The archive relabelled as format `version` (header and manifest), with
    /// every CRC and digest valid.
    static func rewriteVersion(_ bytes: [UInt8], to version: UInt16) throws -> [UInt8] {
        var rewritten = try rewriteManifest(bytes) { json in
            var text = String(decoding: json, as: UTF8.self)
                .replacingOccurrences(of: #""formatVersion":\#(ArchiveFormat.version)"#, with: #""formatVersion":\#(version)"#)
            // Versions 1 to 3 list their large objects (here none) one by one.
            if version < 4 { text = #"{"largeObjects":[],"# + text.dropFirst() }
            json = Array(text.utf8)
        }
        rewritten.replaceSubrange(0..<64, with: headerBytes(version: version, from: Array(rewritten[0..<64])))
        return try rewriteManifest(rewritten) { _ in }
    }

    /// A file header (by default a new one) relabelled as format `version`.
    static func fileHeader(version: UInt16, from bytes: [UInt8]? = nil) throws -> FileHeader {
        try FileHeader.decode(headerBytes(version: version, from: bytes))
    }

    static func headerBytes(version: UInt16, from bytes: [UInt8]? = nil) -> [UInt8] {
        var header = bytes ?? FileHeader(chunkSize: 4096, compression: .zstd, compressionLevel: 3, archiveID: archiveID).encoded()
        header.replaceSubrange(8..<10, with: [UInt8(version & 0xFF), UInt8(version >> 8)])
        header.replaceSubrange(60..<64, with: withUnsafeBytes(of: CRC32C.checksum(Array(header[0..<60])).littleEndian, Array.init))
        return header
    }
}

extension Array where Element == UInt8 {
    func flipping(bit: Int, at index: Int) -> [UInt8] {
        var copy = self
        copy[index] ^= UInt8(1 << bit)
        return copy
    }
}
