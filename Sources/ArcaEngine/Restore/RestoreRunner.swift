import ArcaFormat
import ArcaPostgres
import Foundation

public struct RestoreOptions: Sendable {
    public var archivePath: String
    public var target: ConnectionString
    /// The user confirmed that the target's tables may be replaced.
    public var confirmed = false
    public var tables = TableFilter()

    public init(archivePath: String, target: ConnectionString) {
        self.archivePath = archivePath
        self.target = target
    }
}

public struct RestoreResult: Codable, Sendable {
    public var backupId: String
    public var database: String
    public var restoredTables: [String]
    public var rows: UInt64
    public var rawBytes: UInt64
    public var durationSeconds: Double
}

public struct RestoreProgress: Sendable {
    public var tablesDone: Int
    public var tablesTotal: Int
    public var currentTable: String?
    public var rawBytes: UInt64
}

public enum RestoreError: Error, Sendable, CustomStringConvertible {
    case notConfirmed(database: String, tables: [String])
    case unmatchedPatterns([String])
    case tableMissing(String, database: String)
    case columnsDiffer(String, archive: [String], target: [String])
    case requiresSuperuser(user: String)
    case truncateRefused(any Error)
    case table(String, any Error)
    case rowCountMismatch(String, expected: UInt64, loaded: UInt64)
    case step(String, any Error)

    public var description: String {
        switch self {
        case .notConfirmed(let database, let tables):
            let list = tables.count <= 10 ? tables.joined(separator: ", ") : tables.prefix(10).joined(separator: ", ") + " and \(tables.count - 10) more"
            return "Restore would replace all rows of \(tables.count) table(s) in database \(database): \(list). Nothing was changed. Add --confirm to proceed."
        case .unmatchedPatterns(let patterns):
            return "No table in the archive matches --table \(patterns.joined(separator: ", ")). `arca inspect` lists the archive's tables."
        case .tableMissing(let table, let database):
            return "Table \(table) does not exist in database \(database). Create the schema first (for example with pg_dump --schema-only from the source), then restore the data. Nothing was changed."
        case .columnsDiffer(let table, let archive, let target):
            return "Table \(table) has columns (\(target.joined(separator: ", "))) in the target, but the archive holds (\(archive.joined(separator: ", "))). Nothing was changed."
        case .requiresSuperuser(let user):
            return "Role \(user) may not disable triggers and foreign-key checks (session_replication_role), which a consistent data restore needs. Restore as a superuser. Nothing was changed."
        case .truncateRefused(let error):
            return "Cannot empty the tables to restore: \(error) Include the referencing tables with --table, or restore the whole archive. Nothing was changed."
        case .table(let table, let error):
            return "Restore of table \(table) failed: \(error) The transaction was rolled back; the target is unchanged."
        case .rowCountMismatch(let table, let expected, let loaded):
            return "Table \(table): the archive holds \(expected) rows but \(loaded) were loaded. The transaction was rolled back; the target is unchanged."
        case .step(let step, let error):
            return "Restore failed while \(step): \(error) The transaction was rolled back; the target is unchanged."
        }
    }
}

/// Loads an archive's table data into a database that already has the
/// schema, all or nothing: one transaction empties the restored tables and
/// refills them through COPY FROM STDIN, with user triggers and foreign-key
/// checks off for the restored rows. Each table's MD5 and SHA-256 are checked
/// before its COPY is completed; any failure rolls everything back.
public struct RestoreRunner: Sendable {
    public let options: RestoreOptions

    public init(options: RestoreOptions) { self.options = options }

