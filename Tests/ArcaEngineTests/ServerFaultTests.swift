import ArcaEngine
import ArcaOperations
import ArcaScheduler
import ArcaPostgres
import ArcaTesting
import Foundation
import Logging
import Testing

/// Faults of the server itself, each on a private cluster the test may stop
/// or replicate without disturbing the shared test server.
@Suite(.enabled(if: PrivateCluster.isAvailable, "needs root, the postgres OS user and \(PrivateCluster.binaries)"))
struct ServerFaultTests {
    /// Rows in the table being copied when the server stops: enough COPY
    /// text (about 110 MB, a second or more) that the copy is still running
    /// when the stop lands, some 50 ms after the copy is seen to start.
    static let bigTableRows = 1_000_000

    @Test func aServerStoppedMidBackupFailsTheJobCleanlyAndTheNextBackupSucceeds() throws {
        // wal_level = minimal: CREATE TABLE AS then writes no WAL, which
        // makes loading the big table several times faster.
        let cluster = try PrivateCluster(label: "stopped", settings: ["wal_level": "minimal", "max_wal_senders": "0"])
        defer { cluster.destroy() }
        try cluster.createDatabase("shop")
        try cluster.execute("""
            CREATE TABLE small_table AS SELECT g AS id FROM generate_series(1, 100) g;
            CREATE TABLE big_table AS SELECT g AS id, repeat(md5(g::text), 3) AS payload FROM generate_series(1, \(Self.bigTableRows)) g;
            """, database: "shop")
        let folder = TestPaths.temporaryDirectory("stopped")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let configuration = try ServiceConfiguration(environment: [
            "DATABASE_URL": try cluster.connectionString(database: "shop").conninfo, "ARCA_REPO": folder + "/repo",
        ])
        let repository = configuration.repository
        let service = Scheduler(
            configuration: configuration, cancellation: Cancellation(),
            logger: Logger(label: "arca.tests.service") { _ in SwiftLogNoOpLogHandler() })

        let job = BackgroundOperation { service.runJob(.backup, trigger: .scheduled) }
        // The server's own progress report: rows of big_table are on their way.
        let monitor = try cluster.connect(database: "shop")
        let copying = Spawned.waitFor(seconds: 60) {
            job.isFinished || (try? monitor.execute("""
                SELECT count(*) FROM pg_stat_progress_copy p
                 WHERE p.relid = 'public.big_table'::regclass AND p.tuples_processed > 0
                """).singleValue) == "1"
        }
        try #require(copying && !job.isFinished, "the backup never started copying big_table")
        try cluster.stop(mode: "immediate")
        try #require(job.wait(seconds: 60) != nil, "the backup hung after the server stopped")

        let failure = try #require(try Self.backupEvents(repository).last)
        #expect(failure.outcome == .failure)
        #expect(failure.details?["trigger"] == "scheduled")
        let message = failure.error ?? ""
        // Each table is copied in a transaction of its own: the worker that
        // meets the stop first may be starting small_table.
        #expect(message.contains("public.big_table") || message.contains("public.small_table"), "the error does not name the table: \(message)")
        #expect(message.contains("run the backup again"), "the error does not say what to do: \(message)")
        #expect(message.contains("Check that the server is running"), "\(message)")
        #expect(try repository.listings().isEmpty)
        #expect(Steps.files(in: repository.localDirectory).isEmpty)
        #expect(Steps.files(in: repository.temporaryDirectory).isEmpty)

        // After crash recovery the next scheduled backup must just work:
        // the failed one left no lock, no partial file, nothing to clean.
        try cluster.start()
        service.runJob(.backup, trigger: .scheduled)
        let events = try Self.backupEvents(repository)
        #expect(events.map(\.outcome) == [.failure, .success])
        let success = try #require(events.last)
        #expect(success.outcome == .success, "\(success.error ?? "")")
        let listings = try repository.listings()
        #expect(listings.count == 1)
        #expect(listings.first?.id == success.target)
        #expect(listings.first?.rows == UInt64(Self.bigTableRows + 100))
        #expect(Steps.files(in: repository.temporaryDirectory).isEmpty)
    }

    /// The backup events of the repository's audit log, oldest first.
    static func backupEvents(_ repository: Repository) throws -> [AuditEvent] {
        try AuditTrail(repository: repository, action: "backup").log.records(action: "backup").map(\.event).filter { $0.outcome != .started }
    }

