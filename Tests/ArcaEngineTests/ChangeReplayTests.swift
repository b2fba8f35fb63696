@testable import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// The replay's failure paths, with segments written by the streamer's
/// own writer: a change that does not find its row, or that the server
/// refuses, fails the restore with the table and position and no value,
/// whether it comes first or deep in the pipeline; nothing is left.
@Suite struct ChangeReplayTests {
    static func be<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
    static func text(_ value: String) -> [UInt8] { [UInt8(ascii: "t")] + be(UInt32(value.utf8.count)) + Array(value.utf8) }
    static let relation: [UInt8] = [UInt8(ascii: "R")] + be(UInt32(1)) + Array("public".utf8) + [0] + Array("ward".utf8) + [0]
        + [UInt8(ascii: "d")] + be(UInt16(2)) + [1] + Array("id".utf8) + [0] + be(UInt32(23)) + be(Int32(-1))
        + [0] + Array("name".utf8) + [0] + be(UInt32(25)) + be(Int32(-1))
    static func insert(_ id: Int, _ name: String) -> [UInt8] {
        [UInt8(ascii: "I")] + be(UInt32(1)) + [UInt8(ascii: "N")] + be(UInt16(2)) + text(String(id)) + text(name)
    }
    static func update(_ id: Int, _ name: String) -> [UInt8] {
        [UInt8(ascii: "U")] + be(UInt32(1)) + [UInt8(ascii: "N")] + be(UInt16(2)) + text(String(id)) + text(name)
    }

    /// A segment of one transaction holding `changes`, at LSNs 100–200.
    static func segment(_ changes: [[UInt8]], in repository: Repository) throws -> String {
        let log = ChangeLog(repository: repository, slot: "arca_test")
        try log.prepare()
        let builder = try SegmentBuilder(
            log: log, path: log.directory + "/segment.partial", slotStart: 50, startLSN: 50,
            options: StreamOptions(source: try TestServer.connectionString(), repository: repository, slot: "arca_test"))
        let messages = [[UInt8(ascii: "B")] + be(UInt64(100)) + be(Int64(1)) + be(UInt32(7)), relation] + changes
            + [[UInt8(ascii: "C"), 0] + be(UInt64(100)) + be(UInt64(200)) + be(Int64(1))]
        for message in messages { try message.withUnsafeBytes { try builder.append($0) } }
        builder.committed(commitLSN: 100, endLSN: 200, at: Date(), schemaChanges: [])
        return log.path(try builder.finish(sequences: []))
    }

    static func replay(_ backup: String, _ segment: String, into target: TestDatabase, jobs: Int, create: Bool = true) throws -> RestoreResult {
        var options = RestoreOptions(archivePath: backup, target: target.connectionString)
        options.confirmed = true
        options.create = create
        options.jobs = jobs
        options.replay = ReplayPlan(
            backup: BackupID("backup_20260101_000000")!, archivePath: backup, anchor: .init(slot: "arca_test", lsn: 0),
            segments: [segment], target: .lsn(.max), key: nil, tables: nil)
        return try RestoreRunner(options: options).run()
    }

