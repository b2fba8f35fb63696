@testable import ArcaEngine
import ArcaFormat
import ArcaOperations
import ArcaPostgres
import ArcaS3
import ArcaTesting
import Foundation
import Testing

/// Two services, two databases, one bucket without a prefix (issue 22):
/// both nightly backups start in the same second, and neither service
/// overwrites, lists, counts, cleans up or silently restores the other's.
/// Real PostgreSQL, a real moto_server, and the fault proxy playing a
/// store that ignores conditional writes.
@Suite struct SharedBucketTests {
    struct Service {
        let database: TestDatabase
        let repository: Repository
        let operations: Operations

        init(_ label: String, rows: Int, cloud: CloudStore) throws {
            database = try TestDatabase(label)
            try database.execute("CREATE TABLE record (id int PRIMARY KEY, note text); INSERT INTO record SELECT g, 'note ' || g FROM generate_series(1, \(rows)) g")
            repository = Steps.repository(label)
            var configuration = try ServiceConfiguration(environment: [
                "DATABASE_URL": database.connectionString.conninfo, "ARCA_REPO": repository.root,
            ])
            configuration.cloud = cloud
            operations = Operations(configuration: configuration, requester: .commandLine)
        }

        /// A backup started at `date`, uploaded to the bucket.
        func backup(at date: Date, cloud: CloudStore) throws -> BackupResult {
            var options = BackupOptions(source: database.connectionString, repository: repository)
            options.cloud = cloud
            return try BackupRunner(options: options).run(now: { date })
        }
    }

