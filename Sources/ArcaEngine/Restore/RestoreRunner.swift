import ArcaFormat
import ArcaPostgres
import Foundation

/// What a restore does, as its caller chooses it (the CLI's flags, the
/// API's body); `RestoreOptions` adds where from, where to and with what.
public struct RestoreChoices: Sendable {
    /// The user confirmed that the target's tables may be replaced.
    public var confirmed = false
    public var tables = TableFilter()
    /// Create the target database first (connecting to the server's `postgres` database).
    public var create = false
    /// Drop the archive's objects from the target before recreating them.
    public var clean = false
    /// Load rows only, into tables that already exist (no schema).
    public var dataOnly = false
    /// Make the restoring role own every object instead of the source's owners.
    public var noOwner = false
    /// Leave out GRANT/REVOKE statements.
    public var noPrivileges = false
    /// Create the roles the archive records that the server does not have
    /// (before the schema; dropped again if the restore fails).
    public var createRoles = false
    /// Leave large objects out (they are otherwise never skipped).
    public var excludeLargeObjects = false
    /// Parallel connections. More than one needs `create`: the restore then
    /// goes into a staging database renamed when complete (ParallelRestore).
    public var jobs = 1
    /// Restore an unencrypted archive although a key is configured (see `ArchiveTrust`).
    public var allowUnencrypted = false

    public init() {}
}

/// A restore's choices (`options.create`, … read through to `choices`)
/// and what it needs to run them.
@dynamicMemberLookup
public struct RestoreOptions: Sendable {
    public var archive: ArchiveReference
    public var target: ConnectionString
    public var choices = RestoreChoices()
    /// Where pg_restore is (default: the newest installed PostgreSQL's bin folder, else PATH).
    public var postgresBinDirectory: String?
    /// Opens an encrypted archive; checked before anything is written.
    public var key: ArchiveKey?
    /// A point-in-time restore: the change stream replayed on top of the
    /// archive (`plan.archivePath`) before the restore commits.
    public var replay: ReplayPlan?
    /// Where an incremental backup's referenced archives are also looked
    /// for when they are not beside this one (`ArchiveChain`).
    public var cloud: CloudStore?

    public init(archive: ArchiveReference, target: ConnectionString) {
        self.archive = archive
        self.target = target
    }

    /// A local archive file.
    public init(archivePath: String, target: ConnectionString) {
        self.init(archive: .file(archivePath), target: target)
    }

    public subscript<Value>(dynamicMember choice: WritableKeyPath<RestoreChoices, Value>) -> Value {
        get { choices[keyPath: choice] }
        set { choices[keyPath: choice] = newValue }
    }
}

public struct RestoreResult: Codable, Sendable {
    public var backupId: String
    public var database: String
    public var restoredTables: [String]
    /// `full` (schema and data) or `data-only`.
    public var mode: String
    public var createdDatabase: Bool
    /// Connections the restore used (1 unless `--jobs` with `--create`).
    public var jobs: Int
    public var largeObjects: Int
    public var rows: UInt64
    public var rawBytes: UInt64
    /// A point-in-time restore: its target, the transactions replayed
    /// from the change stream and the last one's commit time.
    public var target: String?
    public var replayedTransactions: UInt64?
    public var replayedChanges: UInt64?
    public var restoredTo: String?
    public var durationSeconds: Double
    /// With `--create-roles`: the roles created, and those that existed
    /// and were left as they are.
    public var createdRoles: [String]?
    public var existingRoles: [String]?
    /// Roles created without (or with) SUPERUSER, REPLICATION or BYPASSRLS.
    public var roleNotices: [String]?
}

public enum RestoreError: Error, Sendable, CustomStringConvertible {
    case notConfirmed(database: String, tables: [String])
    case unmatchedPatterns([String])
    case tableMissing(String, database: String)
    /// The target's table lacks columns the archive holds, or has columns
    /// it holds no values for that need one.
    case columnsDiffer(String, missing: [String], required: [String])
    case requiresSuperuser(user: String)
    case truncateRefused(any Error)
    case table(String, any Error)
    case rowCountMismatch(String, expected: UInt64, loaded: UInt64)
    case step(String, any Error)
    case invalidOptions(String)
    case noSchema
    case targetNotEmpty(database: String, objects: [String])
    case databaseExists(String)
    case missingRole(String)
    case largeObjectsNotRestored(UInt64)
    case subsetNeedsDataOnly
    case refersToUnrestored(String)
    /// The pre-flight: everything the target server lacks, at once.
    case targetLacks([String])
    /// The restore would lock more objects in its one transaction than the
    /// server's lock table holds (checked before anything changes).
    case tooManyObjects(objects: Int, capacity: Int, maxLocksPerTransaction: Int)
    /// The server ran out of lock table space during the restore.
    case lockTableFull(any Error)
    /// Tables stored in COPY's binary format, which PostgreSQL loads only
    /// into its own major version or a newer one (checked before anything changes).
    case binaryNeedsNewerServer(tables: [String], sourceMajor: Int, targetMajor: Int)