    @Test(arguments: [1, 2])
    func conflictsFailTheRestoreAndLeaveNothing(jobs: Int) async throws {
        let source = try TestDatabase("replay_src_\(jobs)")
        let target = try TestDatabase("replay_dst_\(jobs)", creating: false)
        defer { source.drop(); target.drop() }
        try source.execute("CREATE TABLE ward (id int PRIMARY KEY, name text); INSERT INTO ward VALUES (1, 'first'), (2, 'second')")
        let repository = Steps.repository("replay_\(jobs)")
        let backup = try await onThread { try Steps.backup(source, into: repository).path }

        // Deep in the pipeline: 600 good inserts, then an update of a row
        // the backup does not have.
        let inserts = (10..<610).map { Self.insert($0, "patient-secret-\($0)") }
        let missing = try Self.segment(inserts + [Self.update(9999, "patient-secret-x")], in: repository)
        let outcome = try await onThread { Result { try Self.replay(backup, missing, into: target, jobs: jobs) } }
        guard case .failure(let error) = outcome else { Issue.record("a conflicting replay was restored: \(outcome)"); return }
        guard case ReplayError.conflict(let table, let operation, let lsn, let rows) = error else {
            Issue.record("unexpected error: \(error)")
            return
        }
        #expect(table == "public.ward" && operation == "update" && lsn == "0/64" && rows == 0)
        #expect(!"\(error)".contains("secret"))
        #expect(try source.value("SELECT count(*) FROM pg_database WHERE datname = '\(target.name)'") == "0")

        // The server refuses an insert (a duplicate key): its message, no value.
        FileSystem.remove(missing)
        let duplicate = try Self.segment(inserts.prefix(300) + [Self.insert(1, "patient-secret-dup")] + inserts.suffix(10), in: repository)
        let refused = try await onThread { Result { try Self.replay(backup, duplicate, into: target, jobs: jobs) } }
        guard case .failure(let failure) = refused else { Issue.record("a duplicate key was restored"); return }
        #expect("\(failure)".contains("23505"), "\(failure)")
        #expect(!"\(failure)".contains("secret"), "\(failure)")
        #expect(try source.value("SELECT count(*) FROM pg_database WHERE datname = '\(target.name)'") == "0")

        // The same segment without the conflict restores, every row in.
        FileSystem.remove(duplicate)
        let good = try Self.segment(inserts + [Self.update(2, "renamed")], in: repository)
        let restored = try await onThread { try Self.replay(backup, good, into: target, jobs: jobs) }
        #expect(restored.replayedTransactions == 1 && restored.replayedChanges == 601)
        #expect(try target.value("SELECT count(*) || ':' || max(id) FROM ward") == "602:609")
        #expect(try target.value("SELECT name FROM ward WHERE id = 2") == "renamed")
    }

    /// A damaged record in the middle of a pipeline (a change to a relation
    /// the segment never described): the replay stops, the pipeline is
    /// read out, and the restore into an existing database rolls back.
    @Test func aBrokenRecordMidPipelineRollsBack() async throws {
        let source = try TestDatabase("replay_broken_src")
        let target = try TestDatabase("replay_broken_dst")
        defer { source.drop(); target.drop() }
        try source.execute("CREATE TABLE ward (id int PRIMARY KEY, name text); INSERT INTO ward VALUES (1, 'first')")
        let repository = Steps.repository("replay_broken")
        let backup = try await onThread { try Steps.backup(source, into: repository).path }
        var stranger = Self.insert(5000, "x")
        stranger[4] = 2  // relation OID 2: never described
        let broken = try Self.segment((10..<310).map { Self.insert($0, "n") } + [stranger], in: repository)
        let outcome = try await onThread { Result { try Self.replay(backup, broken, into: target, jobs: 1, create: false) } }
        guard case .failure(let error) = outcome else { Issue.record("a broken segment was restored"); return }
        #expect("\(error)".contains("before its description"), "\(error)")
        #expect(try target.value("SELECT count(*) FROM pg_class WHERE relname = 'ward'") == "0")
    }

    /// A segment damaged on disk (one byte of its data flipped): the replay
    /// refuses it as damaged, and the database it would have made is not left.
    @Test func aDamagedSegmentIsRefused() async throws {
        let source = try TestDatabase("replay_damaged_src")
        let target = try TestDatabase("replay_damaged_dst", creating: false)
        defer { source.drop(); target.drop() }
        try source.execute("CREATE TABLE ward (id int PRIMARY KEY, name text); INSERT INTO ward VALUES (1, 'first')")
        let repository = Steps.repository("replay_damaged")
        let backup = try await onThread { try Steps.backup(source, into: repository).path }
        let path = try Self.segment((10..<400).map { Self.insert($0, "name \($0)") }, in: repository)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[200] ^= 0x40  // inside the first data frame
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let outcome = try await onThread { Result { try Self.replay(backup, path, into: target, jobs: 1) } }
        guard case .failure(let error) = outcome else { Issue.record("a damaged segment was replayed"); return }
        #expect(error is ArchiveError, "\(error)")
        #expect(try source.value("SELECT count(*) FROM pg_database WHERE datname = '\(target.name)'") == "0")
    }
}