    @Test func twoDatabasesShareOneBucketWithoutTouchingEachOther() async throws {
        let cloud = try await CloudStorageTests.bucket("shared", prefix: "")
        let a = try Service("shared_pagila", rows: 300, cloud: cloud)
        let b = try Service("shared_chinook", rows: 40, cloud: cloud)
        defer { a.database.drop(); b.database.drop() }

        // Both start in the same second (B half a second later).
        let second = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        let backupA = try await onThread { try a.backup(at: second.addingTimeInterval(0.1), cloud: cloud) }
        let backupB = try await onThread { try b.backup(at: second.addingTimeInterval(0.6), cloud: cloud) }
        #expect(backupA.backupId != backupB.backupId)
        #expect(backupA.backupId.prefix(22) == backupB.backupId.prefix(22), "the same second")
        #expect(Set(try cloud.archives().map(\.id.rawValue)) == [backupA.backupId, backupB.backupId])

        // A sees its own backup, locally and in the bucket, and B's only when asked.
        let listed = try await onThread { try a.operations.list() }
        #expect(listed.map(\.id) == [backupA.backupId, backupA.backupId])
        #expect(Set(listed.map(\.location)) == [.local, .cloud])
        #expect(listed.allSatisfy { $0.source?.database == a.database.name && $0.source?.databaseOid != nil && $0.source?.systemIdentifier != nil })
        let everything = try await onThread { try a.operations.list(allSources: true) }
        let other = try #require(everything.first { $0.id == backupB.backupId })
        #expect(other.location == .cloud)
        #expect(other.source?.database == b.database.name)
        #expect(other.source?.databaseOid != listed[0].source?.databaseOid)
        // B's backup is newer, but it is not A's newest (drills, status, metrics).
        #expect(try await onThread { try a.operations.newestBackup()?.id } == backupA.backupId)
        let status = try await onThread { try a.operations.status() }
        #expect(status.lastBackup?.id == backupA.backupId)
        #expect(status.source?.database == a.database.name)
        let bucket = try #require(status.storage.first { $0.location == .cloud })
        #expect(bucket.backups == 1 && bucket.otherSources == 1)

        // Restoring B's backup through A's service says whose it is, and changes nothing.
        let target = try TestDatabase("shared_target", creating: false)
        defer { target.drop() }
        var restore = RestoreRequest(backup: backupB.backupId)
        restore.fromCloud = true
        restore.target = target.connectionString
        restore.confirmed = true
        restore.create = true
        let refusal = restore
        do {
            _ = try await onThread { try a.operations.restore(refusal) }
            Issue.record("another database's backup was restored without --allow-other-source")
        } catch let error as OtherSourceError {
            #expect(ErrorKind.of(error) == .refused)
            #expect(error.description.contains(b.database.name) && error.description.contains("--allow-other-source"))
        }
        let probe = try a.database.connect()
        defer { probe.close() }
        #expect(try probe.query("SELECT count(*) FROM pg_database WHERE datname = $1", [target.name]).singleValue == "0")
        restore.allowOtherSource = true
        let allowed = restore
        let restored = try await onThread { try a.operations.restore(allowed) }
        #expect(restored.rows == 40)

        // Retention keeping only the newest removes A's older copies, never B's.
        var keepNewest = CleanupRequest()
        keepNewest.retentionDays = 0
        keepNewest.keepLast = 1
        let request = keepNewest
        let older = try await onThread { try a.backup(at: second.addingTimeInterval(-86_400 * 3), cloud: cloud) }
        let cleaned = try await onThread { try a.operations.cleanup(request) }
        let bucketCleanup = try #require(cleaned.stores.first { $0.location == .cloud })
        #expect(bucketCleanup.removed == [older.backupId])
        #expect(bucketCleanup.otherSources == 1)
        #expect(!bucketCleanup.removed.contains(backupB.backupId))
        #expect(Set(try cloud.archives().map(\.id.rawValue)) == [backupA.backupId, backupB.backupId])

        // Downloading copies A's own backups only.
        FileSystem.remove(a.repository.archivePath(try #require(BackupID(backupA.backupId))))
        let downloaded = try await onThread { try a.operations.sync(.download) }
        #expect(downloaded.copied == [backupA.backupId])
        #expect(try a.repository.backupIDs().map(\.rawValue) == [backupA.backupId])
    }

    /// The store refuses the conditional write itself (another writer's
    /// object appeared between the look and the write): a backup keeps its
    /// local copy and says so, an `--upload-only` one keeps nothing, and
    /// neither leaves an object or an unfinished upload in the bucket.
    @Test func aRefusedConditionalWriteKeepsTheLocalCopyAndLeavesNothing() async throws {
        let moto = try await MotoServer.shared()
        let proxy = try S3FaultProxy(upstream: moto.endpoint, refuseConditionalWrites: true)
        defer { proxy.stop() }
        let direct = try await CloudStorageTests.bucket("refused", prefix: "")
        let cloud = CloudStorageTests.sameBucket(direct, through: proxy.endpoint)
        // Two upload parts: the refusal comes at the multipart completion.
        let source = try CloudStorageTests.scans("refused_src", rows: 40_000)
        defer { source.drop() }
        let repository = Steps.repository("refused")

        do {
            _ = try await CloudStorageTests.backup(source, repository, cloud: cloud)
            Issue.record("an upload the store refused counted as done")
        } catch let error as CloudError {
            #expect(error.isIDTaken && ErrorKind.of(error) == .conflict)
            let kept = try #require(try repository.backupIDs().first)
            #expect("\(error)".contains(repository.archivePath(kept)) && "\(error)".contains("nothing in the bucket was replaced"), "\(error)")
            #expect(try Verification(path: repository.archivePath(kept), repository: repository).run().intact)
        }
        do {
            _ = try await CloudStorageTests.backup(source, repository, cloud: cloud, uploadOnly: true)
            Issue.record("an --upload-only backup the store refused counted as done")
        } catch let error as CloudError {
            #expect(error.isIDTaken)
            #expect("\(error)".contains("No backup was kept"), "\(error)")
        }
        #expect(try repository.backupIDs().count == 1, "the upload-only backup left nothing local")
        #expect(try direct.archives().isEmpty)
        #expect(try await onThread { try direct.unfinishedUploads() }.isEmpty)
    }

    /// Without its server, the configured source is the newest local
    /// backup of that database's name; without DATABASE_URL there is none,
    /// and cleanup leaves the bucket alone, saying why.
    @Test func theConfiguredSourceWhenItsServerIsAway() async throws {
        let cloud = try await CloudStorageTests.bucket("away", prefix: "")
        let mine = try TestDatabase("away_mine")
        let other = try TestDatabase("away_other")
        defer { mine.drop(); other.drop() }
        let repository = Steps.repository("away")
        let own = try await onThread { try Steps.backup(mine, into: repository) }
        let foreign = try await onThread { try Steps.backup(other, into: repository) }

        var away = try ServiceConfiguration(environment: [
            "DATABASE_URL": "host=/nonexistent-arca-socket port=1 dbname=\(mine.name)", "ARCA_REPO": repository.root,
        ])
        away.cloud = cloud
        let operations = Operations(configuration: away, requester: .commandLine)
        #expect(operations.configuredSource()?.database == mine.name)
        #expect(try await onThread { try operations.list() }.map(\.id) == [own.backupId])
        #expect(try await onThread { try operations.list(allSources: true) }.count == 2)

        var unset = try ServiceConfiguration(environment: ["ARCA_REPO": repository.root])
        unset.cloud = cloud
        let unconfigured = Operations(configuration: unset, requester: .commandLine)
        #expect(unconfigured.configuredSource() == nil)
        var request = CleanupRequest()
        request.dryRun = true
        let dryRun = request
        let planned = try await onThread { try unconfigured.cleanup(dryRun) }
        #expect(planned.stores.map(\.location) == [.local])
        #expect(planned.notes.contains { $0.contains("left alone") && $0.contains("DATABASE_URL is not set") }, "\(planned.notes)")
        #expect(Set(try repository.backupIDs().map(\.rawValue)) == [own.backupId, foreign.backupId])
    }

    /// The change stream uploads its segments into its source's own folder
    /// (`changes/<system id>_<oid>/<slot>/`): two clusters' slots of the
    /// same name never meet. A segment sent again (a restart after the
    /// upload, before the slot advanced) is accepted as the same object; a
    /// different one under its name is refused, the first kept.
    @Test func changeSegmentsGoToTheirSourcesFolder() async throws {
        let cloud = try await CloudStorageTests.bucket("segments", prefix: "")
        let database = try TestDatabase("shared_stream")
        let slot = "arca_\(database.name)"
        defer {
            try? database.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '\(slot)'")
            database.drop()
        }
        try database.execute("CREATE TABLE visit (id int PRIMARY KEY, note text)")
        let repository = Steps.repository("shared-stream")
        var options = StreamOptions(source: database.connectionString, repository: repository, slot: slot)
        options.cloud = cloud
        options.segmentSeconds = 1
        let configured = options
        let streamer = BackgroundOperation { try ChangeStreamer(options: configured).run { _ in } }
        defer {
            configured.cancellation.cancel()
            _ = streamer.wait(seconds: 60)
        }
        let identity = try SourceIdentity.read(try database.connect())
        let folder = CloudStore.segmentFolder(slot: slot, source: identity)
        #expect(folder == "changes/\(try #require(identity.systemIdentifier))_\(try #require(identity.databaseOid))/\(slot)/")
        var uploaded: [SegmentID] = []
        let deadline = Date().addingTimeInterval(60)
        while uploaded.isEmpty, Date() < deadline, !streamer.isFinished {
            try database.execute("INSERT INTO visit SELECT coalesce(max(id), 0) + 1, 'x' FROM visit")
            try await Task.sleep(for: .milliseconds(300))
            uploaded = try await onThread { try cloud.segments(folder: folder) }
        }
        let id = try #require(uploaded.first, "no segment reached \(folder): \(String(describing: streamer.wait(seconds: 0)))")
        let path = ChangeLog(repository: repository, slot: slot).path(id)
        // Sent again: the same bytes, accepted.
        try await onThread { try cloud.upload(segmentAt: path, id: id, folder: folder) }
        // Other bytes under its name: refused, the stored one kept.
        let other = try ChangeReplayTests.segment([ChangeReplayTests.insert(1, "a")], in: Steps.repository("shared-stream-other"))
        do {
            try await onThread { try cloud.upload(segmentAt: other, id: id, folder: folder) }
            Issue.record("a different segment replaced an uploaded one")
        } catch S3Error.objectExists {}
        let key = folder + "\(id).arca"
        let stored = try await onThread { try runBlocking { try await cloud.client.headObject(key: key) } }
        #expect(stored?.size == FileSystem.size(path))
        #expect(stored?.etag == (try S3Client.expectedETag(of: try FileSource(path: path), partSize: CloudStore.segmentPartSize)))
    }

    /// A bucket that already holds another database's object under a local
    /// backup's name (what old ids could lead to): the upload is refused,
    /// the local copy stays, the bucket's object is not replaced. Against
    /// moto (conditional writes) and through a store that ignores them.
    @Test(arguments: [false, true])
    func aTakenNameIsNeverOverwritten(ignoringConditions: Bool) async throws {
        let moto = try await MotoServer.shared()
        let proxy = ignoringConditions ? try S3FaultProxy(upstream: moto.endpoint, ignoreConditions: true) : nil
        defer { proxy?.stop() }
        let direct = try await CloudStorageTests.bucket("taken", prefix: "")
        let cloud = proxy.map { CloudStorageTests.sameBucket(direct, through: $0.endpoint) } ?? direct
        let a = try Service("taken_a_\(ignoringConditions)", rows: 200, cloud: cloud)
        let b = try Service("taken_b_\(ignoringConditions)", rows: 20, cloud: cloud)
        defer { a.database.drop(); b.database.drop() }
        let ownA = try await onThread { try Steps.backup(a.database, into: a.repository) }
        let ownB = try await onThread { try Steps.backup(b.database, into: b.repository) }
        // B's archive, stored in the bucket under A's backup's name.
        let idA = try #require(BackupID(ownA.backupId))
        let planted = try Array(Data(contentsOf: URL(fileURLWithPath: ownB.path)))
        try await onThread {
            try runBlocking {
                let client = S3Client(configuration: direct.configuration)
                defer { Task { try? await client.shutdown() } }
                try await client.putObject(key: "\(idA).arca", body: planted)
                try await client.putObject(key: "\(idA).arca.md5", body: Array("\(ownB.md5)  \(idA).arca\n".utf8))
            }
        }

        let result = try await onThread { try a.operations.sync(.upload) }
        #expect(result.copied.isEmpty)
        let failure = try #require(result.failed[ownA.backupId])
        #expect(failure.contains("already holds a different backup") && failure.contains(ownA.path), "\(failure)")
        // Nothing replaced, nothing lost.
        #expect(try direct.recordedMD5(idA) == ownB.md5)
        #expect(try direct.stat(idA)?.bytes == UInt64(planted.count))
        #expect(FileSystem.exists(ownA.path))
        #expect(try Repository.recordedMD5(ofArchive: ownA.path) == ownA.md5)
        // The direct upload path refuses it the same way.
        do {
            try await onThread { try cloud.upload(archiveAt: ownA.path, id: idA) }
            Issue.record("an upload replaced another database's object")
        } catch let error as CloudError {
            #expect(error.isIDTaken)
            #expect(ErrorKind.of(error) == .conflict)
        }
        #expect(try direct.recordedMD5(idA) == ownB.md5)
    }
}
