import ArcaEngine
import ArcaFormat
import ArcaOperations
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// Incremental backups (`backup --incremental`): unchanged tables stored as
/// references to the archive that holds them, restored and verified
/// through the chain, kept by cleanup and protected from delete.
@Suite struct IncrementalBackupTests {
    /// Ten tables of equal size (about 3 MB of COPY text each).
    static func tenTables(_ label: String, rows: Int = 40_000) throws -> TestDatabase {
        let database = try TestDatabase(label)
        let tables = (0..<10).map { index in
            """
            CREATE TABLE t\(index) (id int PRIMARY KEY, payload text NOT NULL);
            INSERT INTO t\(index) SELECT g, md5(g::text || 't\(index)') || md5(g::text || 'x\(index)') FROM generate_series(1, \(rows)) g;
            """
        }
        try database.execute(tables.joined(separator: "\n"))
        return database
    }

    static func backup(
        _ database: TestDatabase, into repository: Repository, incremental: Bool, jobs: Int = 2, cloud: CloudStore? = nil,
        uploadOnly: Bool = false, splitThresholdBytes: UInt64? = nil
    ) async throws -> BackupResult {
        var options = BackupOptions(source: database.connectionString, repository: repository)
        if let splitThresholdBytes { options.splitThresholdBytes = splitThresholdBytes }
        options.incremental = incremental
        options.jobs = jobs
        options.cloud = cloud
        options.uploadOnly = uploadOnly
        // On a thread of its own: the cooperative pool stays free (see PostgreSQL18Tests).
        return try await onThread { [options] in try BackupRunner(options: options).run() }
    }

    static func manifest(_ path: String) throws -> Manifest {
        try ArchiveReader(source: try FileSource(path: path)).manifest
    }