    public var description: String {
        switch self {
        case .notConfirmed(let database, let tables):
            let list = tables.count <= 10 ? tables.joined(separator: ", ") : tables.prefix(10).joined(separator: ", ") + " and \(tables.count - 10) more"
            return "Restore would replace all rows of \(tables.count) table(s) in database \(database): \(list). Nothing was changed. Add --confirm to proceed."
        case .unmatchedPatterns(let patterns):
            return "No table in the archive matches --table \(patterns.joined(separator: ", ")). `arca inspect` lists the archive's tables."
        case .tableMissing(let table, let database):
            return "Table \(table) does not exist in database \(database). Create the schema first (for example with pg_dump --schema-only from the source), then restore the data. Nothing was changed."
        case .columnsDiffer(let table, let missing, let required):
            let problems = [
                missing.isEmpty ? nil : "it lacks column(s) (\(missing.joined(separator: ", "))) that the archive holds",
                required.isEmpty ? nil : "its column(s) (\(required.joined(separator: ", "))) are NOT NULL without a default, and the archive holds no values for them",
            ].compactMap { $0 }
            return "Table \(table) in the target cannot take the archive's rows: \(problems.joined(separator: "; ")). Make its columns match the source's (their order does not matter). Nothing was changed."
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
        case .invalidOptions(let message):
            return "\(message) Nothing was changed."
        case .noSchema:
            return "The archive holds no schema, only table data. Restore it with --data-only into a database that has the tables."
        case .targetNotEmpty(let database, let objects):
            return "Database \(database) is not empty (it holds \(objects.prefix(5).joined(separator: ", "))\(objects.count > 5 ? ", …" : "")). Restore into an empty database (--create makes one), or add --clean to drop and recreate the archive's objects, or --data-only to reload rows into the existing tables. Nothing was changed."
        case .databaseExists(let name):
            return "Database \(name) already exists, so --create cannot create it. Drop it first, or restore into it without --create. Nothing was changed."
        case .missingRole(let role):
            return "Role \(role), which owns or is granted objects in the archive, does not exist on the target server. Create it, or restore with --no-owner --no-privileges to give everything to the restoring role. The transaction was rolled back; the target is unchanged."
        case .largeObjectsNotRestored(let count):
            return "The archive holds \(count) large object(s), which a --table restore does not restore. Add --no-large-objects to restore the tables without them. Nothing was changed."
        case .refersToUnrestored(let message):
            return "A restored table refers to a table that is not restored (\(message)): a foreign key or an inheritance needs it. Add that table with --table. The transaction was rolled back; the target is unchanged."
        case .tooManyObjects(let objects, let capacity, let perTransaction):
            return "This restore runs in one transaction, which would lock at least \(objects) objects until it commits, but the server's lock table holds \(capacity) (max_locks_per_transaction \(perTransaction) × (max_connections + max_prepared_transactions)). Restore into a new database with --create, which builds it in a series of transactions and renames it when complete; or restore fewer tables at a time with --table; or raise max_locks_per_transaction on the target server (it takes a restart). Nothing was changed."
        case .binaryNeedsNewerServer(let tables, let sourceMajor, let targetMajor):
            let list = tables.prefix(10).joined(separator: ", ") + (tables.count > 10 ? " and \(tables.count - 10) more" : "")
            return "This archive holds \(tables.count) table(s) in COPY's binary format (\(list)), written by PostgreSQL \(sourceMajor); PostgreSQL \(targetMajor) cannot be relied on to read them, since binary COPY is only read by the same major version or a newer one. Restore into PostgreSQL \(sourceMajor) or later, or restore the other tables with --table (or --exclude-table) and take a backup with --copy-format text for this server. Nothing was changed."
        case .lockTableFull(let error):
            return "The server ran out of room in its lock table during the restore's one transaction (\(error)). Restore into a new database with --create, which builds it in a series of transactions, or raise max_locks_per_transaction on the target server (it takes a restart). The transaction was rolled back; the target is unchanged."
        case .subsetNeedsDataOnly:
            return "This archive does not record which schema objects belong to each table, so a subset of its tables cannot be restored with their schema. Create the schema first and restore with --data-only. Nothing was changed."
        case .targetLacks(let missing):
            let roles = missing.contains { $0.hasPrefix("role ") }
            return "The target server lacks what this archive needs: \(missing.joined(separator: "; ")). "
                + (roles ? "Create the roles, or restore with --create-roles (or --no-owner --no-privileges to give everything to the restoring role). " : "")
                + "Nothing was changed."
        }
    }
}

