import ArcaEngine
import ArcaFormat
import Foundation

/// Archives a forger writes, for the tests of what reads them (CLI,
/// server): well-formed, with valid checksums and sidecar, and a lie inside.
public enum ForgedArchive {
    /// Writes into `<root>/local/` an archive of about 1.4 KB whose manifest
    /// is well-formed JSON but whose two tables' row counts (2^64-1 each)
    /// overflow when summed: the archive that used to crash `list`,
    /// `inspect`, `verify`, `restore` and GET /metrics. Returns its path.
    public static func overflowingRowCounts(inRepository root: String) throws -> String {
        let repository = Repository(root: root)
        try repository.prepare()
        let reservation = try repository.reserve(startedAt: Date(timeIntervalSince1970: 1_733_061_930))
        let header = FileHeader(chunkSize: 4096, compression: .zstd, compressionLevel: 3, archiveID: .random())
        let writer = try ArchiveWriter(sink: reservation.sink, header: header)
        let tables = try (0..<2).map { index in
            // Empty streams: the lie is in the row counts alone.
            let empty = try StreamWriter(archive: writer, encoder: writer.makeEncoder(level: 3), stream: UInt32(index)).finish()
            return Manifest.Table(
                schema: "public", name: "t\(index)", kind: "table", parent: nil, columns: ["a"],
                parts: [Manifest.Part(stream: UInt32(index), rows: .max, summary: empty)])
        }
        let manifest = Manifest(
            archiveId: header.archiveID.description, backupId: reservation.id.rawValue, startedAt: "2024-12-01T14:05:30.123Z",
            completedAt: "2024-12-01T14:05:31.000Z", tool: .init(version: "forged"),
            source: .init(database: "db", serverVersion: "15.18", serverVersionNumber: 150018, snapshot: "s", systemIdentifier: nil, encoding: "UTF8"),
            compression: .init(level: 3), chunkSize: 4096, tables: [tables[0]], sequences: [])
        // Added after the totals were computed, so that nothing sums them here.
        var forged = manifest
        forged.tables.append(tables[1])
        let summary = try writer.finish(manifest: forged)
        try reservation.sink.syncAndClose()
        return try repository.publish(reservation, fileMD5: summary.fileMD5)
    }
}
