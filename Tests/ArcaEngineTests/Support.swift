import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// Shared steps of the engine tests: back up, restore, compare.
enum Steps {
    static func repository(_ label: String) -> Repository {
        Repository(root: TestPaths.temporaryDirectory(label) + "/repo")
    }

    @discardableResult
    static func backup(
        _ database: TestDatabase, into repository: Repository, chunkSize: UInt32 = ArchiveFormat.defaultChunkSize,
        tables: TableFilter = TableFilter(), key: ArchiveKey? = nil, copyFormat: CopyFormatChoice = .auto,
        progress: @escaping (OperationProgress) -> Void = { _ in }
    ) throws -> BackupResult {
        var options = BackupOptions(source: database.connectionString, repository: repository)
        options.chunkSize = chunkSize
        options.copyFormat = copyFormat
        options.tables = tables
        options.encryptionKey = key
        return try BackupRunner(options: options).run(progress: progress)
    }

    /// A full restore unless `configure` says otherwise.
    @discardableResult
    static func restore(
        _ path: String, into database: TestDatabase, tables: TableFilter = TableFilter(), confirmed: Bool = true,
        _ configure: (inout RestoreOptions) -> Void = { _ in }
    ) throws -> RestoreResult {
        var options = RestoreOptions(archivePath: path, target: database.connectionString)
        options.confirmed = confirmed
        options.tables = tables
        configure(&options)
        return try RestoreRunner(options: options).run()
    }

    /// Rows only, into the tables `database` already has.
    @discardableResult
    static func restoreData(_ path: String, into database: TestDatabase, tables: TableFilter = TableFilter(), confirmed: Bool = true) throws -> RestoreResult {
        try restore(path, into: database, tables: tables, confirmed: confirmed) { $0.dataOnly = true }
    }

    /// `expectEqual` with the comparison on a thread of its own, for async
    /// tests that keep Swift's cooperative pool free (see PostgreSQL18Tests).
    static func expectEqualOnThread(_ first: TestDatabase, _ second: TestDatabase, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let found = try await onThread { try differences(first, second) }
        #expect(found.isEmpty, "databases differ:\n\(found.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    static func expectEqual(_ first: TestDatabase, _ second: TestDatabase, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let found = try differences(first, second)
        #expect(found.isEmpty, "databases differ:\n\(found.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    /// How two databases differ: DatabaseComparison's differences, then
    /// the shared, independent comparison's (compare.sh: schema dump, rows,
    /// sequences, matviews) when it is there. Expects nothing itself, so
    /// it also serves work running off the test's task (see PostgreSQL18Tests).
    static func differences(_ first: TestDatabase, _ second: TestDatabase) throws -> [String] {
        var found = try DatabaseComparison(first.connectionString, second.connectionString).run().differences
        if let shared = TestPaths.shared {
            // Its pg_dump must be as new as both servers: the one of a
            // server with its own bin folder (PostgreSQL 18) if any.
            var environment: [String: String] = [:]
            if let bin = first.server.binDirectory ?? second.server.binDirectory {
                environment = ["PG_DUMP": bin + "/pg_dump", "PSQL": bin + "/psql"]
            }
            let output = try Tool.capture(
                shared + "/tools/compare.sh", [first.connectionString.conninfo, second.connectionString.conninfo], environment: environment)
            if output.status != 0 { found.append("compare.sh: \(output.stdout.prefix(3000))\(output.stderr.prefix(2000))") }
        }
        return found
    }

    static func expectDifferent(_ first: TestDatabase, _ second: TestDatabase) throws {
        #expect(!(try DatabaseComparison(first.connectionString, second.connectionString).run().equal))
    }

    /// Loads the type-family fixture into a new database.
    static func typeFamilies(_ label: String, on server: TestCluster = .primary) throws -> TestDatabase {
        let database = try TestDatabase(label, on: server)
        try database.load(file: TestPaths.fixtures + "/type_families.sql")
        return database
    }

    /// Loads one of the shared sample databases (pagila, chinook,
    /// northwind from `../shared/fixtures`) as its README says.
    static func loadSample(_ name: String, into database: TestDatabase) throws {
        let fixtures = try #require(TestPaths.shared, Comment(rawValue: sharedAbsent)) + "/fixtures"
        let scratch = TestPaths.temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        switch name {
        case "pagila":
            try database.load(file: fixtures + "/pagila-schema.sql")
            try Tool.run("/bin/sh", ["-c", "gunzip -c '\(fixtures)/pagila-data.sql.gz' > '\(scratch)/data.sql'"])
            try database.load(file: scratch + "/data.sql")
        case "chinook":
            // The script creates and connects to its own database; load it into ours instead.
            let script = try String(contentsOfFile: fixtures + "/Chinook_PostgreSql.sql", encoding: .utf8)
                .split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.hasPrefix("DROP DATABASE") && !$0.hasPrefix("CREATE DATABASE") && !$0.hasPrefix("\\c ") }
                .joined(separator: "\n")
            try script.write(toFile: scratch + "/chinook.sql", atomically: true, encoding: .utf8)
            try database.load(file: scratch + "/chinook.sql")
        default:
            try database.load(file: fixtures + "/northwind.sql")
        }
    }

    static func files(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }
}

let sharedAbsent = "../shared (sample databases and compare.sh beside the checkout) is absent"
