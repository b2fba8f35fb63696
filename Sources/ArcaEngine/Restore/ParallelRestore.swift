import ArcaFormat
import ArcaPostgres
import Foundation

/// `restore --jobs N --create`, and `restore --create` of an archive with
/// more objects than one transaction can lock: in many transactions, and
/// still all or nothing.
///
/// Parallel connections cannot share one transaction, so atomicity comes
/// from the database name instead: everything is restored into a staging
/// database (`arca_restore_<random>`) that nobody uses, and only when every
/// step succeeded is it renamed to the target's name. A failure drops the
/// staging database; the target name never exists half-restored.
///
/// Inside the staging database: the pre-data section in a series of short
/// transactions (each holds few locks, however many objects the archive
/// has); then the tables, largest first, on `jobs` connections (a table of one
/// part with TRUNCATE and `COPY … FREEZE` in one transaction, so its rows are
/// written frozen and need no later vacuum; the parts of a split table each
/// on their own; small tables several to a transaction, without TRUNCATE,
/// see `freezeFromBytes`); then indexes and keys in parallel; then the rest
/// of post-data and the sequences in short transactions, and the large
/// objects' contents, in order.
extension RestoreRunner {
    struct Plan: Sendable {
        var reader: ArchiveReader
        /// Reads each table from the archive that holds it (incremental backups).
        var chain: ArchiveChain
        var tables: [Manifest.Table]
        var subset: Bool
        /// How many large objects to restore (0 with --no-large-objects).
        var largeObjects: UInt64
        var scripts: SchemaScripts
        var databaseName: String
    }

    func runParallel(_ plan: Plan, reporter: ProgressReporter) throws -> (rows: UInt64, rawBytes: UInt64, replay: ChangeReplay?) {
        let manifest = plan.reader.manifest
        let encoding = manifest.source.encoding
        // The target must not exist; checked before any work, and again by the rename.
        try createDatabase(plan.databaseName, encoding: encoding, checkOnly: true)
        // Named after the target, so a person (or a test) can tell whose it is.
        let staging = "arca_restore_\(plan.databaseName.prefix(30))_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let setup = DatabaseSetup(manifest: manifest, choices: options.choices)
        try createDatabase(staging, encoding: encoding, setup: setup)
        let stagingTarget = options.target.replacing(database: staging)
        do {
            let main = try PostgresConnection(stagingTarget, applicationName: "arca restore")
            try SessionSettings.apply(to: main, encoding: encoding)
            try main.execute(SessionSettings.bulkLoad, during: "tuning the session for the schema")
            // Half the locks the server reserves per transaction: a
            // statement of the schema locks about one object that its
            // transaction does not hold yet (a table, then its owner and
            // privileges; an index; a large object's owner).
            let statementsPerTransaction = max(1, try step("reading the server's lock table size") { try Catalog.lockTable(main) }.perTransaction / 2)
            reporter.phase("creating the schema")
            try plan.scripts.preData.batches(of: statementsPerTransaction) {
                try runInTransaction($0, "creating the schema (pre-data)", main)
            }

            reporter.phase("loading tables")
            let loaded = try loadInParallel(plan, into: stagingTarget, reporter: reporter)
            reporter.phase("building indexes and keys")

            let postData = PostDataScript(plan.scripts.postData)
            let header = SQLScript.joined(postData.header)
            try WorkerPool.run(
                jobs: options.jobs, items: postData.parallel.count,
                makeWorker: { () throws -> PostgresConnection in
                    let connection = try PostgresConnection(stagingTarget, applicationName: "arca restore")
                    try SessionSettings.apply(to: connection, encoding: encoding)
                    try self.runScript(header, "preparing a post-data session", connection)
                    try connection.execute(SessionSettings.bulkLoad, during: "tuning the session for index builds")
                    return connection
                },
                perform: { connection, index in
                    try self.runScript(postData.parallel[index], "building indexes and keys (post-data)", connection)
                })
            try SessionSettings.apply(to: main, encoding: encoding)
            try main.execute(SessionSettings.bulkLoad, during: "tuning the session for index builds")
            reporter.phase("building foreign keys, triggers and the rest")
            let rest = "building foreign keys, triggers and the rest of post-data"
            try runScript(postData.header, rest, main)
            try runInTransactions(postData.serial, rest, main, size: statementsPerTransaction)
            try SessionSettings.apply(to: main, encoding: encoding)
            try step("restoring sequence values") {
                try restoreSequences(of: plan.tables, manifest: manifest, subset: plan.subset, main, batch: statementsPerTransaction, committing: true)
            }
            // Writing a large object's contents locks no object.
            try main.execute("BEGIN", during: "starting the large objects' transaction")
            if plan.largeObjects > 0 { try restoreLargeObjects(from: plan.reader, main, reporter: reporter) }
            let replay = try replayChanges(into: main, encoding: encoding, reporter: reporter)
            try step("committing") { try main.execute("COMMIT", during: "COMMIT") }
            main.close()
            reporter.phase("publishing the database")
            try publish(staging, as: plan.databaseName, setup: setup)
            return (loaded.rows, loaded.rawBytes, replay)
        } catch {
            dropDatabase(staging)
            throw error
        }
    }

