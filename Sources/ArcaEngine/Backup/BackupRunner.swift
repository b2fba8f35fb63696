import ArcaFormat
import ArcaPostgres
import Foundation

public struct BackupOptions: Sendable {
    public var source: ConnectionString
    public var repository: Repository
    public var chunkSize: UInt32 = ArchiveFormat.defaultChunkSize
    public var compressionLevel = BackupOptions.defaultCompressionLevel
    public var tables = TableFilter()
    /// How long to wait for the ACCESS SHARE lock on each table before giving up.
    public var lockTimeoutMilliseconds = 60_000
    /// Leave large objects out. Without it, a database with large objects is
    /// never backed up without them.
    public var excludeLargeObjects = false
    /// Where pg_dump is (default: the newest installed PostgreSQL's bin folder, else PATH).
    public var postgresBinDirectory: String?
    /// Parallel connections (each with a reader and an encoder thread).
    public var jobs = BackupOptions.defaultJobs
    /// Tables larger than this are copied as several ctid ranges at once.
    public var splitThresholdBytes: UInt64 = 256 << 20
    /// `--copy-format`/`ARCA_COPY_FORMAT`: the COPY format of each table's
    /// rows (`CopyFormatChoice`).
    public var copyFormat = CopyFormatChoice.auto
    /// `--max-rate`/`ARCA_MAX_RATE`: table data read from the server per
    /// second, all workers together, large objects and an incremental
    /// backup's comparison reads included (nil: unlimited).
    public var maxRate: ByteRate?

    public static var defaultJobs: Int { max(2, ProcessInfo.processInfo.activeProcessorCount) }
    /// zstd level 1: measured (BENCHMARKS.md) about twice as fast as level 3
    /// to compress, which on a server whose cores also run the COPY is backup
    /// time, and within a few percent of level 3's size on real table data.
    public static let defaultCompressionLevel: Int32 = 1
    /// Stops the backup cleanly when cancelled (SIGTERM, service shutdown).
    public var cancellation = Cancellation()
    /// Recorded in the manifest.
    public var trigger = BackupTrigger.manual
    /// Encrypts the archive (chunks, schema, manifest) when set.
    public var encryptionKey: ArchiveKey?
    /// Where finished archives are also kept. The archive is uploaded after
    /// it is published locally, or, with `uploadOnly`, streamed to the
    /// bucket as it is written, with no local copy.
    public var cloud: CloudStore?
    public var uploadOnly = false
    /// Record the password hashes of the roles the database refers to.
    /// Only into an encrypted archive; reading them needs a superuser.
    public var withRolePasswords = false
    /// The change stream's slot (nil: the database's default slot): when it
    /// exists in the database, the backup is anchored in the stream
    /// (`Manifest.anchor`), for point-in-time restore.
    public var streamSlot: String?
    /// Store the tables unchanged since the newest backup of the database
    /// as references to the archives holding them (`UnchangedTables`).
    /// Without such a backup, a full one is made and the result says why.
    public var incremental = false
    /// Exact evidence, besides reading each table, that tables are unchanged
    /// since the base (an incremental backup's); nil: every candidate is read.
    public var changeEvidence: (any ChangeEvidence)?

    public init(source: ConnectionString, repository: Repository) {
        self.source = source
        self.repository = repository
    }
}

/// What started a backup; recorded in its manifest and in the audit trail.
public enum BackupTrigger: String, Codable, Sendable {
    /// A person or a script, from the command line.
    case manual
    case scheduled
    /// The scheduler at start-up, for a scheduled backup missed while it was down.
    case missed
    case api
}

public struct BackupResult: Codable, Sendable {
    public var backupId: String
    public var path: String
    /// Size of the archive file.
    public var bytes: UInt64
    public var tables: Int
    public var rows: UInt64
    /// Length of all COPY streams together, before compression.
    public var rawBytes: UInt64
    public var durationSeconds: Double
    public var md5: String
    /// Where the cloud copy is (`s3://bucket/prefix/<id>.arca`), when there is one.
    public var cloud: String?
    /// An incremental backup: the backup it is based on, how many tables it
    /// stores as references to other archives and their raw bytes (`bytes`
    /// is what this archive added).
    public var base: String?
    public var referencedTables: Int?
    public var referencedRawBytes: UInt64?
    /// Of those, the tables the change stream vouched for: referenced
    /// without being read (`ChangeEvidence`).
    public var unreadTables: Int?
    /// Whether reading the backup back found it intact (`--verify`,
    /// `ARCA_VERIFY_AFTER_BACKUP`): the local file, and the bucket copy.
    public var verified: Bool?
    public var cloudVerified: Bool?
    /// Why an incremental backup asked for was made full.
    public var note: String?
}

public enum BackupError: Error, Sendable, CustomStringConvertible {
    case connect(PostgresError)
    case snapshot(PostgresError)
    case table(String, any Error)
    case lockTimeout(String, milliseconds: Int)
    /// Another session changed the table after the backup's snapshot was
    /// taken and before the backup held its lock.
    case tableChanged(String, TableChange)
    case unmatchedPatterns([String])
    case schema(any Error)
    case largeObject(UInt32, any Error)
    /// `--with-role-passwords` for an archive that would not be encrypted.
    case rolePasswordsNeedEncryption
    /// `--with-role-passwords` by a role that may not read `pg_authid`.
    case rolePasswordsUnreadable(user: String)
    /// `--copy-format binary` for tables with columns binary COPY cannot
    /// carry exactly: each table with its first such columns.
    case binaryCopyImpossible([(table: String, columns: [Catalog.TextOnlyColumn])])