/// Restores an archive, all or nothing, in one transaction on the target.
///
/// - Full (default): into an empty database (or, with `--clean`, after
///   dropping the archive's objects): the schema's pre-data section, every
///   table's rows through COPY FROM STDIN, the post-data section (keys,
///   indexes, triggers: built after the data, so they neither slow the load
///   nor fire on restored rows), sequence values and large objects.
/// - Data only: into tables that exist; the restored tables are emptied and
///   reloaded with user triggers and foreign-key checks off.
///
/// Every chunk is checked end to end before its table's COPY completes
/// (see `readCheck`); any failure rolls everything back (and drops a
/// database `--create` made).
public struct RestoreRunner: Sendable {
    public let options: RestoreOptions

    /// What a restore checks as it reads: every chunk's frame header against
    /// the manifest, its CRC-32C or authentication tag, and its raw bytes
    /// against the content checksum inside it; archives older than format
    /// version 3 have none, and their streams' MD5 is checked instead.
    /// Recomputing the streams' MD5 and SHA-256 as well is `verify`'s job:
    /// on two cores the MD5 alone was half of a restore's own CPU.
    static let readCheck = ArchiveReader.StreamCheck.chunkContent

    public init(options: RestoreOptions) { self.options = options }

    public func run(progress: @escaping (OperationProgress) -> Void = { _ in }) throws -> RestoreResult {
        try run(reporter: ProgressReporter(.restore, report: progress))
    }

    private func run(reporter: ProgressReporter) throws -> RestoreResult {
        let clock = ContinuousClock.now
        let reader = try ArchiveTrust.reader(
            of: try options.archive.open(sequential: true), archive: options.archive.description, key: options.key,
            allowUnencrypted: options.allowUnencrypted)
        // Held until the restore ends: cleanup does not delete a local
        // archive that is being read.
        var readLock: FileLock?
        if case .file(let path) = options.archive {
            guard let lock = try FileLock(path: path, mode: .shared, create: false) else {
                throw RestoreError.invalidOptions("The archive \(path) is being removed by a cleanup.")
            }
            readLock = lock
        }
        defer { readLock?.release() }
        let manifest = reader.manifest
        if options.dataOnly && (options.clean || options.create) {
            throw RestoreError.invalidOptions("--data-only reloads rows into existing tables; it cannot be combined with --clean or --create.")
        }
        let unmatched = options.tables.unmatchedIncludes(manifest.tables.map { ($0.schema, $0.name) })
        guard unmatched.isEmpty else { throw RestoreError.unmatchedPatterns(unmatched) }
        let tables = manifest.tables.filter { options.tables.matches(schema: $0.schema, name: $0.name) }
        // An incremental backup's tables stored in other archives: each
        // archive found, locked and checked before anything changes.
        let chain = ArchiveChain(
            primary: reader, reference: options.archive, key: options.key, allowUnencrypted: options.allowUnencrypted,
            cloud: options.cloud, lockingFiles: true)
        defer { chain.release() }
        try chain.check(tables)
        // --table restores those tables with their own schema objects only
        // (no views, no other tables), even when it names every table.
        let subset = !options.tables.include.isEmpty || !options.tables.exclude.isEmpty || manifest.tableFilter != nil
        if !options.dataOnly {
            guard manifest.schema != nil else { throw RestoreError.noSchema }
            guard !subset || tables.allSatisfy({ $0.objects != nil }) else { throw RestoreError.subsetNeedsDataOnly }
        }
        let largeObjects = options.excludeLargeObjects ? 0 : manifest.largeObjectCount
        if subset, largeObjects > 0 { throw RestoreError.largeObjectsNotRestored(largeObjects) }

        let databaseName = options.target.value("dbname") ?? options.target.value("user") ?? "the target database"
        guard options.confirmed else {
            throw RestoreError.notConfirmed(database: databaseName, tables: tables.map(\.qualifiedName))
        }

        reporter.estimate(
            tables: tables.count, bytes: (tables.map(\.rawBytes) + [largeObjects > 0 ? manifest.largeObjectRawBytes : 0]).checkedSum)
        try checkBinaryTables(tables, of: manifest)
        reporter.phase("reading the schema")
        // Everything that can fail without the target is done first.
        // A private folder for pg_restore's object list (names only; the
        // dump itself goes to pg_restore through a pipe), kept while the
        // pre-data script is run from it.
        let directory = NSTemporaryDirectory() + "arca-restore-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        if !options.dataOnly { try FileSystem.makePrivateDirectory(directory) }
        defer { if !options.dataOnly { try? FileManager.default.removeItem(atPath: directory) } }
        let scripts = options.dataOnly
            ? SchemaScripts()
            : try schemaScripts(reader, keeping: subset ? Set(tables.flatMap { $0.objects ?? [] }) : nil, workDirectory: directory)
        let setup = DatabaseSetup(manifest: manifest, choices: options.choices)
        // Built before anything is created: a value that cannot be restored fails first.
        let properties = options.create ? try setup.propertyStatements(for: databaseName) : []
        reporter.phase("checking the target server")
        try preflight(setup)
        var roles: DatabaseSetup.RoleCreation?
        if options.createRoles {
            reporter.phase("creating roles")
            roles = try setup.createRoles(
                try PostgresConnection(options.target.replacing(database: "postgres"), applicationName: "arca restore"))
        }
        do {
            var result = try restore(
                chain: chain, tables: tables, subset: subset, largeObjects: largeObjects, scripts: scripts, setup: setup,
                properties: properties, databaseName: databaseName, clock: clock, reporter: reporter)
            if let roles {
                result.createdRoles = roles.created
                result.existingRoles = roles.existing
                result.roleNotices = roles.notices
            }
            return result
        } catch {
            DatabaseSetup.dropRoles(roles?.created ?? [], target: options.target)
            throw error
        }
    }