    private func loadInParallel(
        _ plan: Plan, into target: ConnectionString, reporter: ProgressReporter
    ) throws -> (rows: UInt64, rawBytes: UInt64) {
        /// What one transaction loads.
        struct Task: Sendable {
            /// Indices into `plan.tables`: one table, or several small ones.
            var tables: [Int]
            var part: Int?   // nil: whole tables
            var frozen: Bool
            var bytes: UInt64
        }
        var tasks: [Task] = []
        var small: [Int] = []
        for (index, table) in plan.tables.enumerated() {
            // Each part of a split table (text or binary) loads on its own.
            if table.parts.count > 1 {
                tasks += table.parts.indices.map { Task(tables: [index], part: $0, frozen: false, bytes: table.parts[$0].rawBytes) }
            } else if table.rawBytes >= Self.freezeFromBytes {
                tasks.append(Task(tables: [index], part: nil, frozen: true, bytes: table.rawBytes))
            } else {
                small.append(index)
            }
        }
        for first in stride(from: 0, to: small.count, by: Self.smallTablesPerTransaction) {
            let group = Array(small[first..<min(small.count, first + Self.smallTablesPerTransaction)])
            tasks.append(Task(tables: group, part: nil, frozen: false, bytes: group.lazy.map { plan.tables[$0].rawBytes }.checkedSum ?? .max))
        }
        let work = tasks.sorted { $0.bytes > $1.bytes }
        // Counted in tables and parts of split tables, as they finish.
        reporter.expect(tables: work.lazy.map(\.tables.count).reduce(0, +))
        let counters = Counters()
        let encoding = plan.reader.manifest.source.encoding

        try WorkerPool.run(
            jobs: options.jobs, items: work.count,
            makeWorker: { () throws -> (PostgresConnection, ArchiveChain.Decoders) in
                let connection = try PostgresConnection(target, applicationName: "arca restore")
                try SessionSettings.apply(to: connection, encoding: encoding)
                try connection.execute(SessionSettings.bulkLoad, during: "tuning the session for loading")
                return (connection, ArchiveChain.Decoders())
            },
            perform: { worker, index in
                let (connection, decoders) = worker
                let task = work[index]
                let names = task.tables.map { plan.tables[$0].qualifiedName }
                do {
                    try connection.execute("BEGIN", during: "starting a table transaction")
                } catch {
                    throw RestoreError.table(names[0], error)
                }
                for tableIndex in task.tables {
                    let table = plan.tables[tableIndex]
                    let name = SQLIdentifier.qualified(table.schema, table.name)
                    let expected = task.part.map { table.parts[$0].rows } ?? table.rows
                    do {
                        // Truncating in the loading transaction is what allows FREEZE.
                        if task.frozen { try connection.execute("TRUNCATE ONLY \(name)", during: "preparing \(table.qualifiedName)") }
                        let loaded = try connection.copyIn(
                            "COPY \(table.copyTarget) FROM STDIN" + table.format.copyOptions(freeze: task.frozen),
                            during: "COPY into \(table.qualifiedName)"
                        ) { writer in
                            if let part = task.part {
                                try plan.chain.readPart(table, part: part, decoders: decoders, checking: Self.readCheck) { raw in
                                    try writer.send(raw)
                                    reporter.count(bytes: UInt64(raw.count))
                                }
                            } else {
                                try plan.chain.readTable(table, decoders: decoders, checking: Self.readCheck) { raw in
                                    try writer.send(raw)
                                    reporter.count(bytes: UInt64(raw.count))
                                }
                            }
                        }
                        guard loaded == expected else {
                            throw RestoreError.rowCountMismatch(table.qualifiedName, expected: expected, loaded: loaded)
                        }
                        counters.add(rows: loaded, bytes: task.part.map { table.parts[$0].rawBytes } ?? table.rawBytes)
                    } catch let error as RestoreError {
                        throw error
                    } catch {
                        throw RestoreError.table(table.qualifiedName, error)
                    }
                }
                do {
                    try connection.execute("COMMIT", during: names.count == 1 ? "committing \(names[0])" : "committing \(names.count) tables")
                } catch {
                    throw RestoreError.table(names[names.count - 1], error)
                }
                for _ in task.tables { reporter.count(bytes: 0, tableFinished: true) }
            },
            progress: { reporter.send() })
        let (rows, bytes, _) = counters.read()
        return (rows, bytes)
    }