    public var description: String {
        switch self {
        case .connect(let error):
            "\(error)"
        case .snapshot(let error):
            "Cannot open a consistent snapshot of the database: \(error)"
        case .table(let table, let error):
            "Backup of table \(table) failed: \(error) No archive was written; fix the cause and run the backup again."
        case .lockTimeout(let table, let milliseconds):
            "Table \(table) stayed locked by another session for \(milliseconds) ms, so the backup could not read it. Find the blocking session in pg_stat_activity, or raise --lock-timeout."
        case .tableChanged(let table, let change):
            "Table \(table) \(change) by another session after the backup took its snapshot and before it could lock the table, so its rows cannot be read as of that snapshot. No archive was written; run the backup again."
        case .unmatchedPatterns(let patterns):
            "No table matches --table \(patterns.joined(separator: ", ")). `arca backup` refuses rather than write a backup without the tables you named."
        case .schema(let error):
            "Cannot capture the schema: \(error) No archive was written."
        case .largeObject(let oid, let error):
            "Backup of large object \(oid) failed: \(error) No archive was written."
        case .rolePasswordsNeedEncryption:
            "--with-role-passwords records password hashes, which only go into an encrypted archive: configure a key (ARCA_KEY_FILE) or a repository passphrase, or leave the flag out. No archive was written."
        case .rolePasswordsUnreadable(let user):
            "Role \(user) may not read the roles' password hashes (pg_authid), which --with-role-passwords records: back up as a superuser, or leave the flag out. No archive was written."
        case .binaryCopyImpossible(let tables):
            "--copy-format binary cannot copy \(tables.count == 1 ? "table" : "\(tables.count) tables") exactly: "
                + tables.prefix(10).map { table in
                    "\(table.table) (" + table.columns.prefix(5).map { "column \($0.name) of type \($0.type)" }.joined(separator: ", ")
                        + (table.columns.count > 5 ? ", …" : "") + ")"
                }.joined(separator: "; ") + (tables.count > 10 ? "; …" : "")
                + ". Their binary form names objects by OID (arrays or composites of user-defined types, enums, extension types, reg* types) or does not exist. Use --copy-format auto, which copies these tables as text and the others in binary, or exclude them. No archive was written."
        }
    }
}

/// What another session did to a table between the backup's snapshot and its lock.
public enum TableChange: Sendable, CustomStringConvertible {
    /// DROP TABLE or ALTER TABLE … RENAME / SET SCHEMA: the name the snapshot listed is gone.
    case droppedOrRenamed
    /// TRUNCATE or a rewriting ALTER TABLE (a column type, a volatile default),
    /// VACUUM FULL or CLUSTER: the snapshot would see the new, empty file.
    case rewritten
    /// ALTER TABLE … DROP COLUMN or RENAME COLUMN: a column the snapshot lists is gone.
    case columnDroppedOrRenamed

    public var description: String {
        switch self {
        case .droppedOrRenamed: "was dropped or renamed"
        case .rewritten: "was truncated or rewritten (TRUNCATE, ALTER TABLE, VACUUM FULL or CLUSTER)"
        case .columnDroppedOrRenamed: "had a column dropped or renamed"
        }
    }
}

/// Backs up one database into one archive, in named phases:
///
/// 1. `openSnapshot`: a read-only REPEATABLE READ transaction that exports
///    its snapshot; `readSource`: the tables and their locks, then, while
///    pg_dump starts the schema dump in the snapshot (`SchemaCapture`), the
///    sequences and the catalog facts.
/// 2. `copyTables`: each table's COPY stream through the chunk pipeline,
///    beside the schema dump, all in the snapshot.
/// 3. `copyLargeObjects`.
/// 4. `seal`: the manifest and trailer; the temporary file (or streamed
///    upload) becomes visible only now, complete.
/// 5. `upload`: the finished archive to the bucket, when one is configured.
public struct BackupRunner: Sendable {
    public let options: BackupOptions
    /// `options.maxRate`'s bucket, one for the whole backup: the
    /// comparison pass, the tables and the large objects draw from it in
    /// turn. Its burst is one chunk, what a worker reads between takes.
    let limiter: RateLimiter?

    public init(options: BackupOptions) {
        self.options = options
        limiter = options.maxRate.map { RateLimiter(rate: $0, burst: UInt64(options.chunkSize)) }
    }

    /// `started` is called with the backup's id once it is reserved (before
    /// any data is read), for callers that answer before the backup ends.
    public func run(
        now: @Sendable () -> Date = Date.init, started: (BackupID) -> Void = { _ in },
        progress: @escaping (OperationProgress) -> Void = { _ in }
    ) throws -> BackupResult {
        try run(now: now, started: started, reporter: ProgressReporter(.backup, report: progress))
    }

