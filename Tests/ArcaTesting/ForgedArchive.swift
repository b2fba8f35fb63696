import ArcaEngine
@testable import ArcaFormat
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

    /// Copies the (unencrypted) archive at `path` into `repository`, every
    /// stream re-written as read, with its manifest changed by `change`:
    /// an archive whose manifest says what no real backup would (a locale
    /// or extension the server lacks). Returns the new archive's path.
    public static func rewritten(_ path: String, into repository: Repository, _ change: (inout Manifest) -> Void) throws -> String {
        try copy(path, into: repository, version: ArchiveFormat.version, change)
    }

    /// Copies the archive at `path` (written by this arca) into `repository`
    /// as a format-3 archive, as the arca before format 4 wrote it: each
    /// large object a stream of its own with its own manifest entry.
    public static func version3(_ path: String, into repository: Repository) throws -> String {
        try copy(path, into: repository, version: 3) { _ in }
    }

    /// A copy as a format older than 6 of an archive with binary tables.
    public struct BinaryTablesBeforeVersion6: Error {}

    private static func copy(
        _ path: String, into repository: Repository, version: UInt16, _ change: (inout Manifest) -> Void
    ) throws -> String {
        let reader = try ArchiveReader(source: try FileSource(path: path))
        var manifest = reader.manifest
        // Before version 6 every table is text: take the original with --copy-format text.
        if version < 6 {
            guard manifest.tables.allSatisfy({ $0.format == .text }) else { throw BinaryTablesBeforeVersion6() }
            for index in manifest.tables.indices { manifest.tables[index].copyFormat = nil }
        }
        try repository.prepare()
        let reservation = try repository.reserve(startedAt: Date())
        var header = FileHeader(chunkSize: reader.header.chunkSize, compression: .zstd, compressionLevel: 1, archiveID: .random())
        header.version = version
        let writer = try ArchiveWriter(sink: reservation.sink, header: header)
        func copy(_ descriptor: some StreamDescriptor) throws -> StreamSummary {
            let stream = StreamWriter(archive: writer, encoder: writer.makeEncoder(level: 1), stream: descriptor.stream)
            try reader.readStream(descriptor, named: "stream \(descriptor.stream)") { try stream.append($0) }
            return try stream.finish()
        }
        let tables = try manifest.tables.map { table in
            // A table stored in another archive stays a reference to it.
            guard table.isStoredHere else { return table }
            return Manifest.Table(
                schema: table.schema, name: table.name, kind: table.kind, parent: table.parent, columns: table.columns,
                parts: try table.parts.map {
                    Manifest.Part(stream: $0.stream, rows: $0.rows, firstPage: $0.firstPage, endPage: $0.endPage, summary: try copy($0))
                },
                objects: table.objects, copyFormat: table.copyFormat)
        }
        let schema = try manifest.schema.map { Manifest.Schema(pgDumpVersion: $0.pgDumpVersion, stream: $0.stream, summary: try copy($0)) }
        var largeObjectData: Manifest.LargeObjectData?
        var largeObjects: [Manifest.LargeObject] = []
        if version >= 4 {
            largeObjectData = try manifest.largeObjectData.map { Manifest.LargeObjectData(count: $0.count, stream: $0.stream, summary: try copy($0)) }
        } else {
            // A stream per object, numbered after every other stream.
            var next = (manifest.streams.map(\.descriptor.stream).max() ?? 0) + 1
            var current: StreamWriter?
            try reader.readLargeObjects { event in
                switch event {
                case .begin: current = StreamWriter(archive: writer, encoder: writer.makeEncoder(level: 1), stream: next)
                case .bytes(let bytes): try current?.append(bytes)
                case .end(let oid):
                    largeObjects.append(Manifest.LargeObject(oid: oid, stream: next, summary: try current!.finish()))
                    next += 1
                }
            }
        }
        // A new manifest, so that sizes and totals are the copy's.
        let original = manifest
        manifest = Manifest(
            archiveId: header.archiveID.description, backupId: reservation.id.rawValue, startedAt: original.startedAt,
            completedAt: original.completedAt, tool: original.tool, source: original.source, compression: .init(level: 1),
            chunkSize: header.chunkSize, tables: tables, sequences: original.sequences, schema: schema, largeObjects: largeObjectData,
            tableFilter: original.tableFilter)
        if version < 4 {
            manifest.formatVersion = Int(version)
            manifest.largeObjects = largeObjects
            manifest.totals = manifest.computedTotals!
        }
        manifest.trigger = original.trigger
        manifest.database = original.database
        manifest.roles = original.roles
        manifest.base = original.base
        change(&manifest)
        let summary = try writer.finish(manifest: manifest)
        try reservation.sink.syncAndClose()
        return try repository.publish(reservation, fileMD5: summary.fileMD5)
    }
}