    /// Checks, before anything is created, that the target server has what
    /// the archive needs (`DatabaseSetup.missing`), and reports all of it.
    private func preflight(_ setup: DatabaseSetup) throws {
        if options.createRoles, setup.manifest.roles == nil {
            throw RestoreError.invalidOptions("This archive does not record its roles (it was written by an older Arca), so --create-roles cannot create them.")
        }
        if options.createRoles, options.dataOnly {
            throw RestoreError.invalidOptions("--create-roles creates the roles the schema needs; --data-only restores no schema.")
        }
        guard setup.manifest.database != nil || setup.manifest.roles != nil else { return }
        let connection = try PostgresConnection(targetServer, applicationName: "arca restore")
        let missing = try setup.missing(on: connection)
        guard missing.isEmpty else { throw RestoreError.targetLacks(missing) }
    }

    /// Where the target server is asked about itself: its `postgres`
    /// database when the restore creates the target.
    private var targetServer: ConnectionString {
        options.create ? options.target.replacing(database: "postgres") : options.target
    }

    /// Refuses, before anything is read or changed, binary tables among
    /// `tables` for a server older than the source: PostgreSQL reads binary
    /// COPY of its own major version and older ones only.
    private func checkBinaryTables(_ tables: [Manifest.Table], of manifest: Manifest) throws {
        let binary = tables.filter { $0.format == .binary }.map(\.qualifiedName)
        guard !binary.isEmpty else { return }
        let targetMajor = try PostgresConnection(targetServer, applicationName: "arca restore").serverVersionNumber / 10000
        guard targetMajor >= manifest.sourceMajorVersion else {
            throw RestoreError.binaryNeedsNewerServer(tables: binary, sourceMajor: manifest.sourceMajorVersion, targetMajor: targetMajor)
        }
    }