    private func run(now: @Sendable () -> Date, started: (BackupID) -> Void, reporter: ProgressReporter) throws -> BackupResult {
        let startTime = now()
        // One writer per repository; also clears what a crashed run left in temp/.
        let repositoryLock = try options.repository.lockForWriting("backup")
        defer { repositoryLock.release() }
        if options.withRolePasswords, options.encryptionKey == nil {
            throw BackupError.rolePasswordsNeedEncryption
        }
        reporter.phase("taking the snapshot")
        let (connection, snapshot, tools) = try openSnapshot()
        try options.repository.prepare()
        let destination = try makeDestination(startedAt: startTime)
        started(destination.id)
        var result: BackupResult
        var schemaCapture: SchemaCapture?
        var note: String?
        var neededBackups: [BackupID] = []
        do {
            let header = FileHeader(
                chunkSize: options.chunkSize, compression: .zstd, compressionLevel: Int8(clamping: options.compressionLevel),
                archiveID: .random())
            // A passphrase shares the repository's salt: readers stretch it once for all archives.
            let writer = try ArchiveWriter(sink: destination.sink, header: header, key: try options.repository.writingKey(options.encryptionKey))
            let source = try readSource(connection, snapshot: snapshot, tools: tools) {
                schemaCapture = SchemaCapture(
                    tools: tools, snapshot: snapshot.source.snapshot, options: options, writer: writer, stream: Self.schemaStream)
            }
            var base: IncrementalBase?
            var unchanged: [Int: UnchangedTables.Reference] = [:]
            var unread: Int?
            if options.incremental {
                let found = try findBase(of: source.snapshot.source, now: now())
                base = found.0
                note = found.reason.map { "A full backup was made: \($0)." }
                if let base {
                    (unchanged, unread) = try unchangedTables(source, base: base, schema: schemaCapture!, writer: writer, reporter: reporter)
                }
            }
            let copied = try copyTables(source, schema: schemaCapture!, unchanged: unchanged, into: writer, reporter: reporter)
            neededBackups = Set(unchanged.values.map(\.storedIn)).sorted().compactMap(BackupID.init)
            let largeObjects = try copyLargeObjects(source, into: writer, stream: copied.nextStream, reporter: reporter)
            try source.endSnapshot()
            reporter.phase("writing the manifest")
            result = try seal(
                source, header: header, tables: copied.entries, schema: copied.schema, largeObjects: largeObjects,
                base: base?.manifest.backupId, writer: writer, destination: destination, startTime: startTime, now: now, reporter: reporter)
            result.note = note
            result.unreadTables = unread
        } catch {
            // The archive is discarded only once pg_dump stopped writing to it.
            _ = try? schemaCapture?.wait()
            destination.discard()
            // A destination that failed by itself (the bucket went away) is
            // the cause, whatever the writer's threads made of it.
            throw destination.failure ?? error
        }
        try upload(&result, destination.id, needing: neededBackups, reporter: reporter)
        reporter.finish()
        return result
    }

    // MARK: Phase 1: the source

    /// The open snapshot and everything read in it before the data.
    struct Source {
        let connection: PostgresConnection
        let snapshot: Snapshot
        let tables: [TableDescriptor]
        /// Exact sizes, read once the tables are locked.
        let sizes: [UInt64]
        /// The COPY format of each table (`options.copyFormat` applied).
        let formats: [Manifest.CopyFormat]
        let sequences: [Manifest.Sequence]
        let tools: PostgresTools
        /// Each table's schema objects, and each table's ancestors.
        let objects: [UInt32: [UInt32]]
        let ancestors: [UInt32: [UInt32]]
        let largeObjects: [UInt32]
        /// The database's own properties and the roles it refers to.
        let database: Manifest.Database
        let roles: [Manifest.Role]

        func endSnapshot() throws {
            do {
                try connection.execute("COMMIT", during: "ending the snapshot transaction")
            } catch let error as PostgresError {
                throw BackupError.snapshot(error)
            }
            connection.close()
        }
    }

    /// Connects, exports the snapshot everything is read in, and finds the
    /// pg_dump for this server.
    private func openSnapshot() throws -> (PostgresConnection, Snapshot, PostgresTools) {
        let connection: PostgresConnection
        do {
            connection = try PostgresConnection(options.source, applicationName: "arca backup")
        } catch let error as PostgresError {
            throw BackupError.connect(error)
        }
        let snapshot = try openSnapshot(connection)
        do {
            let tools = try PostgresTools.locate(serverMajor: connection.serverVersionNumber / 10000, directory: options.postgresBinDirectory)
            return (connection, snapshot, tools)
        } catch {
            throw BackupError.schema(error)
        }
    }

    /// Everything read in the snapshot before the data. `tablesChecked` is
    /// called once every table has been locked, checked and released
    /// (`checkTables`): pg_dump, which locks every table itself and keeps
    /// the locks, starts then, so the two never fill the lock table together.
    private func readSource(
        _ connection: PostgresConnection, snapshot: Snapshot, tools: PostgresTools, tablesChecked: () -> Void
    ) throws -> Source {
        let tables = try selectTables(connection)
        // Before any lock or data: a forced binary copy that cannot be exact is refused first.
        let formats = try copyFormats(of: tables, connection)
        let sizes = try checkTables(tables, connection)
        tablesChecked()
        let sequences = try selectSequences(connection, tables: tables)
        // The catalog reads below lock some fifty catalogs and indexes;
        // released at once, they leave the lock table to pg_dump.
        let roles: [Manifest.Role] = try releasingLocks(connection) {
            do {
                return try DatabaseCapture.roles(connection, withPasswords: options.withRolePasswords)
            } catch let error as PostgresError where error.sqlState == "42501" {
                throw BackupError.rolePasswordsUnreadable(user: connection.user)
            } catch {
                throw BackupError.schema(error)
            }
        }
        do {
            return try releasingLocks(connection) {
                Source(
                    connection: connection, snapshot: snapshot, tables: tables, sizes: sizes, formats: formats,
                    sequences: sequences, tools: tools,
                    objects: try Catalog.dependentObjects(connection), ancestors: try Catalog.ancestors(connection),
                    largeObjects: options.excludeLargeObjects ? [] : try Catalog.largeObjects(connection),
                    database: try DatabaseCapture.properties(connection), roles: roles)
            }
        } catch let error as BackupError {
            throw error
        } catch {
            throw BackupError.schema(error)
        }
    }