    /// Tables of fewer raw bytes are loaded without TRUNCATE and `FREEZE`,
    /// sixteen to a transaction. Freezing saves rewriting every page later,
    /// which for a small table is next to nothing, while the TRUNCATE that
    /// allows it rebuilds the table's (TOAST) indexes, and an index build
    /// syncs its file to disk at once: for 10,000 small tables, most of the
    /// loading time.
    static let freezeFromBytes: UInt64 = 256 << 10
    static let smallTablesPerTransaction = 16

    /// Renames the finished staging database to the target's name. Nobody
    /// may be connected for a rename: connections are closed first, and
    /// stray ones (autovacuum) are turned away and ended.
    private func publish(_ staging: String, as name: String, setup: DatabaseSetup) throws {
        // The database's own properties go on while it is still the
        // staging database: a failure drops it, and the name never appears.
        try DatabaseSetup.apply(
            try setup.propertyStatements(for: staging), target: options.target,
            during: "setting the database's owner, settings and privileges")
        let maintenance = try PostgresConnection(options.target.replacing(database: "postgres"), applicationName: "arca restore")
        let quotedStaging = SQLIdentifier.quote(staging)
        try step("publishing the restored database") {
            try maintenance.execute("ALTER DATABASE \(quotedStaging) WITH ALLOW_CONNECTIONS false", during: "closing the staging database")
            var attempt = 0
            while true {
                try maintenance.query(
                    "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()",
                    [staging], during: "ending sessions on the staging database")
                do {
                    try maintenance.execute("ALTER DATABASE \(quotedStaging) RENAME TO \(SQLIdentifier.quote(name))", during: "renaming the staging database")
                    break
                } catch let error as PostgresError where error.sqlState == "55006" && attempt < 50 {
                    attempt += 1
                    Thread.sleep(forTimeInterval: 0.1)
                }
            }
            try maintenance.execute("ALTER DATABASE \(SQLIdentifier.quote(name)) WITH ALLOW_CONNECTIONS true", during: "opening the restored database")
            for statement in setup.finalStatements(for: name) { try maintenance.execute(statement, during: "setting the database's options") }
        }
    }

    final class Counters: @unchecked Sendable {
        private let lock = NSLock()
        private var rows: UInt64 = 0
        private var bytes: UInt64 = 0
        private var done = 0

        func add(rows: UInt64, bytes: UInt64) {
            lock.lock()
            self.rows += rows
            self.bytes += bytes
            done += 1
            lock.unlock()
        }

        func read() -> (UInt64, UInt64, Int) {
            lock.lock()
            defer { lock.unlock() }
            return (rows, bytes, done)
        }
    }
}
