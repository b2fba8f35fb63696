import ArcaEngine
import ArcaOperations
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// With a key configured, an unencrypted archive may have been planted by
/// someone who can write to the repository but has no key: restore, verify
/// and drills refuse it unless allowed, and `list` points it out. A backup
/// is dated by its manifest, and one dated in the future counts for nothing.
@Suite struct ArchiveTrustTests {
    static let key = ArchiveKey.generate()

    static func patients(_ label: String) throws -> TestDatabase {
        let database = try TestDatabase(label)
        try database.execute("CREATE TABLE patient (id int PRIMARY KEY, name text); INSERT INTO patient SELECT g, 'p' || g FROM generate_series(1, 100) g")
        return database
    }

    @Test func plainArchiveIsRefusedWhileAKeyIsConfigured() throws {
        let source = try Self.patients("trust_src")
        let target = try TestDatabase("trust_dst")
        defer { source.drop(); target.drop() }
        let repository = Steps.repository("trust")
        let planted = try Steps.backup(source, into: repository)  // no key: what anyone can write
        let id = try #require(BackupID(planted.backupId))

        #expect(throws: ArchiveTrustError.unencrypted(archive: planted.path)) {
            try Steps.restore(planted.path, into: target) { $0.key = Self.key }
        }
        #expect(try target.value("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'patient'") == "0")

        #expect(throws: ArchiveTrustError.self) { try Verification(path: planted.path, repository: repository, key: Self.key).run() }
        #expect(repository.verificationRecord(id) == nil, "a refused archive was recorded as verified")

        let configuration = try ServiceConfiguration(environment: [
            "DATABASE_URL": source.connectionString.conninfo, "ARCA_REPO": repository.root, "ARCA_ENCRYPTION_KEY": try #require(Self.key.base64),
        ])
        let operations = Operations(configuration: configuration, requester: .commandLine)
        #expect(throws: ArchiveTrustError.self) { try operations.drill() }

        let listing = try #require(try repository.listings(key: Self.key).first)
        #expect(listing.warnings?.first?.hasPrefix("unencrypted in a repository with a key") == true)
        #expect(try repository.listings().first?.warnings == nil, "flagged although no key is configured")
        #expect(try operations.status().problems.contains { $0.contains("\(id) (local) is unencrypted in a repository with a key") })

        // The operator vouches for it.
        var verification = Verification(path: planted.path, repository: repository, key: Self.key)
        verification.allowUnencrypted = true
        #expect(try verification.run().intact)
        try Steps.restore(planted.path, into: target) {
            $0.key = Self.key
            $0.allowUnencrypted = true
        }
        try Steps.expectEqual(source, target)
    }

    /// An archive copied to a far-future id is neither "the newest" nor drilled;
    /// with the key its authenticated manifest gives its real time.
    @Test func futureDatedIdsAreNotTheNewest() throws {
        let source = try Self.patients("trust_future")
        defer { source.drop() }
        let repository = Steps.repository("trust-future")
        let real = try Steps.backup(source, into: repository, key: Self.key)
        let future = repository.archivePath(try #require(BackupID("backup_20991231_235959")))
        try FileManager.default.copyItem(atPath: real.path, toPath: future)

        // Without the key only the id dates it: in the future, so left out and flagged.
        let blind = try repository.listings()
        #expect(blind.newest()?.id == real.backupId)
        #expect(blind.first { $0.path == future }?.warnings?.first?.hasPrefix("dated in the future") == true)
        // With the key the manifest's time counts: the copy is as old as the original.
        let keyed = try repository.listings(key: Self.key)
        #expect(keyed.allSatisfy { $0.warnings == nil })
        #expect(keyed.allSatisfy { abs(($0.date ?? .distantFuture).timeIntervalSinceNow) < 600 })
    }
}

@Suite struct FutureDatedRetentionTests {
    let now = Date(timeIntervalSince1970: 1_733_061_930)  // 2024-12-01T14:05:30Z

    @Test func aFutureDatedBackupCountsForNothing() {
        let old = now.addingTimeInterval(-90 * 86_400)
        let planted = RetentionPolicy.Candidate(id: BackupID("backup_20991231_000000")!, verified: true)
        let real = RetentionPolicy.Candidate(id: BackupID(date: old), verified: true)
        // Dated by the manifest, not the id: an old backup under a future name goes by its real age.
        let renamed = RetentionPolicy.Candidate(id: BackupID("backup_20981231_000000")!, verified: false, date: old.addingTimeInterval(-86_400))
        let decisions = RetentionPolicy(retentionDays: 30, keepLast: 1).decide([planted, real, renamed], now: now)
        func decision(_ candidate: RetentionPolicy.Candidate) -> RetentionPolicy.Decision? { decisions.first { $0.id == candidate.id.rawValue } }
        // Kept, but it neither takes the "last 1" nor the "newest verified" place.
        #expect(decision(planted)?.reasons == ["dated in the future, not counted"])
        #expect(decision(real)?.reasons == ["last 1", "newest verified backup"])
        #expect(decision(renamed)?.keep == false)
    }
}

/// The audit fails closed: an operation that changes something first
/// records its start, and is refused, touching nothing, when it cannot.
@Suite struct AuditFailsClosedTests {
    @Test func operationsAreRefusedWhileTheAuditTrailCannotBeWritten() throws {
        let source = try ArchiveTrustTests.patients("audit_closed_src")
        let target = try TestDatabase("audit_closed_dst", creating: false)
        defer { source.drop(); target.drop() }
        let repository = Steps.repository("audit-closed")
        let backup = try Steps.backup(source, into: repository)
        let configuration = try ServiceConfiguration(environment: ["DATABASE_URL": source.connectionString.conninfo], repository: repository.root)
        let operations = Operations(configuration: configuration, requester: .commandLine)
        // A folder where the log should be: nothing can be appended (root ignores file modes).
        let log = repository.root + "/audit.log"
        try? FileManager.default.removeItem(atPath: log)
        try FileManager.default.createDirectory(atPath: log, withIntermediateDirectories: false)

        var restore = RestoreRequest(backup: backup.backupId)
        restore.target = target.connectionString
        restore.create = true
        restore.confirmed = true
        #expect(throws: AuditRefusal.self) { try operations.restore(restore) }
        let created = try PostgresConnection(try TestServer.connectionString())
            .query("SELECT count(*) FROM pg_database WHERE datname = $1", [target.name]).singleValue
        #expect(created == "0", "the restore created its target although its start was not audited")

        #expect(throws: AuditRefusal.self) { try operations.backup() }
        #expect(try repository.backupIDs() == [try #require(BackupID(backup.backupId))], "a backup was written unaudited")
        #expect(throws: AuditRefusal.self) { try operations.delete(try #require(BackupID(backup.backupId))) }
        #expect(FileManager.default.fileExists(atPath: backup.path))
        var cleanup = CleanupRequest()
        cleanup.retentionDays = 0
        #expect(throws: AuditRefusal.self) { try operations.cleanup(cleanup) }
        #expect(FileManager.default.fileExists(atPath: backup.path))
        #expect(throws: AuditRefusal.self) { try operations.drill() }

        let status = try operations.status()
        #expect(!status.healthy)
        #expect(status.problems.contains { $0.contains("Cannot open the audit log") }, "\(status.problems)")
    }
}