    @Test func aBackupFromAStandbyRestoresThePrimarysData() throws {
        let primary = try PrivateCluster(label: "primary")
        defer { primary.destroy() }
        let standby = try primary.standby(label: "standby")
        defer { standby.destroy() }
        try primary.createDatabase("clinic")
        try primary.execute("""
            CREATE TABLE patient (id serial PRIMARY KEY, name text NOT NULL, born date);
            INSERT INTO patient (name, born) SELECT 'patient ' || g, date '1950-01-01' + g FROM generate_series(1, 5000) g;
            CREATE TABLE visit (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, patient int NOT NULL REFERENCES patient,
                at timestamptz NOT NULL, notes jsonb);
            INSERT INTO visit (patient, at, notes)
                 SELECT 1 + g % 5000, timestamptz '2024-01-01 00:00Z' + g * interval '1 hour', jsonb_build_object('n', g)
                   FROM generate_series(1, 20000) g;
            CREATE TABLE "Ward Log" ("Entry" text);
            INSERT INTO "Ward Log" VALUES ('quiet night'), (NULL);
            SELECT lo_from_bytea(0, '\\x00ff00ff'::bytea);
            """, database: "clinic")
        let primaryPosition = try #require(try primary.value("SELECT pg_current_wal_lsn()"))
        let replayed = Spawned.waitFor(seconds: 30) {
            (try? standby.value("SELECT pg_last_wal_replay_lsn() >= '\(primaryPosition)'::pg_lsn")) == "t"
        }
        try #require(replayed, "the standby did not replay the primary's WAL")
        #expect(try standby.value("SELECT pg_is_in_recovery()") == "t")

        let folder = TestPaths.temporaryDirectory("standby")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let options = BackupOptions(source: try standby.connectionString(database: "clinic"), repository: Repository(root: folder + "/repo"))
        let backup = try BackupRunner(options: options).run()
        #expect(backup.rows == 25_002)

        var restore = RestoreOptions(archivePath: backup.path, target: try primary.connectionString(database: "clinic_copy"))
        restore.confirmed = true
        restore.create = true
        _ = try RestoreRunner(options: restore).run()

        let restored = try primary.connectionString(database: "clinic_copy")
        let againstStandby = try DatabaseComparison(try standby.connectionString(database: "clinic"), restored).run()
        #expect(againstStandby.equal, "\(againstStandby.differences)")
        // A standby's sequences read up to 32 values ahead of the primary's
        // (the primary WAL-logs sequences in advance), as they would after a
        // crash: so may the restored ones, never behind. All else is equal.
        let againstPrimary = try DatabaseComparison(try primary.connectionString(database: "clinic"), restored).run()
        #expect(againstPrimary.tables == 3)
        #expect(againstPrimary.differences.allSatisfy { $0.hasPrefix("sequence ") }, "\(againstPrimary.differences)")
        for sequence in ["patient_id_seq", "visit_id_seq"] {
            let query = "SELECT last_value FROM public.\(sequence)"
            let original = try #require(try primary.value(query, database: "clinic").flatMap { Int($0) })
            let copy = try #require(try primary.value(query, database: "clinic_copy").flatMap { Int($0) })
            #expect((original...original + 32).contains(copy), "\(sequence): \(copy) restored, \(original) on the primary")
        }
    }
}

/// Another session changes a table while the backup, holding its snapshot,
/// waits to lock it. The backup must either copy the snapshot's view of the
/// table or fail naming it — never write a silently empty or broken table.
@Suite struct ConcurrentChangeTests {
    struct Change: Sendable, CustomTestStringConvertible {
        var statement: String
        /// nil: the change leaves the snapshot's rows readable, and the backup succeeds.
        var refusal: TableChange?
        var testDescription: String { statement }
    }

    static let changes = [
        Change(statement: "DROP TABLE orders", refusal: .droppedOrRenamed),
        Change(statement: "ALTER TABLE orders RENAME TO orders_old", refusal: .droppedOrRenamed),
        Change(statement: "ALTER TABLE orders DROP COLUMN note", refusal: .columnDroppedOrRenamed),
        Change(statement: "ALTER TABLE orders RENAME COLUMN note TO remark", refusal: .columnDroppedOrRenamed),
        Change(statement: "ALTER TABLE orders ADD COLUMN priority int DEFAULT 1", refusal: nil),
        // These rewrite the table: a snapshot older than the rewrite sees it empty.
        Change(statement: "ALTER TABLE orders ADD COLUMN drawn float8 DEFAULT random()", refusal: .rewritten),
        Change(statement: "ALTER TABLE orders ALTER COLUMN amount TYPE bigint", refusal: .rewritten),
        Change(statement: "TRUNCATE orders", refusal: .rewritten),
    ]

    static let schema = """
        CREATE TABLE customers (id int PRIMARY KEY, name text);
        INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 50) g;
        CREATE TABLE orders (id int PRIMARY KEY, customer int, amount int, note text);
        INSERT INTO orders SELECT g, 1 + g % 50, g * 3, 'note ' || g FROM generate_series(1, 2000) g;
        """

