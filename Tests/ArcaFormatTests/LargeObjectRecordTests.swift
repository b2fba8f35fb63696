@testable import ArcaFormat
import Foundation
import Testing

/// The large-object stream of format 4 (FORMAT.md, "Large objects"): every
/// object read back as written, whatever the chunk and segment boundaries,
/// and every framing a writer would not produce refused with
/// `ArchiveError.malformed`, by restore's read and by verify alike.
@Suite struct LargeObjectRecordTests {
    typealias Object = (oid: UInt32, bytes: [UInt8])

    /// What `readLargeObjects` hands on, object by object.
    static func objects(_ reader: ArchiveReader) throws -> [Object] {
        var objects: [Object] = []
        var open: UInt32?
        try reader.readLargeObjects { event in
            switch event {
            case .begin(let oid):
                #expect(open == nil)
                open = oid
                objects.append((oid, []))
            case .bytes(let bytes):
                #expect(open != nil)
                objects[objects.count - 1].bytes += bytes
            case .end(let oid):
                #expect(open == oid)
                open = nil
            }
        }
        return objects
    }

    static let sample: [Object] = [
        (1, []),                                   // empty
        (2, Array("a small one".utf8)),
        (16_384, Sample.noise(10_000, seed: 7)),   // larger than a 4096-byte chunk
        (16_385, []),
        (4_000_000_000, Sample.noise(3000, seed: 9)),
    ]

    @Test(arguments: [1, 700, 4096])
    func objectsRoundTripAcrossChunks(segment: Int) throws {
        let stream = Sample.largeObjectRecords(Self.sample, segment: segment)
        let (bytes, manifest) = try Sample.archive(
            [Sample.Stream(name: "t", bytes: Sample.copyText(rows: 50))], largeObjects: stream)
        let data = try #require(manifest.largeObjectData)
        #expect(data.count == 5 && data.chunks.count > 3)
        #expect(manifest.largeObjectCount == 5 && manifest.largeObjects == nil)
        let reader = try Sample.read(bytes)
        let read = try Self.objects(reader)
        #expect(read.map(\.oid) == Self.sample.map(\.oid))
        #expect(read.map(\.bytes) == Self.sample.map(\.bytes))
        #expect(try Sample.verify(bytes).isIntact)
    }

    /// Fed one byte at a time, the parser finds what it finds in the whole.
    @Test func recordsCutAnywhereParseTheSame() throws {
        let stream = Sample.largeObjectRecords(Self.sample, segment: 333)
        let summary = StreamSummary(rawBytes: UInt64(stream.bytes.count), storedBytes: 0, md5: "", sha256: "", chunks: [])
        var records = LargeObjectRecords(Manifest.LargeObjectData(count: stream.count, stream: 0, summary: summary), chunkSize: 4096)
        var collected: [Object] = []
        for byte in stream.bytes {
            try [byte].withUnsafeBytes { piece in
                try records.feed(piece) { event in
                    switch event {
                    case .begin(let oid): collected.append((oid, []))
                    case .bytes(let bytes): collected[collected.count - 1].bytes += bytes
                    case .end: break
                    }
                }
            }
        }
        try records.finish()
        #expect(collected.map(\.oid) == Self.sample.map(\.oid) && collected.map(\.bytes) == Self.sample.map(\.bytes))
    }

    static func le32(_ value: UInt32) -> [UInt8] { LargeObjectRecords.segmentHeader(value) }

    /// Framings a writer never produces, each with the words of its error.
    /// Every count is one the manifest accepts (1 to rawBytes / 8), so the
    /// stream itself is what is refused.
    static let hostile: [(name: String, bytes: [UInt8], count: UInt64, error: String)] = [
        ("no end segment", le32(5) + le32(4) + Array("abcd".utf8), 1, "it ends inside the record of large object 5"),
        ("truncated inside a length", le32(5) + le32(3) + Array("abc".utf8) + [0, 0], 1, "it ends inside the record of large object 5"),
        ("truncated inside an OID", le32(5) + le32(0) + [6, 0], 1, "it ends inside the OID of record 2"),
        ("a segment longer than the chunk size", le32(5) + le32(0xFFFF_FFFF) + [UInt8](repeating: 0, count: 16), 1,
         "a segment of large object 5 is 4294967295 bytes long, above the chunk size 4096"),
        ("a segment longer than what remains", le32(5) + le32(4000) + [UInt8](repeating: 0, count: 16), 1,
         "a segment of large object 5 is 4000 bytes long, but only 16 bytes of the stream remain"),
        ("OIDs not ascending", le32(9) + le32(0) + le32(8) + le32(0), 2, "record 2 has OID 8, not above the previous record's 9"),
        ("a repeated OID", le32(9) + le32(0) + le32(9) + le32(0), 2, "record 2 has OID 9, not above the previous record's 9"),
        ("OID 0", le32(0) + le32(0), 1, "record 1 has OID 0"),
        ("more records than counted", le32(5) + le32(0) + le32(6) + le32(0), 1, "it holds more than the 1 records the manifest counts"),
        ("fewer records than counted", le32(5) + le32(8) + [UInt8](repeating: 1, count: 8) + le32(0), 2,
         "it holds 1 records, the manifest counts 2"),
    ]

    @Test(arguments: hostile.indices)
    func hostileFramingIsRefused(_ index: Int) throws {
        let entry = Self.hostile[index]
        let (bytes, _) = try Sample.archive([], largeObjects: Sample.LargeObjectStream(bytes: entry.bytes, count: entry.count))
        let reader = try Sample.read(bytes)
        #expect(throws: ArchiveError.malformed(.stream(LargeObjectRecords.streamName), entry.error), "\(entry.name)") {
            _ = try Self.objects(reader)
        }
        // Verify reads the records too, and says the same.
        let report = try Sample.verify(bytes)
        #expect(report.problems == [.malformed(.stream(LargeObjectRecords.streamName), entry.error)], "\(entry.name)")
    }

    /// The manifest entry is checked before the stream is read: a count the
    /// stream cannot hold, and each version's own large-object field only.
    @Test func manifestEntryIsChecked() throws {
        let stream = Sample.largeObjectRecords([(5, []), (6, [1, 2, 3])])
        let (bytes, _) = try Sample.archive([], largeObjects: stream)
        for (from, to, words) in [
            (#""count":2"#, #""count":0"#, "largeObjectData.count is 0"),
            (#""count":2"#, #""count":3"#, "largeObjectData.count is 3"),
            (#""formatVersion":6"#, #""formatVersion":6,"largeObjects":[]"#, "largeObjects is a field of versions 1 to 3"),
        ] {
            let forged = try Sample.rewriteManifest(bytes) { json in
                json = Array(String(decoding: json, as: UTF8.self).replacingOccurrences(of: from, with: to).utf8)
            }
            let error = #expect(throws: ArchiveError.self) { _ = try Sample.read(forged) }
            guard case .invalidManifest(let detail) = error else {
                Issue.record("\(words): \(String(describing: error))")
                continue
            }
            #expect(detail.contains(words), "\(detail)")
        }
        // A version-3 manifest must list its large objects, and only so.
        let (plain, _) = try Sample.archive([])
        let v3 = try Sample.rewriteVersion(plain, to: 3)
        #expect(try Sample.read(v3).manifest.largeObjects == [])
        let missing = try Sample.rewriteManifest(v3) { json in
            json = Array(String(decoding: json, as: UTF8.self).replacingOccurrences(of: #""largeObjects":[],"#, with: "").utf8)
        }
        #expect(throws: ArchiveError.invalidManifest("field largeObjects is missing at the top level")) { _ = try Sample.read(missing) }
    }
}