    private func restore(
        chain: ArchiveChain, tables: [Manifest.Table], subset: Bool, largeObjects: UInt64, scripts: SchemaScripts,
        setup: DatabaseSetup, properties: [String], databaseName: String, clock: ContinuousClock.Instant, reporter: ProgressReporter
    ) throws -> RestoreResult {
        let reader = chain.primary
        let manifest = reader.manifest
        // A restore that fits in one transaction runs in one; with --create,
        // one that does not is built in a staging database in a series of
        // transactions and renamed when complete, as a parallel one is.
        // Into an existing database it is refused before anything changes.
        let lockedObjects = options.dataOnly ? tables.count : scripts.lockedObjects
        var staged = options.create && options.jobs > 1
        if options.create, !staged {
            staged = try !fitsInOneTransaction(lockedObjects, server: options.target.replacing(database: "postgres"))
        }
        if staged {
            let loaded = try runParallel(
                Plan(reader: reader, chain: chain, tables: tables, subset: subset, largeObjects: largeObjects, scripts: scripts, databaseName: databaseName),
                reporter: reporter)
            reporter.finish()
            let duration = ContinuousClock.now - clock
            var result = RestoreResult(
                backupId: manifest.backupId, database: databaseName, restoredTables: tables.map(\.qualifiedName),
                mode: "full", createdDatabase: true, jobs: options.jobs, largeObjects: Int(clamping: largeObjects),
                rows: loaded.rows, rawBytes: loaded.rawBytes,
                durationSeconds: duration.seconds)
            result.record(loaded.replay)
            return result
        }
        var createdDatabase = false
        if options.create {
            try createDatabase(databaseName, encoding: manifest.source.encoding, setup: setup)
            createdDatabase = true
        }
        do {
            let connection = try PostgresConnection(options.target, applicationName: "arca restore")
            if !options.dataOnly, !options.clean {
                let objects = try step("checking that the target is empty") { try Catalog.userObjects(connection) }
                guard objects.isEmpty else { throw RestoreError.targetNotEmpty(database: connection.database, objects: objects) }
            }
            if !options.create {
                let lockTable = try step("reading the server's lock table size") { try Catalog.lockTable(connection) }
                guard lockedObjects <= lockTable.capacity else {
                    throw RestoreError.tooManyObjects(
                        objects: lockedObjects, capacity: lockTable.capacity, maxLocksPerTransaction: lockTable.perTransaction)
                }
            }
            try SessionSettings.apply(to: connection, encoding: manifest.source.encoding)
            // One transaction: its commit is synchronous whatever the
            // role's default, and index builds get room.
            try connection.execute("SET maintenance_work_mem = '256MB'; SET synchronous_commit = on", during: "tuning the session")
            try connection.execute("BEGIN", during: "starting the restore transaction")
            do {
                var restoreTriggerStates: [String] = []
                if options.dataOnly {
                    restoreTriggerStates = try prepareDataOnly(tables, connection)
                } else {
                    reporter.phase("creating the schema")
                    try runCleanScript(scripts.clean, connection)
                    try scripts.preData.batches(of: Self.statementsPerScript) { try runScript($0, "creating the schema (pre-data)", connection) }
                    try SessionSettings.apply(to: connection, encoding: manifest.source.encoding)
                }
                reporter.phase("loading tables")
                let loaded = try load(tables, from: chain, into: connection, reporter: reporter)
                if !options.dataOnly {
                    reporter.phase("building keys, indexes and triggers")
                    try runScript(scripts.postData, "building keys, indexes and triggers (post-data)", connection)
                }
                try step("re-enabling the triggers disabled for the load") {
                    for statement in restoreTriggerStates { try connection.execute(statement) }
                }
                reporter.phase("restoring sequences and large objects")
                try step("restoring sequence values") { try restoreSequences(of: tables, manifest: manifest, subset: subset, connection) }
                if largeObjects > 0 { try restoreLargeObjects(from: reader, connection, reporter: reporter) }
                let replay = try replayChanges(into: connection, encoding: manifest.source.encoding, reporter: reporter)
                reporter.phase("committing")
                try step("committing") { try connection.execute("COMMIT", during: "COMMIT") }
                if createdDatabase {
                    // After the data: settings such as default_transaction_read_only
                    // must not act on the restore's own session.
                    reporter.phase("setting the database's properties")
                    try DatabaseSetup.apply(
                        properties + setup.finalStatements(for: databaseName), target: options.target,
                        during: "setting the database's owner, settings and privileges")
                }
                reporter.finish()
                let duration = ContinuousClock.now - clock
                var result = RestoreResult(
                    backupId: manifest.backupId, database: connection.database, restoredTables: tables.map(\.qualifiedName),
                    mode: options.dataOnly ? "data-only" : "full", createdDatabase: createdDatabase, jobs: 1,
                    largeObjects: Int(clamping: largeObjects), rows: loaded.rows, rawBytes: loaded.rawBytes,
                    durationSeconds: duration.seconds)
                result.record(replay)
                return result
            } catch {
                // A lost connection has rolled back on the server already.
                if connection.isAlive { _ = try? connection.execute("ROLLBACK") }
                if Self.isOutOfLockSpace(error) { throw RestoreError.lockTableFull(error) }
                throw error
            }
        } catch {
            if createdDatabase { dropDatabase(databaseName) }
            throw error
        }
    }

    /// Whether `objects` locked objects fit in the lock table of the
    /// server (asked through `server`, a connection string to one of its
    /// databases).
    func fitsInOneTransaction(_ objects: Int, server: ConnectionString) throws -> Bool {
        try step("reading the server's lock table size") {
            objects <= (try Catalog.lockTable(try PostgresConnection(server, applicationName: "arca restore"))).capacity
        }
    }