    static let laterChanges = [
        Change(statement: "TRUNCATE orders", refusal: .rewritten),
        Change(statement: "ALTER TABLE orders ALTER COLUMN amount TYPE bigint", refusal: .rewritten),
        Change(
            statement: "ALTER TABLE orders RENAME TO orders_old; CREATE TABLE orders (id int PRIMARY KEY, customer int, amount int, note text)",
            refusal: .droppedOrRenamed),
        Change(statement: "ALTER TABLE orders DROP COLUMN note", refusal: .columnDroppedOrRenamed),
    ]

    /// The backup checks every table under its lock once, then lets the
    /// locks go (a database of many tables would not fit in the server's
    /// lock table); a change after that check and before the table's copy
    /// must be refused all the same, by the worker that copies it.
    @Test(arguments: laterChanges)
    func aTableChangedAfterTheBackupCheckedIt(_ change: Change) throws {
        let source = try TestDatabase("later_src")
        defer { source.drop() }
        try source.execute(Self.schema)
        let changer = try source.connect()
        defer { changer.close() }
        // A backup that kept its locks would wait for nothing here, and
        // this change would wait for it: bounded, so that fails, not hangs.
        try changer.execute("SET lock_timeout = '5s'")

        let folder = TestPaths.temporaryDirectory("later")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var options = BackupOptions(source: source.connectionString, repository: Repository(root: folder + "/repo"))
        options.jobs = 1
        final class ChangeMade: @unchecked Sendable {
            var made = false
            var error: (any Error)?
        }
        let made = ChangeMade()
        // Reported before the workers start: the change lands after the
        // backup's check and before any copy.
        let outcome = Result {
            try BackupRunner(options: options).run(progress: { progress in
                guard progress.phase == "copying tables", !made.made else { return }
                made.made = true
                do { try changer.execute(change.statement) } catch { made.error = error }
            })
        }
        #expect(made.made && made.error == nil, "the change could not be made during the backup: \(String(describing: made.error))")
        switch outcome {
        case .success(let result):
            Issue.record("the backup succeeded (\(result.rows) rows) although the table \(String(describing: change.refusal))")
        case .failure(let error):
            if case BackupError.tableChanged(let table, let reported) = error {
                #expect(table == "public.orders")
                #expect(reported == change.refusal)
            } else {
                Issue.record("a misleading error: \(error)")
            }
        }
        #expect(Steps.files(in: options.repository.localDirectory).isEmpty)
        #expect(Steps.files(in: options.repository.temporaryDirectory).isEmpty)
    }

    @Test(arguments: changes)
    func aTableChangedWhileTheBackupWaitsForItsLock(_ change: Change) throws {
        let source = try TestDatabase("change_src")
        defer { source.drop() }
        try source.execute(Self.schema)
        let changer = try source.connect()
        defer { changer.close() }
        try changer.execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")

        let folder = TestPaths.temporaryDirectory("change")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var options = BackupOptions(source: source.connectionString, repository: Repository(root: folder + "/repo"))
        options.lockTimeoutMilliseconds = 60_000
        let runner = BackupRunner(options: options)
        let backup = BackgroundOperation { try runner.run() }
        let monitor = try source.connect()
        let waiting = Spawned.waitFor(seconds: 30) {
            backup.isFinished || (try? monitor.query("""
                SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                 WHERE NOT l.granted AND l.relation = 'public.orders'::regclass
                   AND a.application_name = 'arca backup' AND a.datname = $1
                """, [source.name]).singleValue) == "1"
        }
        try #require(waiting && !backup.isFinished, "the backup never waited for its lock on orders")
        try changer.execute(change.statement)
        try changer.execute("COMMIT")
        let outcome = try #require(backup.wait(seconds: 60), "the backup hung after \(change.statement)")

        switch (outcome, change.refusal) {
        case (.success(let result), nil):
            let expected = try TestDatabase("change_ref")
            let restored = try TestDatabase("change_dst", creating: false)
            defer { expected.drop(); restored.drop() }
            try expected.execute(Self.schema)
            try Steps.restore(result.path, into: restored) { $0.create = true }
            try Steps.expectEqual(expected, restored)
        case (.failure(let error), let refusal?):
            if case BackupError.tableChanged(let table, let reported) = error {
                #expect(table == "public.orders")
                #expect(reported == refusal)
                #expect("\(error)".contains("run the backup again"), "\(error)")
            } else {
                Issue.record("a misleading error: \(error)")
            }
            #expect(Steps.files(in: options.repository.localDirectory).isEmpty)
        case (.success(let result), let refusal?):
            Issue.record("the backup succeeded (\(result.rows) rows) although the table \(refusal)")
        case (.failure(let error), nil):
            Issue.record("the backup failed: \(error)")
        }
        #expect(Steps.files(in: options.repository.temporaryDirectory).isEmpty)
    }
}