    // MARK: Phase 2: tables and the schema

    struct CopiedTables {
        var entries: [Manifest.Table]
        var schema: Manifest.Schema
        var nextStream: UInt32
    }

    /// The schema dump's stream; the tables' streams follow it.
    static let schemaStream: UInt32 = 0

    /// The schema, by pg_dump, in the backup's snapshot, streamed straight
    /// into the archive (never to a file: it would be plaintext next to an
    /// encrypted archive). Started once the tables are checked, before the
    /// rest of the catalog is read: pg_dump mostly waits on catalog
    /// queries, which then overlap arca's own and the copies. If it fails,
    /// the copy under way (or the next one) stops.
    final class SchemaCapture: @unchecked Sendable {
        private let lock = NSLock()
        private var copy: ParallelCopy?
        private var failure: (any Error)?
        private var work: BackgroundWork<StreamSummary>?
        let stream: UInt32

        init(tools: PostgresTools, snapshot: String, options: BackupOptions, writer: ArchiveWriter, stream: UInt32) {
            self.stream = stream
            let level = options.compressionLevel
            work = BackgroundWork { [self] () throws -> StreamSummary in
                let schemaStream = StreamWriter(archive: writer, encoder: writer.makeEncoder(level: level), stream: stream)
                do {
                    try tools.run("pg_dump", [
                        "--format=custom", "--compress=0", "--section=pre-data", "--section=post-data", "--no-sync",
                        "--snapshot=\(snapshot)", "--lock-wait-timeout=\(options.lockTimeoutMilliseconds)",
                    ], connection: options.source) { data in
                        try data.withUnsafeBytes { try schemaStream.append($0) }
                    }
                    return try schemaStream.finish()
                } catch {
                    failed(BackupError.schema(error))
                    throw BackupError.schema(error)
                }
            }
        }

        /// Stops `copy` when the capture fails, or at once if it has.
        func stopping(_ copy: ParallelCopy) {
            lock.lock()
            defer { lock.unlock() }
            if let failure { copy.abort(failure) } else { self.copy = copy }
        }

        private func failed(_ error: any Error) {
            lock.lock()
            failure = error
            let copy = self.copy
            lock.unlock()
            copy?.abort(error)
        }

        func wait() throws -> StreamSummary { try work!.wait() }
    }

    /// Every table (or ctid range of a big one) through the parallel
    /// pipeline, all in the exported snapshot, beside the schema capture.
    /// Tables in `unchanged` (by index) are not copied: their entries
    /// refer to the archive that holds their rows.
    private func copyTables(
        _ source: Source, schema capture: SchemaCapture, unchanged: [Int: UnchangedTables.Reference], into writer: ArchiveWriter,
        reporter: ProgressReporter
    ) throws -> CopiedTables {
        let copied = source.tables.indices.filter { unchanged[$0] == nil }
        var tasks = plan(
            copied.map { source.tables[$0] }, sizes: copied.map { source.sizes[$0] }, formats: copied.map { source.formats[$0] },
            firstStream: capture.stream + 1)
        for index in tasks.indices { tasks[index].table = copied[tasks[index].table] }
        let copy = ParallelCopy(
            tasks: tasks, jobs: options.jobs, source: options.source, snapshot: source.snapshot.source.snapshot,
            encoding: source.snapshot.source.encoding, lockTimeoutMilliseconds: options.lockTimeoutMilliseconds,
            archive: writer, level: options.compressionLevel, cancellation: options.cancellation)
        if options.uploadOnly { copy.buffersPerWorker = 1 }
        copy.limiter = limiter
        capture.stopping(copy)
        // The tables' size on disk estimates the COPY text to come.
        reporter.estimate(tables: tasks.count, bytes: copied.lazy.map { source.sizes[$0] }.checkedSum)
        reporter.phase("copying tables")
        let results = try copy.run {
            let status = copy.status()
            reporter.update(tablesDone: status.tasksDone, bytes: status.rawBytes, current: status.running.first)
            reporter.send()
        }
        let schema = Manifest.Schema(pgDumpVersion: source.tools.pgDumpVersion, stream: capture.stream, summary: try capture.wait())
        let entries = source.tables.enumerated().map { index, table in
            let parts = tasks.indices.filter { tasks[$0].table == index }.map { task in
                Manifest.Part(
                    stream: tasks[task].stream, rows: results[task].rows, firstPage: tasks[task].firstPage,
                    endPage: tasks[task].endPage, summary: results[task].summary)
            }
            // A table's schema objects include its ancestors': a partition
            // or inheritance child cannot be created without its parent.
            var entry = Manifest.Table(
                schema: table.schema, name: table.name, kind: table.kind.rawValue, parent: table.parent,
                columns: table.columns, parts: unchanged[index]?.parts ?? parts,
                objects: ([table.oid] + (source.ancestors[table.oid] ?? [])).flatMap { source.objects[$0] ?? [] },
                // A referenced table keeps the format its archive stores it in.
                copyFormat: unchanged[index]?.copyFormat ?? source.formats[index])
            entry.storedIn = unchanged[index]?.storedIn
            return entry
        }
        return CopiedTables(entries: entries, schema: schema, nextStream: capture.stream + 1 + UInt32(tasks.count))
    }

