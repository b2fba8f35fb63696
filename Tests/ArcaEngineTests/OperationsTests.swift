@testable import ArcaEngine
import ArcaOperations
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

@Suite struct RetentionTests {
    let now = Date(timeIntervalSince1970: 1_733_061_930)  // 2024-12-01T14:05:30Z

    /// One backup a day at 02:00 UTC for `days` days before `now`.
    func daily(_ days: Int, verified: Set<Int> = []) -> [RetentionPolicy.Candidate] {
        (0..<days).map { day in
            let date = Calendar(identifier: .gregorian).startOfDay(for: now).addingTimeInterval(Double(-day) * 86_400 + 7200)
            return RetentionPolicy.Candidate(id: BackupID(date: date), verified: verified.contains(day))
        }
    }

    func kept(_ policy: RetentionPolicy, _ backups: [RetentionPolicy.Candidate]) -> [String] {
        policy.decide(backups, now: now).filter(\.keep).map(\.id)
    }

    @Test func keepsTheRetentionWindow() {
        let decisions = RetentionPolicy(retentionDays: 30).decide(daily(60), now: now)
        #expect(decisions.filter(\.keep).count == 30)
        #expect(decisions.first?.reasons == ["within 30 days"])
        #expect(decisions.filter { !$0.keep }.allSatisfy { BackupID($0.id)!.date! < now.addingTimeInterval(-30 * 86_400) })
    }

    @Test func keepRulesHoldOlderBackups() {
        let backups = daily(120)
        #expect(kept(RetentionPolicy(retentionDays: 0, keepLast: 3), backups).count == 3)
        #expect(kept(RetentionPolicy(retentionDays: 0, keepDaily: 7), backups).count == 7)
        let weekly = kept(RetentionPolicy(retentionDays: 0, keepWeekly: 4), backups)
        #expect(weekly.count == 4)
        let monthly = kept(RetentionPolicy(retentionDays: 0, keepMonthly: 3), backups)
        #expect(monthly.map { $0.prefix(22) } == ["backup_20241201_020000", "backup_20241130_020000", "backup_20241031_020000"])
        // Rules add up; one backup held by two rules counts once.
        #expect(kept(RetentionPolicy(retentionDays: 2, keepLast: 3, keepMonthly: 2), backups).count == 3)
    }

    @Test func neverRemovesTheNewestVerifiedBackup() {
        let backups = daily(90, verified: [45, 80])
        let decisions = RetentionPolicy(retentionDays: 30).decide(backups, now: now)
        let newestVerified = decisions.first { $0.id == backups[45].id.rawValue }
        #expect(newestVerified?.keep == true)
        #expect(newestVerified?.reasons == ["newest verified backup"])
        #expect(decisions.first { $0.id == backups[80].id.rawValue }?.keep == false)
        #expect(RetentionPolicy(retentionDays: 0).decide(backups, now: now).filter(\.keep).map(\.id) == [backups[45].id.rawValue])
    }
}

@Suite struct OperationsTests {
    func touch(_ path: String) throws {
        try Data("x".utf8).write(to: URL(fileURLWithPath: path))
    }

    @Test func cleanupRemovesOldArchivesWithSidecarsButNotOneInUse() throws {
        let repository = Steps.repository("cleanup")
        try repository.prepare()
        let now = Date()
        var ids: [BackupID] = []
        for day in [1, 40, 50, 60] {
            let id = BackupID(date: now.addingTimeInterval(Double(-day) * 86_400))
            ids.append(id)
            try touch(repository.archivePath(id))
            try touch(Repository.checksumPath(ofArchive: repository.archivePath(id)))
        }
        // A restore is reading the 50-day-old backup.
        let reading = try #require(try FileLock(path: repository.archivePath(ids[2]), mode: .shared, create: false))
        var cleanup = Cleanup(repository: repository, targets: [(repository, RetentionPolicy(retentionDays: 30))])
        cleanup.dryRun = true
        let preview = try cleanup.run(now: now)
        #expect(preview.stores[0].removed.count == 3)
        #expect(FileManager.default.fileExists(atPath: repository.archivePath(ids[3])))

        cleanup.dryRun = false
        let result = try cleanup.run(now: now)
        #expect(Set(result.stores[0].removed) == [ids[1].rawValue, ids[3].rawValue])
        #expect(result.stores[0].inUse == [ids[2].rawValue])
        #expect(result.freedBytes == 4)
        #expect(Steps.files(in: repository.localDirectory) == [
            "\(ids[0]).arca", "\(ids[0]).arca.md5", "\(ids[2]).arca", "\(ids[2]).arca.md5",
        ].sorted())
        reading.release()
    }

    @Test func oneWriterPerRepository() throws {
        let repository = Steps.repository("lock")
        let first = try repository.lockForWriting("backup")
        do {
            _ = try repository.lockForWriting("cleanup")
            Issue.record("two writers held the repository lock")
        } catch OperationError.alreadyRunning(let holder) {
            #expect(holder?.pid == getpid())
            #expect(holder?.operation == "backup")
        }
        #expect(repository.lockHolder?.operation == "backup")
        first.release()
        #expect(repository.lockHolder == nil)
        try repository.lockForWriting("cleanup").release()
    }

    @Test func aStaleTempFileIsRemovedByTheNextWriter() throws {
        let repository = Steps.repository("stale")
        try repository.prepare()
        try touch(repository.temporaryDirectory + "/backup_20240101_000000.arca.partial")
        try repository.lockForWriting("backup").release()
        #expect(Steps.files(in: repository.temporaryDirectory).isEmpty)
    }

    @Test func drillRestoresChecksAndDropsTheScratchDatabase() throws {
        let source = try Steps.typeFamilies("drill_src")
        defer { source.drop() }
        let repository = Steps.repository("drill")
        try Steps.backup(source, into: repository)
        let configuration = try ServiceConfiguration(
            environment: ["DATABASE_URL": "dbname=\(source.name)"], repository: repository.root)
        let result = try Operations(configuration: configuration, requester: .commandLine).drill()
        #expect(result.passed, "\(result.problems)")
        #expect(result.tables == 23)
        let left = try PostgresConnection(try TestServer.connectionString())
            .query("SELECT count(*) FROM pg_database WHERE datname = $1", [result.database]).singleValue
        #expect(left == "0")
    }
}