    /// "out of shared memory" (SQLSTATE 53200), with the hint to raise
    /// max_locks_per_transaction: the lock table is full. It arrives
    /// wrapped in the step or table that met it.
    static func isOutOfLockSpace(_ error: any Error) -> Bool {
        switch error {
        case let error as PostgresError: error.sqlState == "53200"
        case RestoreError.step(_, let inner), RestoreError.table(_, let inner): isOutOfLockSpace(inner)
        default: false
        }
    }

    /// Runs statements in a series of transactions of at most `size`
    /// statements each, as pg_restore commits every object on its own: in
    /// the staging database nobody sees the schema half-built, and no
    /// transaction holds more locks than the server's lock table has room
    /// for, however many objects the archive holds.
    func runInTransactions(
        _ statements: [SQLScript.Statement], _ what: String, _ connection: PostgresConnection, size: Int
    ) throws {
        let size = max(1, size)
        for first in stride(from: 0, to: statements.count, by: size) {
            try runInTransaction(statements[first..<min(statements.count, first + size)], what, connection)
        }
    }

    func runInTransaction(_ statements: some Sequence<SQLScript.Statement>, _ what: String, _ connection: PostgresConnection) throws {
        try step(what) { try connection.execute("BEGIN", during: what) }
        try runScript(statements, what, connection)
        try step(what) { try connection.execute("COMMIT", during: what) }
    }

    /// Statements sent in one script when a script streams into one
    /// transaction: few round trips, and little text held.
    static let statementsPerScript = 1000

    // MARK: Schema

    func schemaScripts(_ reader: ArchiveReader, keeping objects: Set<UInt32>?, workDirectory: String) throws -> SchemaScripts {
        guard let schema = reader.manifest.schema else { throw RestoreError.noSchema }
        let serverMajor = reader.manifest.source.serverVersionNumber / 10000
        let tools = try PostgresTools.locate(
            "pg_restore", for: .reading(dumpVersion: schema.pgDumpVersion, serverMajor: serverMajor),
            directory: options.postgresBinDirectory)
        return try SchemaScripts.generate(
            dump: { write in try reader.readStream(schema, named: "the schema dump", checking: Self.readCheck) { try write($0) } },
            workDirectory: workDirectory, tools: tools,
            options: .init(
                clean: options.clean, noOwner: options.noOwner, noPrivileges: options.noPrivileges, keptObjects: objects,
                largeObjects: !options.excludeLargeObjects))
    }

    /// Runs statements as one script: the server parses them, so nothing
    /// of the text is cut or joined by guesswork.
    func runScript(_ statements: some Sequence<SQLScript.Statement>, _ what: String, _ connection: PostgresConnection) throws {
        try runScript(SQLScript.joined(statements), what, connection)
    }

    func runScript(_ script: String, _ what: String, _ connection: PostgresConnection) throws {
        guard !script.isEmpty else { return }
        do {
            try connection.execute(script, during: what)
        } catch let error as PostgresError {
            if error.sqlState == "42704", case .server(let server, _) = error, server.message.hasPrefix("role \"") {
                let role = server.message.dropFirst(6).prefix { $0 != "\"" }
                throw RestoreError.missingRole(String(role))
            }
            if error.sqlState == "42P01", case .server(let server, _) = error, !options.tables.include.isEmpty || !options.tables.exclude.isEmpty {
                throw RestoreError.refersToUnrestored(server.message)
            }
            throw RestoreError.step(what, error)
        }
    }

    /// Runs the DROP statements of `--clean` one by one, each in a savepoint,
    /// going past the ones that fail, as pg_restore --clean does: some are
    /// redundant (an index or an inherited constraint goes with its table)
    /// and fail. That is safe: an object that really stays in the way makes
    /// its CREATE in pre-data fail, which rolls the whole restore back.
    func runCleanScript(_ statements: [SQLScript.Statement], _ connection: PostgresConnection) throws {
        let what = "dropping the archive's objects (--clean)"
        for statement in statements {
            try connection.execute("SAVEPOINT arca_clean", during: what)
            do {
                try connection.execute(statement.text, during: what)
                try connection.execute("RELEASE SAVEPOINT arca_clean", during: what)
            } catch let error as PostgresError {
                if case .connectionLost = error { throw RestoreError.step(what, error) }
                try connection.execute("ROLLBACK TO SAVEPOINT arca_clean", during: what)
            }
        }
    }