    // MARK: Phase 3: large objects

    /// Every large object into one stream, as records in ascending OID
    /// order (FORMAT.md, "Large objects"): memory and manifest stay the
    /// same size however many objects there are. Each object's bytes go as
    /// segments of what one read returned, so its size need not be known first.
    private func copyLargeObjects(
        _ source: Source, into writer: ArchiveWriter, stream: UInt32, reporter: ProgressReporter
    ) throws -> Manifest.LargeObjectData? {
        guard !source.largeObjects.isEmpty else { return nil }
        reporter.phase("copying large objects")
        let streamWriter = StreamWriter(archive: writer, encoder: writer.makeEncoder(level: options.compressionLevel), stream: stream)
        for oid in source.largeObjects {
            if options.cancellation.isCancelled { throw OperationError.cancelled("The backup") }
            reporter.working(on: "large object \(oid)")
            try LargeObjectRecords.recordHeader(oid).withUnsafeBytes { try streamWriter.append($0) }
            do {
                try source.connection.readLargeObject(oid, pieceSize: Int(options.chunkSize)) { piece in
                    try LargeObjectRecords.segmentHeader(UInt32(piece.count)).withUnsafeBytes { try streamWriter.append($0) }
                    try streamWriter.append(piece)
                    reporter.count(bytes: UInt64(piece.count))
                    try limiter?.take(piece.count) { options.cancellation.isCancelled }
                }
            } catch is RateLimiter.Stopped {
                throw OperationError.cancelled("The backup")
            } catch let error as RepositoryError {
                throw error
            } catch {
                throw BackupError.largeObject(oid, error)
            }
            try LargeObjectRecords.end.withUnsafeBytes { try streamWriter.append($0) }
            reporter.send()
        }
        if options.cancellation.isCancelled { throw OperationError.cancelled("The backup") }
        return Manifest.LargeObjectData(count: UInt64(source.largeObjects.count), stream: stream, summary: try streamWriter.finish())
    }

    // MARK: Phase 4: the manifest

    private func seal(
        _ source: Source, header: FileHeader, tables: [Manifest.Table], schema: Manifest.Schema, largeObjects: Manifest.LargeObjectData?,
        base: String?, writer: ArchiveWriter, destination: any ArchiveDestination, startTime: Date, now: () -> Date, reporter: ProgressReporter
    ) throws -> BackupResult {
        var manifest = Manifest(
            archiveId: header.archiveID.description, backupId: destination.id.rawValue,
            startedAt: Manifest.timestamp(startTime), completedAt: Manifest.timestamp(now()),
            tool: .init(version: ArcaVersion.current), source: source.snapshot.source,
            compression: .init(level: Int(options.compressionLevel)), chunkSize: options.chunkSize, tables: tables,
            sequences: source.sequences, schema: schema, largeObjects: largeObjects,
            tableFilter: options.tables.include.isEmpty && options.tables.exclude.isEmpty
                ? nil : .init(include: options.tables.include, exclude: options.tables.exclude))
        manifest.trigger = options.trigger.rawValue
        manifest.database = source.database
        manifest.roles = source.roles
        manifest.anchor = source.snapshot.anchor
        manifest.base = base
        let summary = try writer.finish(manifest: manifest)
        let path = try destination.publish(fileMD5: summary.fileMD5)
        let rawBytes = (tables.map(\.rawBytes) + [manifest.largeObjectRawBytes]).checkedSum ?? .max
        let referenced = manifest.referencedTables
        return BackupResult(
            backupId: destination.id.rawValue, path: path, bytes: summary.size, tables: tables.count,
            rows: manifest.tableRows, rawBytes: rawBytes, durationSeconds: reporter.elapsedSeconds,
            md5: summary.fileMD5, cloud: options.uploadOnly ? options.cloud?.describe(destination.id) : nil,
            base: base, referencedTables: base == nil ? nil : referenced.count,
            referencedRawBytes: base == nil ? nil : referenced.lazy.map(\.rawBytes).checkedSum ?? .max)
    }

    // MARK: Phase 5: the bucket

    /// Uploads the published archive (an `--upload-only` one is there
    /// already), after the backups it refers to that the bucket lacks.
    private func upload(_ result: inout BackupResult, _ id: BackupID, needing: [BackupID], reporter: ProgressReporter) throws {
        guard let cloud = options.cloud, !options.uploadOnly else { return }
        // The phase's percent is of the archive's bytes sent.
        reporter.estimate(tables: result.tables, bytes: result.bytes)
        reporter.update(tablesDone: result.tables, bytes: 0)
        reporter.phase("uploading to \(cloud.place)")
        do {
            try cloud.uploadMissing(needing, from: options.repository, for: id)
            try cloud.upload(archiveAt: result.path, id: id) { bytes in
                reporter.count(bytes: bytes)
                reporter.send()
            }
            reporter.send(final: true)
        } catch let taken as CloudError where taken.isIDTaken {
            throw taken
        } catch {
            throw CloudError.uploadFailed(id: result.backupId, localPath: result.path, location: cloud.place, underlying: "\(error)")
        }
        result.cloud = cloud.describe(id)
        result.durationSeconds = reporter.elapsedSeconds
    }

