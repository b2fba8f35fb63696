import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// A database with more objects than one transaction can lock, backed up
/// and restored where pg_dump -Fc and pg_restore can.
///
/// It runs on a cluster of its own with the smallest lock table PostgreSQL
/// allows (`max_locks_per_transaction` 10, 20 connections: one transaction
/// can lock about 620 objects, and the documented capacity is 200), so the
/// shared test server's lock table, which every parallel test uses, is
/// never filled. The database scales the 10,000 tables of a real server
/// down to that size: 401 tables (250 plain ones and a table of 150
/// partitions) and 1,000 large objects. `pg_dump -Fc` and `pg_restore` of
/// it succeed there; `pg_restore --single-transaction` runs out of locks.
/// `Benchmarks/many-objects.sh` runs the full-size databases at default settings.
@Suite struct ManyObjectsTests {
    static let settings = ["max_locks_per_transaction": "10", "max_connections": "20"]

    static var schema: String {
        var sql: [String] = []
        // In batches: creating every table in one transaction would not fit either.
        for batch in stride(from: 1, through: 250, by: 50) {
            sql.append("BEGIN;")
            for table in batch..<batch + 50 {
                sql.append("CREATE TABLE t_\(table) (id int PRIMARY KEY, v text); INSERT INTO t_\(table) VALUES (1, 'a'), (2, 'b'), (\(table + 2), 'c');")
            }
            sql.append("COMMIT;")
        }
        sql.append("CREATE TABLE events (id int PRIMARY KEY, note text) PARTITION BY RANGE (id);")
        for batch in stride(from: 0, to: 150, by: 50) {
            sql.append("BEGIN;")
            for partition in batch..<batch + 50 {
                sql.append("CREATE TABLE events_\(partition) PARTITION OF events FOR VALUES FROM (\(partition * 10)) TO (\(partition * 10 + 10));")
            }
            sql.append("COMMIT;")
        }
        sql.append("INSERT INTO events SELECT g, 'event ' || g FROM generate_series(0, 1499) g;")
        sql.append("SELECT count(lo_from_bytea(0, convert_to('object ' || g, 'UTF8'))) FROM generate_series(1, 1000) g;")
        sql.append("CREATE TABLE counters (id serial PRIMARY KEY, n bigserial); INSERT INTO counters DEFAULT VALUES;")
        return sql.joined(separator: "\n")
    }

    @Test(.enabled(if: PrivateCluster.isAvailable, "needs root, the postgres OS user and PostgreSQL 15's server binaries"))
    func aDatabaseWithMoreObjectsThanOneTransactionCanLock() throws {
        let cluster = try PrivateCluster(label: "manyobjects", settings: Self.settings)
        defer { cluster.destroy() }
        try cluster.createDatabase("many")
        try cluster.execute(Self.schema, database: "many")
        let source = try cluster.connectionString(database: "many")
        let folder = TestPaths.temporaryDirectory("manyobjects")
        defer { try? FileManager.default.removeItem(atPath: folder) }

        var archives: [Int: String] = [:]
        for jobs in [1, 2] {
            var options = BackupOptions(source: source, repository: Repository(root: folder + "/repo"))
            options.jobs = jobs
            let backup = try BackupRunner(options: options).run()
            #expect(backup.tables == 401)
            archives[jobs] = backup.path
        }

        // --create: built in a staging database in a series of transactions.
        for jobs in [1, 2] {
            let name = "many_copy_\(jobs)"
            var options = RestoreOptions(archivePath: try #require(archives[jobs]), target: try cluster.connectionString(database: name))
            options.confirmed = true
            options.create = true
            options.jobs = jobs
            let result = try RestoreRunner(options: options).run()
            #expect(result.createdDatabase && result.largeObjects == 1000 && result.restoredTables.count == 401)
            let comparison = try DatabaseComparison(source, try cluster.connectionString(database: name)).run()
            #expect(comparison.equal, "--jobs \(jobs): \(comparison.differences.prefix(10))")
            #expect(try cluster.value("SELECT count(*) FROM pg_database WHERE datname LIKE 'arca_restore_%'") == "0")
        }

        // Into an existing database, in one transaction: refused before anything changes.
        try cluster.createDatabase("existing")
        var options = RestoreOptions(archivePath: try #require(archives[1]), target: try cluster.connectionString(database: "existing"))
        options.confirmed = true
        #expect {
            try RestoreRunner(options: options).run()
        } throws: { error in
            guard case RestoreError.tooManyObjects(let objects, let capacity, let perTransaction) = error else { return false }
            return objects > capacity && capacity == 200 && perTransaction == 10
                && "\(error)".contains("--create") && "\(error)".contains("Nothing was changed")
        }
        #expect(try Catalog.userObjects(try cluster.connect(database: "existing")).isEmpty)
    }
}