    @Test func oneChangedTableOfTenIsAllAnIncrementalBackupStores() async throws {
        let source = try Self.tenTables("incr_src")
        let created = try TestDatabase("incr_dst", creating: false)
        let parallel = try TestDatabase("incr_par", creating: false)
        let second = try TestDatabase("incr_2nd", creating: false)
        defer { source.drop(); created.drop(); parallel.drop(); second.drop() }
        let repository = Steps.repository("incremental")

        let full = try await Self.backup(source, into: repository, incremental: false)
        #expect(full.base == nil && full.referencedTables == nil)
        try source.execute("UPDATE t3 SET payload = upper(payload) WHERE id % 10 = 0")
        let incremental = try await Self.backup(source, into: repository, incremental: true)
        #expect(incremental.base == full.backupId)
        #expect(incremental.referencedTables == 9)
        #expect(incremental.rows == full.rows && incremental.tables == 10)
        let share = Double(incremental.bytes) / Double(full.bytes)
        print("incremental backup: \(incremental.bytes) bytes, full backup: \(full.bytes) bytes (\(String(format: "%.1f", share * 100)) %)")
        #expect(share <= 0.15, "the incremental archive is \(incremental.bytes) bytes, the full one \(full.bytes)")

        let manifest = try Self.manifest(incremental.path)
        #expect(manifest.base == full.backupId && manifest.formatVersion == Int(ArchiveFormat.version))
        #expect(manifest.storedTables.map(\.name) == ["t3"])
        #expect(Set(manifest.referencedTables.compactMap(\.storedIn)) == [full.backupId])

        // Restored through the chain, in one transaction and with two jobs.
        try await onThread { try Steps.restore(incremental.path, into: created) { $0.create = true } }
        try await Steps.expectEqualOnThread(source, created)
        try Steps.restore(incremental.path, into: parallel) {
            $0.create = true
            $0.jobs = 2
        }
        try await Steps.expectEqualOnThread(source, parallel)

        let verified = try await onThread { try Verification(path: incremental.path, repository: repository).run() }
        #expect(verified.intact, "\(verified.problems)")
        #expect(verified.chain == [full.backupId] && verified.tables == 10)

        // A second incremental: t3 now refers to the first incremental,
        // the rest still (flattened) to the full backup; t5 is copied.
        try source.execute("DELETE FROM t5 WHERE id % 7 = 0")
        let next = try await Self.backup(source, into: repository, incremental: true, jobs: 1)
        #expect(next.base == incremental.backupId)
        let flattened = try Self.manifest(next.path)
        #expect(flattened.storedTables.map(\.name) == ["t5"])
        #expect(flattened.tables.first { $0.name == "t3" }?.storedIn == incremental.backupId)
        #expect(flattened.tables.filter { $0.name != "t3" && $0.name != "t5" }.allSatisfy { $0.storedIn == full.backupId })
        let verifiedNext = try await onThread { try Verification(path: next.path, repository: repository).run() }
        #expect(verifiedNext.intact, "\(verifiedNext.problems)")
        #expect(verifiedNext.chain == [full.backupId, incremental.backupId].sorted())
        try await onThread { try Steps.restore(next.path, into: second) { $0.create = true } }
        try await Steps.expectEqualOnThread(source, second)

        // The base cannot be deleted while an incremental backup needs it.
        let configuration = try ServiceConfiguration(environment: ["DATABASE_URL": "dbname=\(source.name)"], repository: repository.root)
        let operations = Operations(configuration: configuration, requester: .commandLine)
        do {
            _ = try operations.delete(try #require(BackupID(full.backupId)))
            Issue.record("the base of two incremental backups was deleted")
        } catch let error as DependencyError {
            #expect(error == .needed(backup: full.backupId, by: [next.backupId, incremental.backupId], place: repository.root))
            #expect(error.description.contains("incremental"))
        }
        #expect(FileManager.default.fileExists(atPath: full.path))

        // Retention that keeps only the newest backup keeps what it needs.
        let cleanup = Cleanup(repository: repository, targets: [(repository, RetentionPolicy(retentionDays: 0, keepLast: 1))])
        let cleaned = try cleanup.run(now: Date().addingTimeInterval(86_400))
        #expect(cleaned.removedCount == 0)
        let reasons = Dictionary(uniqueKeysWithValues: cleaned.stores[0].kept.map { ($0.id, $0.reasons) })
        #expect(reasons[full.backupId]?.contains { $0.contains("needed by incremental backup") } == true)
        #expect(reasons[incremental.backupId]?.contains { $0.contains("needed by incremental backup \(next.backupId)") } == true)
        for path in [full.path, incremental.path, next.path] { #expect(FileManager.default.fileExists(atPath: path)) }

        // list marks them; the policy's choice of full or incremental.
        let listings = try repository.listings()
        #expect(listings.first { $0.id == next.backupId }?.needs == [full.backupId, incremental.backupId].sorted())
        #expect(listings.first { $0.id == full.backupId }?.base == nil)
        #expect(try !operations.backupIsIncremental())
        let weekly = try ServiceConfiguration(
            environment: ["DATABASE_URL": "dbname=\(source.name)", "ARCA_FULL_BACKUP_EVERY": "7"], repository: repository.root)
        let policy = Operations(configuration: weekly, requester: .commandLine)
        #expect(try policy.backupIsIncremental())
        #expect(try !policy.backupIsIncremental(now: Date().addingTimeInterval(8 * 86_400)))
    }

    /// A table whose rows are unchanged but whose base entry cannot be
    /// compared exactly is copied; a table added since the base too.
    @Test func whatCannotBeComparedIsCopied() async throws {
        let source = try Self.tenTables("incr_doubt_src", rows: 2_000)
        let target = try TestDatabase("incr_doubt_dst", creating: false)
        defer { source.drop(); target.drop() }
        let repository = Steps.repository("incremental-doubt")
        try await Self.backup(source, into: repository, incremental: false)
        try source.execute("""
            ALTER TABLE t1 ADD COLUMN note text;
            CREATE TABLE t10 (id int PRIMARY KEY);
            INSERT INTO t10 SELECT generate_series(1, 10);
            """)
        let incremental = try await Self.backup(source, into: repository, incremental: true)
        let manifest = try Self.manifest(incremental.path)
        #expect(Set(manifest.storedTables.map(\.name)) == ["t1", "t10"])
        #expect(manifest.referencedTables.count == 9)
        try await onThread { try Steps.restore(incremental.path, into: target) { $0.create = true } }
        try await Steps.expectEqualOnThread(source, target)
    }

    /// Split tables are compared part by part, each read with its base
    /// part's page range; a changed part makes its table copied whole, in
    /// this backup's own split.
    @Test func splitTablesAreComparedPartByPart() async throws {
        let source = try Self.tenTables("incr_split_src", rows: 20_000)
        let target = try TestDatabase("incr_split_dst", creating: false)
        defer { source.drop(); target.drop() }
        let repository = Steps.repository("incremental-split")
        let full = try await Self.backup(source, into: repository, incremental: false, splitThresholdBytes: 512 << 10)
        let base = try Self.manifest(full.path)
        #expect(base.tables.allSatisfy { $0.parts.count > 1 })
        try source.execute("UPDATE t6 SET payload = 'changed' WHERE id = 19999")
        let incremental = try await Self.backup(source, into: repository, incremental: true, splitThresholdBytes: 512 << 10)
        let manifest = try Self.manifest(incremental.path)
        #expect(manifest.storedTables.map(\.name) == ["t6"])
        for table in manifest.referencedTables {
            #expect(table.parts == base.tables.first { $0.name == table.name }?.parts)
        }
        try Steps.restore(incremental.path, into: target) {
            $0.create = true
            $0.jobs = 2
        }
        try await Steps.expectEqualOnThread(source, target)
    }

    /// An encrypted chain: the base is found and read with the key, and a
    /// data-only restore of a referenced table reads it from the base.
    @Test func encryptedChainsAndDataOnlyRestores() async throws {
        let source = try Self.tenTables("incr_key_src", rows: 2_000)
        let target = try TestDatabase("incr_key_dst")
        defer { source.drop(); target.drop() }
        let repository = Steps.repository("incremental-key")
        let key = try ArchiveKey(base64: Data((0..<32).map { UInt8($0) }).base64EncodedString())
        func backup(_ incremental: Bool) throws -> BackupResult {
            var options = BackupOptions(source: source.connectionString, repository: repository)
            options.incremental = incremental
            options.encryptionKey = key
            return try BackupRunner(options: options).run()
        }
        // A plain backup is never the base of an encrypted one.
        let plain = try await Self.backup(source, into: repository, incremental: false)
        let first = try backup(true)
        #expect(first.base == nil && first.note?.contains("not encrypted") == true)
        try source.execute("UPDATE t4 SET payload = 'x' WHERE id < 10")
        let second = try backup(true)
        #expect(second.base == first.backupId && second.referencedTables == 9)
        #expect(second.base != plain.backupId)

        try source.copySchema(to: target)
        try Steps.restore(second.path, into: target, tables: TableFilter(include: ["public.t1", "public.t4"])) {
            $0.dataOnly = true
            $0.key = key
        }
        for table in ["t1", "t4"] {
            #expect(try target.value("SELECT md5(string_agg(payload, ',' ORDER BY id)) FROM \(table)")
                == source.value("SELECT md5(string_agg(payload, ',' ORDER BY id)) FROM \(table)"))
        }
        var verification = Verification(path: second.path, repository: repository, key: key)
        verification.allowUnencrypted = false
        let verified = try verification.run()
        #expect(verified.intact && verified.chain == [first.backupId], "\(verified.problems)")
        #expect(throws: ArchiveError.self) { _ = try Verification(path: second.path, repository: repository).run() }
    }

    @Test func aMissingOrForgedReferenceIsATypedErrorNeverData() async throws {
        let source = try Self.tenTables("incr_forge_src", rows: 2_000)
        let target = try TestDatabase("incr_forge_dst", creating: false)
        defer { source.drop(); target.drop() }
        let repository = Steps.repository("incremental-forged")
        let base = try await Self.backup(source, into: repository, incremental: false)
        try source.execute((0..<10).map { "UPDATE t\($0) SET payload = 'changed' WHERE id = 1;" }.joined())
        // Another full backup: the same tables, each with other rows than the first's.
        let other = try await Self.backup(source, into: repository, incremental: false)
        try source.execute("UPDATE t0 SET payload = 'changed again' WHERE id = 2")
        let incremental = try await Self.backup(source, into: repository, incremental: true)
        #expect(incremental.base == other.backupId && incremental.referencedTables == 9)

        // Every reference pointed at the first full backup, whose parts differ.
        let forgedPath = try ForgedArchive.rewritten(incremental.path, into: repository) { manifest in
            for index in manifest.tables.indices where manifest.tables[index].storedIn != nil {
                manifest.tables[index].storedIn = base.backupId
            }
        }
        do {
            try await onThread { try Steps.restore(forgedPath, into: target) { $0.create = true } }
            Issue.record("a forged reference was restored")
        } catch let error as ChainError {
            guard case .referenceMismatch(_, _, let storedIn) = error else { throw error }
            #expect(storedIn == base.backupId)
            #expect(error.description.contains("forged"))
        }
        let forgedCheck = try await onThread { try Verification(path: forgedPath, repository: repository).run() }
        #expect(!forgedCheck.intact && forgedCheck.problems.contains { $0.contains("does not hold the table with the same columns and parts") })

        // A reference to a backup that is not there.
        let moved = repository.root + "/elsewhere.arca"
        try FileManager.default.moveItem(atPath: other.path, toPath: moved)
        do {
            try await onThread { try Steps.restore(incremental.path, into: target) { $0.create = true } }
            Issue.record("an incremental backup was restored without its base")
        } catch let error as ChainError {
            guard case .missingBackup(_, let backup, let storedIn, _) = error else { throw error }
            #expect(backup == incremental.backupId && storedIn == other.backupId)
            #expect(error.description.contains("sync --download"))
        }
        let exists = try source.connect().query("SELECT count(*) FROM pg_database WHERE datname = $1", [target.name]).singleValue
        #expect(exists == "0")
        let missingCheck = try await onThread { try Verification(path: incremental.path, repository: repository).run() }
        #expect(!missingCheck.intact && missingCheck.problems.contains { $0.contains(other.backupId) })
    }

    /// An incremental backup uploaded after its base, and restored and
    /// verified from the bucket alone.
    @Test func theBucketHoldsTheBaseFirstAndRestoresThroughTheChain() async throws {
        let source = try Self.tenTables("incr_cloud_src", rows: 2_000)
        let target = try TestDatabase("incr_cloud_dst", creating: false)
        defer { source.drop(); target.drop() }
        let repository = Steps.repository("incremental-cloud")
        let cloud = try await CloudStorageTests.bucket("incremental")
        // The base is made before the bucket is configured: the incremental
        // backup's upload must send it first.
        let full = try await Self.backup(source, into: repository, incremental: false)
        try source.execute("UPDATE t2 SET payload = 'changed' WHERE id < 50")
        let incremental = try await Self.backup(source, into: repository, incremental: true, cloud: cloud)
        #expect(incremental.referencedTables == 9)
        let stored = try await onThread { try cloud.archives().map(\.id.rawValue) }
        #expect(Set(stored) == [full.backupId, incremental.backupId])

        let id = try #require(BackupID(incremental.backupId))
        try await onThread {
            var options = RestoreOptions(archive: .cloud(cloud, id), target: target.connectionString)
            options.confirmed = true
            options.create = true
            options.jobs = 2
            _ = try RestoreRunner(options: options).run()
        }
        try await Steps.expectEqualOnThread(source, target)
        let verified = try await onThread { try Verification(archive: .cloud(cloud, id), repository: repository).run() }
        #expect(verified.intact && verified.chain == [full.backupId], "\(verified.problems)")

        // --upload-only finds its base in the bucket.
        try source.execute("UPDATE t7 SET payload = 'changed' WHERE id < 50")
        let streamed = try await Self.backup(source, into: repository, incremental: true, cloud: cloud, uploadOnly: true)
        #expect(streamed.base == incremental.backupId && streamed.referencedTables == 9)

        // sync refuses to upload an incremental backup without its base.
        let other = try await CloudStorageTests.bucket("incremental-sync")
        try FileManager.default.moveItem(atPath: full.path, toPath: repository.root + "/away.arca")
        let synced = try await onThread { try CloudSync(repository: repository, cloud: other).upload() }
        #expect(synced.copied.isEmpty)
        #expect(synced.failed[incremental.backupId]?.contains("incremental on backup \(full.backupId)") == true, "\(synced.failed)")
    }
}