    /// The base of an incremental backup, in the store it is written to
    /// (`IncrementalBase`), opened with the key it is written with.
    private func findBase(of database: Manifest.Source, now: Date) throws -> (IncrementalBase?, reason: String?) {
        var store: any ArchiveStore = options.repository
        if options.uploadOnly, let cloud = options.cloud { store = cloud }
        return try IncrementalBase.newest(in: store, database: database, key: options.encryptionKey, now: now)
    }

    /// The COPY that reads a whole table, or the rows of one page range of
    /// it (`endPage` nil: to the end): the statements of the copies and of
    /// an incremental backup's comparison alike.
    static func copyStatement(_ table: TableDescriptor, format: Manifest.CopyFormat) -> String {
        "COPY \(table.quotedName)\(table.copyColumnList) TO STDOUT" + format.copyOptions()
    }

    static func copyStatement(_ table: TableDescriptor, firstPage: UInt32, endPage: UInt32?, format: Manifest.CopyFormat) -> String {
        let select = table.columns.map(SQLIdentifier.quote).joined(separator: ", ")
        var condition = "ctid >= '(\(firstPage),0)'::pg_catalog.tid"
        if let endPage { condition += " AND ctid < '(\(endPage),0)'::pg_catalog.tid" }
        return "COPY (SELECT \(select) FROM ONLY \(table.quotedName) WHERE \(condition)) TO STDOUT" + format.copyOptions()
    }

    /// Each table's COPY format as `options.copyFormat` decides it: `auto`
    /// binary for the tables all of whose columns binary COPY carries
    /// exactly (`Catalog.textOnlyColumns`), `binary` the same but refusing
    /// any other table, `text` every table.
    private func copyFormats(of tables: [TableDescriptor], _ connection: PostgresConnection) throws -> [Manifest.CopyFormat] {
        guard options.copyFormat != .text else { return tables.map { _ in .text } }
        let textOnly: [UInt32: [Catalog.TextOnlyColumn]]
        do {
            textOnly = try releasingLocks(connection) { try Catalog.textOnlyColumns(tables.map(\.oid), connection) }
        } catch let error as PostgresError {
            throw BackupError.snapshot(error)
        }
        if options.copyFormat == .binary {
            let refused = tables.compactMap { table in textOnly[table.oid].map { (table: table.qualifiedName, columns: $0) } }
            guard refused.isEmpty else { throw BackupError.binaryCopyImpossible(refused) }
        }
        return tables.map { textOnly[$0.oid] == nil ? .binary : .text }
    }

    /// A temporary file in the repository, or with `uploadOnly` a streamed
    /// upload under an id the bucket does not hold yet.
    private func makeDestination(startedAt date: Date) throws -> any ArchiveDestination {
        let staging = options.repository.temporaryDirectory
        guard options.uploadOnly else { return try options.repository.beginWrite(startedAt: date, staging: staging) }
        guard let cloud = options.cloud else {
            throw OperationError.invalidConfiguration("--upload-only needs a bucket: set AWS_S3_BUCKET (and the AWS_* credentials).")
        }
        return try cloud.beginWrite(startedAt: date, staging: staging)
    }

    /// One task per table, except tables over the split threshold, which
    /// become one task per range of pages, in order: at least one per job,
    /// about one per threshold's worth of pages, at most 64. The last range
    /// is open-ended.
    func plan(_ tables: [TableDescriptor], sizes: [UInt64], formats: [Manifest.CopyFormat], firstStream: UInt32) -> [CopyTask] {
        var tasks: [CopyTask] = []
        let blockSize: UInt64 = 8192
        for (index, table) in tables.enumerated() {
            let size = sizes[index]
            let pages = size / blockSize
            let wanted = Int(min(64, max(UInt64(options.jobs), (size + options.splitThresholdBytes - 1) / max(options.splitThresholdBytes, 1))))
            if options.jobs > 1, size > options.splitThresholdBytes, !table.columns.isEmpty, pages >= UInt64(wanted) {
                for part in 0..<wanted {
                    let first = UInt32(pages * UInt64(part) / UInt64(wanted))
                    let end = part == wanted - 1 ? nil : UInt32(pages * UInt64(part + 1) / UInt64(wanted))
                    tasks.append(CopyTask(
                        table: index, oid: table.oid, quotedTable: table.quotedName, stream: firstStream + UInt32(tasks.count),
                        sql: Self.copyStatement(table, firstPage: first, endPage: end, format: formats[index]),
                        name: "\(table.qualifiedName) part \(part + 1)/\(wanted)",
                        estimatedBytes: size / UInt64(wanted), firstPage: first, endPage: end))
                }
            } else {
                tasks.append(CopyTask(
                    table: index, oid: table.oid, quotedTable: table.quotedName, stream: firstStream + UInt32(tasks.count),
                    sql: Self.copyStatement(table, format: formats[index]), name: table.qualifiedName,
                    estimatedBytes: size))
            }
        }
        return tasks
    }