    public func run(progress: (RestoreProgress) -> Void = { _ in }) throws -> RestoreResult {
        let clock = ContinuousClock.now
        let reader = try ArchiveReader(source: try FileSource(path: options.archivePath))
        let manifest = reader.manifest
        let unmatched = options.tables.unmatchedIncludes(manifest.tables.map { ($0.schema, $0.name) })
        guard unmatched.isEmpty else { throw RestoreError.unmatchedPatterns(unmatched) }
        let tables = manifest.tables.filter { options.tables.matches(schema: $0.schema, name: $0.name) }

        let connection = try PostgresConnection(options.target, applicationName: "arca restore")
        let database = connection.database
        guard options.confirmed else {
            throw RestoreError.notConfirmed(database: database, tables: tables.map(\.qualifiedName))
        }
        try SessionSettings.apply(to: connection, encoding: manifest.source.encoding)
        try connection.execute("BEGIN", during: "starting the restore transaction")
        do {
            let result = try load(tables, of: manifest, from: reader, into: connection, progress: progress)
            try step("committing") { try connection.execute("COMMIT", during: "COMMIT") }
            let duration = ContinuousClock.now - clock
            return RestoreResult(
                backupId: manifest.backupId, database: database, restoredTables: tables.map(\.qualifiedName),
                rows: result.rows, rawBytes: result.rawBytes,
                durationSeconds: Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
        } catch {
            // A lost connection has rolled back on the server already.
            if connection.isAlive { _ = try? connection.execute("ROLLBACK") }
            throw error
        }
    }

    private func load(
        _ tables: [Manifest.Table], of manifest: Manifest, from reader: ArchiveReader, into connection: PostgresConnection,
        progress: (RestoreProgress) -> Void
    ) throws -> (rows: UInt64, rawBytes: UInt64) {
        do {
            try connection.execute("SET LOCAL session_replication_role = replica", during: "disabling triggers for the restore")
        } catch let error as PostgresError where error.sqlState == "42501" {
            throw RestoreError.requiresSuperuser(user: connection.user)
        }
        for table in tables {
            let target = try step("checking table \(table.qualifiedName)") {
                try Catalog.columns(of: table.schema, table.name, connection)
            }
            guard let target else { throw RestoreError.tableMissing(table.qualifiedName, database: connection.database) }
            guard target == table.columns else {
                throw RestoreError.columnsDiffer(table.qualifiedName, archive: table.columns, target: target)
            }
        }
        if !tables.isEmpty {
            do {
                // ONLY: an inheritance child that is not being restored keeps
                // its rows. Partitioned tables all of whose partitions are
                // restored join the list, because a foreign key declared on a
                // partitioned table makes TRUNCATE require it.
                let parents = try Catalog.partitionedTables(coveredBy: tables.map { ($0.schema, $0.name) }, connection)
                let names = tables.map { "ONLY " + SQLIdentifier.qualified($0.schema, $0.name) } + parents
                try connection.execute("TRUNCATE \(names.joined(separator: ", "))", during: "emptying the tables to restore")
            } catch {
                throw RestoreError.truncateRefused(error)
            }
        }

        let decoder = ChunkDecoder(maximumRawLength: Int(reader.header.chunkSize))
        var rows: UInt64 = 0, rawBytes: UInt64 = 0
        for (index, table) in tables.enumerated() {
            progress(RestoreProgress(tablesDone: index, tablesTotal: tables.count, currentTable: table.qualifiedName, rawBytes: rawBytes))
            let columns = table.columns.isEmpty ? "" : " (" + table.columns.map(SQLIdentifier.quote).joined(separator: ", ") + ")"
            let loaded: UInt64
            do {
                loaded = try connection.copyIn(
                    "COPY \(SQLIdentifier.qualified(table.schema, table.name))\(columns) FROM STDIN",
                    during: "COPY into \(table.qualifiedName)"
                ) { writer in
                    try reader.readTable(table, decoder: decoder) { raw in try writer.send(raw) }
                }
            } catch {
                throw RestoreError.table(table.qualifiedName, error)
            }
            guard loaded == table.rows else { throw RestoreError.rowCountMismatch(table.qualifiedName, expected: table.rows, loaded: loaded) }
            rows += loaded
            rawBytes += table.rawBytes
        }
        try step("restoring sequence values") { try restoreSequences(of: tables, manifest: manifest, connection) }
        progress(RestoreProgress(tablesDone: tables.count, tablesTotal: tables.count, currentTable: nil, rawBytes: rawBytes))
        return (rows, rawBytes)
    }

    /// Gives the sequences their state from the snapshot: those owned by a
    /// restored column, and standalone ones when the whole archive is
    /// restored. The snapshot's value is at or past every restored value the
    /// sequence generated.
    private func restoreSequences(of tables: [Manifest.Table], manifest: Manifest, _ connection: PostgresConnection) throws {
        let restored = Set(tables.map(\.qualifiedName))
        let wholeArchive = options.tables.include.isEmpty && options.tables.exclude.isEmpty
        for sequence in manifest.sequences {
            let keep = sequence.ownedBy.map { restored.contains("\($0.schema).\($0.table)") } ?? wholeArchive
            guard keep else { continue }
            let name = SQLIdentifier.qualified(sequence.schema, sequence.name)
            try connection.execute(
                "SELECT pg_catalog.setval(\(SQLIdentifier.literal(name)), \(sequence.lastValue), \(sequence.isCalled))",
                during: "setting sequence \(sequence.schema).\(sequence.name)")
        }
    }

    @discardableResult
    private func step<T>(_ name: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as RestoreError {
            throw error
        } catch {
            throw RestoreError.step(name, error)
        }
    }
}