    /// Creates database `name` with the archive's encoding and locale
    /// (`setup`), or with `checkOnly` only checks that it does not exist.
    func createDatabase(_ name: String, encoding: String, setup: DatabaseSetup? = nil, checkOnly: Bool = false) throws {
        let maintenance = try PostgresConnection(options.target.replacing(database: "postgres"), applicationName: "arca restore")
        let exists = try maintenance.query("SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1", [name], during: "looking up database \(name)")
        guard exists.rows.isEmpty else { throw RestoreError.databaseExists(name) }
        guard !checkOnly else { return }
        let statement = DatabaseSetup.createStatement(
            name, encoding: encoding, database: setup?.database, serverVersion: maintenance.serverVersionNumber)
        try step("creating database \(name)") {
            try maintenance.execute(statement, during: "CREATE DATABASE")
        }
    }

    /// Undoes `--create` after a failure, so a failed restore leaves nothing.
    func dropDatabase(_ name: String) {
        guard let maintenance = try? PostgresConnection(options.target.replacing(database: "postgres"), applicationName: "arca restore") else { return }
        _ = try? maintenance.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(name)) WITH (FORCE)")
    }

    // MARK: Data

    /// Data-only: the tables must exist with the archive's columns, in any
    /// order (COPY names them: a dump and restore of an inheritance child
    /// puts its own columns after the inherited ones); they are emptied, and
    /// triggers and foreign-key checks are off for the load.
    ///
    /// session_replication_role = replica leaves out every trigger but
    /// those set ENABLE ALWAYS or ENABLE REPLICA, so these are disabled in
    /// the transaction too. Returns the statements that set them back as
    /// they were, to run after the load, before the commit.
    func prepareDataOnly(_ tables: [Manifest.Table], _ connection: PostgresConnection) throws -> [String] {
        do {
            try connection.execute("SET LOCAL session_replication_role = replica", during: "disabling triggers for the restore")
        } catch let error as PostgresError where error.sqlState == "42501" {
            throw RestoreError.requiresSuperuser(user: connection.user)
        }
        let targets = try step("looking up the tables to restore") {
            try Catalog.columns(of: tables.map { ($0.schema, $0.name) }, connection)
        }
        for (table, target) in zip(tables, targets) {
            guard let target else { throw RestoreError.tableMissing(table.qualifiedName, database: connection.database) }
            let archived = Set(table.columns), present = Set(target.names)
            let missing = table.columns.filter { !present.contains($0) }
            let required = target.required.filter { !archived.contains($0) }
            guard missing.isEmpty, required.isEmpty else {
                throw RestoreError.columnsDiffer(table.qualifiedName, missing: missing, required: required)
            }
        }
        guard !tables.isEmpty else { return [] }
        let firing = try step("listing the tables' triggers") {
            try Catalog.triggersFiringInReplicaMode(on: tables.map { ($0.schema, $0.name) }, connection)
        }
        var restoreStates: [String] = []
        for trigger in firing {
            let table = "ALTER TABLE ONLY \(SQLIdentifier.qualified(trigger.schema, trigger.table))"
            let name = SQLIdentifier.quote(trigger.name)
            try step("disabling trigger \(trigger.name) of \(trigger.schema).\(trigger.table) for the load") {
                try connection.execute("\(table) DISABLE TRIGGER \(name)")
            }
            restoreStates.append("\(table) \(trigger.enabled == "A" ? "ENABLE ALWAYS" : "ENABLE REPLICA") TRIGGER \(name)")
        }
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
        return restoreStates
    }

    func load(
        _ tables: [Manifest.Table], from chain: ArchiveChain, into connection: PostgresConnection, reporter: ProgressReporter
    ) throws -> (rows: UInt64, rawBytes: UInt64) {
        let decoders = ArchiveChain.Decoders()
        var rows: UInt64 = 0, rawBytes: UInt64 = 0
        for table in tables {
            reporter.working(on: table.qualifiedName)
            var loaded: UInt64 = 0
            do {
                // Every restored table was created or emptied in this
                // transaction, so its rows can be written already frozen.
                let statement = "COPY \(table.copyTarget) FROM STDIN" + table.format.copyOptions(freeze: true)
                let during = "COPY into \(table.qualifiedName)"
                let send = { (writer: CopyInWriter, raw: UnsafeRawBufferPointer) throws in
                    try writer.send(raw)
                    reporter.count(bytes: UInt64(raw.count))
                    reporter.send()
                }
                switch table.format {
                case .text:
                    // Text parts are rows cut anywhere: one COPY reads them all.
                    loaded = try connection.copyIn(statement, during: during) { writer in
                        try chain.readTable(table, decoders: decoders, checking: Self.readCheck) { try send(writer, $0) }
                    }
                case .binary:
                    // Each binary part is a whole COPY stream, header and trailer.
                    for part in table.parts.indices {
                        let rows = try connection.copyIn(statement, during: during) { writer in
                            try chain.readPart(table, part: part, decoders: decoders, checking: Self.readCheck) { try send(writer, $0) }
                        }
                        loaded = [loaded, rows].checkedSum ?? .max
                    }
                }
            } catch {
                throw RestoreError.table(table.qualifiedName, error)
            }
            guard loaded == table.rows else { throw RestoreError.rowCountMismatch(table.qualifiedName, expected: table.rows, loaded: loaded) }
            reporter.count(bytes: 0, tableFinished: true)
            rows = [rows, loaded].checkedSum ?? .max
            rawBytes = [rawBytes, table.rawBytes].checkedSum ?? .max
        }
        return (rows, rawBytes)
    }

    /// Gives the sequences their state from the snapshot: those owned by a
    /// restored column, and standalone ones when the whole archive is
    /// restored. The snapshot's value is at or past every restored value the
    /// sequence generated. `setval` calls go `batch` to a statement; with
    /// `committing`, each statement is a transaction of its own (`setval`
    /// locks its sequence).
    func restoreSequences(
        of tables: [Manifest.Table], manifest: Manifest, subset: Bool, _ connection: PostgresConnection,
        batch: Int = 500, committing: Bool = false
    ) throws {
        let restored = Set(tables.map(\.qualifiedName))
        let calls = manifest.sequences.filter { sequence in
            sequence.ownedBy.map { restored.contains("\($0.schema).\($0.table)") } ?? !subset
        }.map { sequence in
            let name = SQLIdentifier.qualified(sequence.schema, sequence.name)
            return "pg_catalog.setval(\(SQLIdentifier.literal(name)), \(sequence.lastValue), \(sequence.isCalled))"
        }
        let batch = max(1, batch)
        for first in stride(from: 0, to: calls.count, by: batch) {
            let select = "SELECT " + calls[first..<min(calls.count, first + batch)].joined(separator: ", ")
            try connection.execute(committing ? "BEGIN; \(select); COMMIT" : select, during: "setting sequence values")
        }
    }

    /// Writes each large object's contents, as the archive streams them
    /// (one object open at a time). A full restore's pre-data created them
    /// (with owner, privileges and comment); a data-only restore creates
    /// the missing ones.
    func restoreLargeObjects(from reader: ArchiveReader, _ connection: PostgresConnection, reporter: ProgressReporter) throws {
        var current: (oid: UInt32, writer: LargeObjectWriter)?
        defer { current?.writer.close() }
        do {
            try reader.readLargeObjects(checking: Self.readCheck) { event in
                switch event {
                case .begin(let oid):
                    try step("restoring large object \(oid)") {
                        let exists = options.dataOnly
                            ? !(try connection.query("SELECT 1 FROM pg_catalog.pg_largeobject_metadata WHERE oid = $1", [String(oid)]).rows.isEmpty)
                            : true
                        current = (oid, try connection.openLargeObjectForWriting(oid, create: !exists))
                    }
                case .bytes(let raw):
                    guard let current else { return }
                    try step("restoring large object \(current.oid)") { try current.writer.write(raw) }
                    reporter.count(bytes: UInt64(raw.count))
                case .end:
                    current?.writer.close()
                    current = nil
                    reporter.send()
                }
            }
        } catch let error as RestoreError {
            throw error
        } catch {
            // The archive's own problems (a damaged chunk, a malformed record).
            throw RestoreError.step(current.map { "restoring large object \($0.oid)" } ?? "restoring large objects", error)
        }
    }

    @discardableResult
    /// Replays the change stream (a point-in-time restore) into the
    /// restore's open transaction; nil when there is nothing to replay.
    func replayChanges(into connection: PostgresConnection, encoding: String, reporter: ProgressReporter) throws -> ChangeReplay? {
        guard let plan = options.replay else { return nil }
        reporter.phase("replaying the change stream to \(plan.target)")
        let replay = ChangeReplay(plan: plan)
        try replay.apply(to: connection, encoding: encoding)
        return replay
    }

    func step<T>(_ name: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as RestoreError {
            throw error
        } catch {
            throw RestoreError.step(name, error)
        }
    }
}

extension RestoreResult {
    mutating func record(_ replay: ChangeReplay?) {
        guard let replay else { return }
        target = replay.plan.target.description
        replayedTransactions = replay.transactions
        replayedChanges = replay.changes
        restoredTo = replay.lastCommit.map { Manifest.timestamp(PostgresTime.date(microseconds: $0)) }
    }
}

extension Manifest.Table {
    /// `"schema"."table" ("col", …)`: what COPY … FROM STDIN loads.
    var copyTarget: String { SQLIdentifier.qualified(schema, name) + SQLIdentifier.columnList(columns) }
}