    struct Snapshot {
        var source: Manifest.Source
        var anchor: Manifest.Anchor?
    }

    /// Opens the snapshot every table is read in. `row_security = off` makes a
    /// table with row-level security fail loudly instead of silently
    /// backing up only the rows the role may see.
    private func openSnapshot(_ connection: PostgresConnection) throws -> Snapshot {
        do {
            let encoding = try SessionSettings.databaseEncoding(connection)
            try SessionSettings.apply(to: connection, encoding: encoding)
            // Outside the transaction: pg_control_system() is not granted to
            // every role, and a failure inside would abort the snapshot.
            let identity = try SourceIdentity.read(connection)
            // While the change stream runs, the snapshot is a new slot's:
            // it sees exactly the transactions committed before the slot's
            // consistent point, where the backup then stands in the stream.
            let anchoring = try anchorSnapshot(connection)
            defer { anchoring?.replication.close() }
            try connection.execute(
                """
                BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
                \(anchoring.map { "SET TRANSACTION SNAPSHOT \(SQLIdentifier.literal($0.slot.snapshot));" } ?? "")
                SET LOCAL row_security = off;
                SET LOCAL lock_timeout = \(options.lockTimeoutMilliseconds)
                """, during: "starting the snapshot transaction")
            // Exported again from this transaction: the slot's snapshot ends
            // with its connection, this one with the backup.
            let snapshotID = try connection.execute("SELECT pg_catalog.pg_export_snapshot()", during: "exporting the snapshot").singleValue ?? ""
            let version = try connection.execute("SHOW server_version", during: "reading the server version").singleValue ?? ""
            return Snapshot(source: Manifest.Source(
                database: connection.database,
                serverVersion: String(version.prefix { $0 != " " }),
                serverVersionNumber: connection.serverVersionNumber,
                snapshot: snapshotID, systemIdentifier: identity.systemIdentifier,
                encoding: encoding, databaseOid: identity.databaseOid),
                anchor: anchoring.map { Manifest.Anchor(slot: $0.stream, lsn: $0.slot.consistentPoint.value) })
        } catch let error as PostgresError {
            throw BackupError.snapshot(error)
        }
    }

    /// A temporary slot whose exported snapshot the backup reads in, when
    /// the change stream's slot (`options.streamSlot`) exists in this
    /// database; nil otherwise.
    private func anchorSnapshot(_ connection: PostgresConnection) throws -> (stream: String, slot: ReplicationConnection.CreatedSlot, replication: ReplicationConnection)? {
        let stream = options.streamSlot ?? ReplicationNames.defaultSlot(database: connection.database)
        let exists = try connection.query(
            "SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND database = pg_catalog.current_database()",
            [stream], during: "looking for the change stream's slot").rows.count > 0
        guard exists else { return nil }
        let replication = try ReplicationConnection(options.source, applicationName: "arca backup")
        do {
            let name = "arca_anchor_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
            return (stream, try replication.createSlot(name, temporary: true), replication)
        } catch {
            replication.close()
            throw error
        }
    }

    private func selectTables(_ connection: PostgresConnection) throws -> [TableDescriptor] {
        let all: [TableDescriptor]
        do {
            all = try Catalog.tables(connection)
        } catch let error as PostgresError {
            throw BackupError.snapshot(error)
        }
        let unmatched = options.tables.unmatchedIncludes(all.map { ($0.schema, $0.name) })
        guard unmatched.isEmpty else { throw BackupError.unmatchedPatterns(unmatched) }
        return all.filter { options.tables.matches(schema: $0.schema, name: $0.name) }
    }

    /// Sequences owned by backed-up tables, and standalone sequences unless
    /// `--table` narrowed the backup.
    /// Reading a sequence locks it: the values are read in batches whose
    /// locks are released, as `checkTables` does for the tables.
    private func selectSequences(_ connection: PostgresConnection, tables: [TableDescriptor]) throws -> [Manifest.Sequence] {
        let selected = Set(tables.map(\.qualifiedName))
        do {
            let sequences = try Catalog.sequences(connection).filter { sequence in
                let owner = zip(sequence.ownerSchema, sequence.ownerTable, sequence.ownerColumn)
                return owner.map { selected.contains("\($0.0).\($0.1)") } ?? options.tables.include.isEmpty
            }
            var entries: [Manifest.Sequence] = []
            entries.reserveCapacity(sequences.count)
            for first in stride(from: 0, to: sequences.count, by: Self.lockBatch) {
                let batch = sequences[first..<min(sequences.count, first + Self.lockBatch)]
                let states = try releasingLocks(connection) { try Catalog.sequenceStates(batch, connection) }
                for (sequence, state) in zip(batch, states) {
                    let owner = zip(sequence.ownerSchema, sequence.ownerTable, sequence.ownerColumn)
                    entries.append(Manifest.Sequence(
                        schema: sequence.schema, name: sequence.name, lastValue: state.lastValue, isCalled: state.isCalled,
                        ownedBy: owner.map { Manifest.Sequence.Owner(schema: $0.0, table: $0.1, column: $0.2) }))
                }
            }
            return entries
        } catch let error as PostgresError {
            throw BackupError.snapshot(error)
        }
    }

