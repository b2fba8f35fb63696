@testable import ArcaFormat
import Foundation
import Testing

/// Change segments (FORMAT.md, "Change segments"): the record framing read
/// back in pieces cut anywhere, every framing a writer would not produce
/// refused, and segment names and manifests checked like the rest.
@Suite struct ChangeSegmentTests {
    static func data(records: UInt64, rawBytes: UInt64) -> Manifest.ChangeData {
        var data = Manifest.ChangeData(
            slot: "arca_test", slotStart: 0, startLSN: 100, endLSN: 200, transactions: 0, records: records, firstCommitAt: nil,
            lastCommitAt: nil, tables: [], schemaChanges: [], stream: 0,
            summary: StreamSummary(rawBytes: rawBytes, storedBytes: 0, md5: "", sha256: "", chunks: []))
        data.rawBytes = rawBytes
        return data
    }

    static func framed(_ messages: [[UInt8]]) -> [UInt8] {
        messages.flatMap { ChangeRecords.recordHeader(UInt32($0.count)) + $0 }
    }

    /// Every record comes back whole, in order, whatever the pieces.
    @Test(arguments: [1, 2, 3, 5, 7, 64])
    func recordsSurviveAnyCut(piece: Int) throws {
        let messages: [[UInt8]] = [[0x42], Array(repeating: 7, count: 300), Array("C commit".utf8)]
        let stream = Self.framed(messages)
        var records = ChangeRecords(Self.data(records: 3, rawBytes: UInt64(stream.count)))
        var seen: [[UInt8]] = []
        for start in stride(from: 0, to: stream.count, by: piece) {
            try stream[start..<min(stream.count, start + piece)].withUnsafeBytes { bytes in
                try records.feed(bytes) { seen.append(Array($0)) }
            }
        }
        try records.finish()
        #expect(seen == messages)
    }

    static func rejection(_ stream: [UInt8], records count: UInt64, rawBytes: UInt64? = nil) -> String? {
        var records = ChangeRecords(Self.data(records: count, rawBytes: rawBytes ?? UInt64(stream.count)))
        do {
            try stream.withUnsafeBytes { try records.feed($0) { _ in } }
            try records.finish()
            return nil
        } catch let error as ArchiveError {
            return "\(error)"
        } catch {
            return "unexpected \(error)"
        }
    }

    @Test func malformedFramingIsRefused() {
        // A record of length 0.
        #expect(Self.rejection([0, 0, 0, 0], records: 1)?.contains("record 1 is 0 bytes long") == true)
        // A length past the end of the stream, and one past 1 GiB.
        #expect(Self.rejection([9, 0, 0, 0, 1], records: 1)?.contains("record 1 is 9 bytes long") == true)
        #expect(Self.rejection([1, 0, 0, 0x41, 1], records: 1)?.contains("bytes long") == true)
        // More records than the manifest counts, fewer, and a cut record.
        #expect(Self.rejection(Self.framed([[1], [2]]), records: 1)?.contains("more than the 1 records") == true)
        #expect(Self.rejection(Self.framed([[1]]), records: 2)?.contains("holds 1 records, the manifest counts 2") == true)
        #expect(Self.rejection([1, 0, 0], records: 1)?.contains("ends inside record 1") == true)
        // Bytes beyond what the manifest says the stream holds.
        #expect(Self.rejection(Self.framed([[1]]), records: 1, rawBytes: 2)?.contains("longer than") == true)
    }

    @Test func segmentNames() {
        let id = SegmentID(startLSN: 0x1_6B37_4D848, endLSN: 0x1_6B37_4E000)
        #expect(id.description == "changes_00000016B374D848_00000016B374E000")
        #expect(SegmentID(id.description) == id)
        for bad in ["changes_", "changes_0000000000000010_000000000000000F", "changes_000000000000000g_0000000000000010",
                    "changes_0000000000000001_0000000000000002.arca", "../changes_0000000000000001_0000000000000002",
                    "changes_000000000000000a_0000000000000010"] {
            #expect(SegmentID(bad) == nil, "\(bad)")
        }
        #expect(SegmentID("changes_0000000000000001_0000000000000002")! < SegmentID("changes_0000000000000002_0000000000000002")!)
    }

    /// A segment's manifest is checked like an archive's: a forged one is
    /// refused before anything is read.
    @Test func segmentManifestsAreChecked() throws {
        func validate(_ change: (inout Manifest) -> Void) -> String? {
            var manifest = Sample.segmentManifest()
            change(&manifest)
            do {
                try manifest.validate(header: Sample.header(), manifestOffset: 1 << 20)
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(validate { _ in } == nil)
        #expect(validate { $0.backupId = "backup_20260101_000000" }?.contains("not the segment name") == true)
        #expect(validate { $0.changes!.endLSN = 50 }?.contains("not the segment name") == true)
        #expect(validate { $0.changes!.slotStart = 150 }?.contains("not in order") == true)
        #expect(validate { $0.changes!.transactions = 99 }?.contains("transactions need more than") == true)
        #expect(validate { $0.changes!.firstCommitAt = "2026-11-30T10:00:30.000Z" }?.contains("commit times") == true)
        #expect(validate { $0.anchor = .init(slot: "x", lsn: 1) }?.contains("holds no tables, schema") == true)
        #expect(validate { $0.formatVersion = 4 }?.contains("formatVersion") == true)
    }
}

extension Sample {
    static func header() -> FileHeader {
        FileHeader(chunkSize: 4096, compression: .zstd, compressionLevel: 1, archiveID: ArchiveID(bytes: Array(repeating: 1, count: 16)))
    }

    /// A valid segment manifest with no chunks (an empty stream).
    static func segmentManifest() -> Manifest {
        let header = header()
        let id = SegmentID(startLSN: 100, endLSN: 200)
        var manifest = Manifest(
            archiveId: header.archiveID.description, backupId: id.description, startedAt: "2026-11-30T10:00:00.000Z",
            completedAt: "2026-11-30T10:01:00.000Z", tool: .init(version: "test"),
            source: .init(database: "arca_test", serverVersion: "", serverVersionNumber: 0, snapshot: "", systemIdentifier: nil, encoding: ""),
            compression: .init(level: 1), chunkSize: header.chunkSize, tables: [], sequences: [])
        manifest.changes = Manifest.ChangeData(
            slot: "arca_test", slotStart: 50, startLSN: 100, endLSN: 200, transactions: 0, records: 0, firstCommitAt: nil,
            lastCommitAt: nil, tables: [], schemaChanges: [], stream: 0,
            summary: StreamSummary(rawBytes: 0, storedBytes: 0, md5: String(repeating: "0", count: 32), sha256: String(repeating: "0", count: 64), chunks: []))
        return manifest
    }
}