    /// Tables locked, checked and measured at once by `checkTables`, and
    /// sequences read at once: each batch's locks are released at its end.
    static let lockBatch = 500

    /// Waits for each table's ACCESS SHARE lock, as pg_dump does, so that
    /// DDL under way when the snapshot was taken has committed; refuses a
    /// table it dropped, renamed or rewrote; and measures the tables (the
    /// catalog's relpages may be stale): the sizes order the work and decide
    /// which tables to split.
    ///
    /// The locks are not kept: each batch runs in a subtransaction rolled
    /// back at its end, which releases them. Holding one on every table
    /// until the end, beside pg_dump's own on every table and the workers',
    /// overflows the server's lock table on a database of many tables
    /// (10,000 at the default max_locks_per_transaction). The copy workers
    /// lock and check each table again in their short transactions, so a
    /// change that comes later is refused all the same (`ParallelCopy`).
    private func checkTables(_ tables: [TableDescriptor], _ connection: PostgresConnection) throws -> [UInt64] {
        var sizes: [UInt64] = []
        sizes.reserveCapacity(tables.count)
        for first in stride(from: 0, to: tables.count, by: Self.lockBatch) {
            let batch = tables[first..<min(tables.count, first + Self.lockBatch)]
            try releasingLocks(connection) {
                try lock(Array(batch), connection)
                let oids = batch.map(\.oid)
                let rewritten: Set<UInt32>
                let measured: [UInt32: UInt64]
                do {
                    rewritten = try Catalog.rewrittenSinceSnapshot(oids, connection)
                    measured = try Catalog.relationSizes(oids, connection)
                } catch let error as PostgresError {
                    throw BackupError.snapshot(error)
                }
                // A table truncated or rewritten after the snapshot and
                // before its lock would be copied as empty, silently:
                // refuse instead. (VACUUM FULL and CLUSTER keep the rows
                // visible but cannot be told apart; a rare retry is the
                // price of never losing a table's rows.)
                if let table = batch.first(where: { rewritten.contains($0.oid) }) {
                    throw BackupError.tableChanged(table.qualifiedName, .rewritten)
                }
                sizes += batch.map { measured[$0.oid] ?? $0.estimatedBytes }
            }
        }
        return sizes
    }

    /// Takes the ACCESS SHARE lock on `tables` (see `checkTables`), in one
    /// statement: a statement per table costs a round trip each, which for
    /// 10,000 tables is a good part of a second. When a lock waits too long
    /// or finds its table gone, the statement does not say which table:
    /// they are then taken one at a time, and the failure names it.
    private func lock(_ tables: [TableDescriptor], _ connection: PostgresConnection) throws {
        guard tables.count > 1 else {
            if let table = tables.first { try lock(table, connection) }
            return
        }
        do {
            try connection.execute(
                """
                SAVEPOINT arca_lock_all;
                LOCK TABLE ONLY \(tables.map(\.quotedName).joined(separator: ", ")) IN ACCESS SHARE MODE;
                RELEASE SAVEPOINT arca_lock_all
                """, during: "locking \(tables.count) tables")
        } catch let error as PostgresError where error.sqlState == "55P03" || error.sqlState == "42P01" {
            do {
                try connection.execute("ROLLBACK TO SAVEPOINT arca_lock_all; RELEASE SAVEPOINT arca_lock_all", during: "releasing locks")
            } catch let error as PostgresError {
                throw BackupError.snapshot(error)
            }
            for table in tables { try lock(table, connection) }
        } catch {
            throw BackupError.table(tables[0].qualifiedName, error)
        }
    }

    private func lock(_ table: TableDescriptor, _ connection: PostgresConnection) throws {
        do {
            try connection.execute("LOCK TABLE ONLY \(table.quotedName) IN ACCESS SHARE MODE", during: "locking \(table.qualifiedName)")
        } catch let error as PostgresError where error.sqlState == "55P03" {
            throw BackupError.lockTimeout(table.qualifiedName, milliseconds: options.lockTimeoutMilliseconds)
        } catch let error as PostgresError where error.sqlState == "42P01" {
            // The lock waited for a DROP or RENAME to commit; the name
            // is looked up again once the lock is granted, and is gone.
            throw BackupError.tableChanged(table.qualifiedName, .droppedOrRenamed)
        } catch {
            throw BackupError.table(table.qualifiedName, error)
        }
    }

    /// Runs `body` in a subtransaction rolled back at its end: what it read
    /// stays read, and the locks it took are released, while the snapshot
    /// transaction goes on.
    private func releasingLocks<T>(_ connection: PostgresConnection, _ body: () throws -> T) throws -> T {
        do {
            try connection.execute("SAVEPOINT arca_locks", during: "starting a subtransaction")
        } catch let error as PostgresError {
            throw BackupError.snapshot(error)
        }
        let value = try body()
        do {
            try connection.execute("ROLLBACK TO SAVEPOINT arca_locks; RELEASE SAVEPOINT arca_locks", during: "releasing locks")
        } catch let error as PostgresError {
            throw BackupError.snapshot(error)
        }
        return value
    }
}

private func zip<A, B, C>(_ a: A?, _ b: B?, _ c: C?) -> (A, B, C)? {
    guard let a, let b, let c else { return nil }
    return (a, b, c)
}
