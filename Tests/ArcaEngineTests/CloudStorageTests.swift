import ArcaEngine
import ArcaOperations
import ArcaFormat
import ArcaPostgres
import ArcaS3
import ArcaTesting
import Foundation
import Testing

/// Backups kept in an S3-compatible bucket: a real moto_server on loopback
/// (started by the tests), real PostgreSQL, real archives. Engine calls run
/// on threads of their own (`onThread`): they block on S3 requests.
@Suite struct CloudStorageTests {
    static let quickRetries = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(5), maxDelay: .milliseconds(20))

    /// A fresh bucket on `endpoint` (default: the shared moto server).
    static func bucket(_ label: String, endpoint: URL? = nil, prefix: String = "clinic/") async throws -> CloudStore {
        let server: URL
        if let endpoint { server = endpoint } else { server = try await MotoServer.shared().endpoint }
        let configuration = S3Configuration(
            bucket: "arca-\(label)-\(UUID().uuidString.prefix(8).lowercased())", accessKeyID: "testing", secretAccessKey: "testing",
            endpoint: server, prefix: prefix)
        let store = CloudStore(configuration: configuration, retryPolicy: quickRetries)
        try await onThread { try store.createBucket() }
        return store
    }

    /// The same bucket through another endpoint (a fault proxy in front of the server).
    static func sameBucket(_ store: CloudStore, through endpoint: URL) -> CloudStore {
        let c = store.configuration
        return CloudStore(
            configuration: S3Configuration(bucket: c.bucket, accessKeyID: "testing", secretAccessKey: "testing", endpoint: endpoint, prefix: c.prefix),
            retryPolicy: quickRetries)
    }

    /// About 20 MB of incompressible rows: an archive of three 8 MiB upload parts.
    static func scans(_ label: String, rows: Int = 80_000) throws -> TestDatabase {
        let database = try TestDatabase(label)
        let hex = (0..<16).map { "md5(g::text || '\($0)')" }.joined(separator: " || ")
        _ = try database.execute("""
            CREATE TABLE scan (id int PRIMARY KEY, image bytea NOT NULL);
            INSERT INTO scan SELECT g, decode(\(hex), 'hex') FROM generate_series(1, \(rows)) g;
            CREATE TABLE patient (id int PRIMARY KEY, name text);
            INSERT INTO patient SELECT g, 'patient ' || g FROM generate_series(1, 500) g;
            """)
        return database
    }

    static func backup(_ database: TestDatabase, _ repository: Repository, cloud: CloudStore?, uploadOnly: Bool = false,
                       progress: @escaping @Sendable (OperationProgress) -> Void = { _ in }) async throws -> BackupResult {
        var options = BackupOptions(source: database.connectionString, repository: repository)
        options.cloud = cloud
        options.uploadOnly = uploadOnly
        let configured = options
        return try await onThread { try BackupRunner(options: configured).run(progress: progress) }
    }

    /// A restore with two jobs straight from the bucket (no download first).
    static func restore(_ id: BackupID, from cloud: CloudStore, into target: TestDatabase) async throws {
        try await onThread {
            var options = RestoreOptions(archive: .cloud(cloud, id), target: target.connectionString)
            options.confirmed = true
            options.create = true
            options.jobs = 2
            _ = try RestoreRunner(options: options).run()
        }
    }

    @Test func uploadListInspectVerifyAndRestoreFromTheBucket() async throws {
        let source = try Self.scans("cloud_src")
        let target = try TestDatabase("cloud_dst", creating: false)
        defer { source.drop(); target.drop() }
        let cloud = try await Self.bucket("roundtrip")
        let repository = Steps.repository("cloud")

        let result = try await Self.backup(source, repository, cloud: cloud)
        #expect(result.bytes > 16 << 20, "the archive should need several upload parts")
        #expect(result.cloud == cloud.describe(try #require(BackupID(result.backupId))))
        let id = try #require(BackupID(result.backupId))
        #expect(try cloud.archives().map(\.id) == [id])
        #expect(try cloud.recordedMD5(id) == result.md5)

        // Listing reads the trailer and manifest with small ranged GETs.
        let before = cloud.bytesDownloaded
        let listings = try await onThread { try cloud.listings(key: nil, records: repository) }
        #expect(listings.first?.tables == 2 && listings.first?.bytes == result.bytes)
        #expect(cloud.bytesDownloaded - before < 512 << 10, "listing fetched \(cloud.bytesDownloaded - before) bytes")

        let verification = try await onThread { try Verification(archive: .cloud(cloud, id), repository: repository).run() }
        #expect(verification.intact && verification.sidecar == "match", "\(verification.problems)")

        // Restore with no local copy at all: chunks come by ranged GETs.
        _ = try repository.remove(id)
        try await Self.restore(id, from: cloud, into: target)
        try Steps.expectEqual(source, target)
    }

    @Test func damagedCloudCopyFailsVerification() async throws {
        let source = try Self.scans("cloud_damaged", rows: 3000)
        defer { source.drop() }
        let cloud = try await Self.bucket("damaged")
        let repository = Steps.repository("cloud-damaged")
        let result = try await Self.backup(source, repository, cloud: cloud)
        let id = try #require(BackupID(result.backupId))

        // Flip one byte in the middle of the stored object.
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: result.path)))
        bytes[bytes.count / 2] ^= 0x5A
        let client = S3Client(configuration: cloud.configuration)
        _ = try await client.putObject(key: "\(id).arca", body: bytes)
        try await client.shutdown()

        let verification = try await onThread { try Verification(archive: .cloud(cloud, id), repository: repository).run() }
        #expect(!verification.intact)
        #expect(verification.sidecar == "mismatch")
        #expect(verification.problems.contains { $0.contains("chunk") }, "\(verification.problems)")
        // The local copy is untouched and intact.
        #expect(try Verification(path: result.path, repository: repository).run().intact)
    }

    /// The same failing part in a streamed upload (`--upload-only`): each
    /// attempt reads the staged part again on the event loop, the upload is
    /// aborted after the retries, and nothing is left anywhere: no object,
    /// no unfinished upload, no local copy, nothing in temp/.
    @Test func failedStreamedUploadLeavesNothing() async throws {
        let source = try Self.scans("cloud_sfault")
        defer { source.drop() }
        let cloud = try await Self.bucket("sfault")
        let proxy = try S3FaultProxy(upstream: cloud.configuration.endpoint!, failPart: 2)
        defer { proxy.stop() }
        let repository = Steps.repository("cloud-sfault")

        var failure: CloudError?
        do {
            _ = try await Self.backup(source, repository, cloud: Self.sameBucket(cloud, through: proxy.endpoint), uploadOnly: true)
        } catch let error as CloudError {
            failure = error
        }
        let error = try #require(failure, "the streamed upload through the failing proxy succeeded")
        #expect("\(error)".contains("InternalError") && "\(error)".contains("No backup was kept"), "\(error)")
        #expect(try cloud.archives().isEmpty)
        #expect(try cloud.unfinishedUploads().isEmpty, "an orphaned multipart upload was left behind")
        #expect(try repository.backupIDs().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: repository.temporaryDirectory).isEmpty)
    }

    /// A part that keeps failing with 500: the upload is retried, then
    /// aborted (no orphaned multipart upload), the local copy stays, and
    /// status reports the missing cloud copy until `sync` uploads it.
    @Test func failedUploadIsAbortedAndTheLocalCopyStays() async throws {
        let source = try Self.scans("cloud_fault")
        defer { source.drop() }
        let cloud = try await Self.bucket("fault")
        let proxy = try S3FaultProxy(upstream: cloud.configuration.endpoint!, failPart: 2)
        defer { proxy.stop() }
        let repository = Steps.repository("cloud-fault")

        var failure: CloudError?
        do {
            _ = try await Self.backup(source, repository, cloud: Self.sameBucket(cloud, through: proxy.endpoint))
        } catch let error as CloudError {
            failure = error
        }
        let error = try #require(failure, "the upload through the failing proxy succeeded")
        #expect("\(error)".contains("InternalError") && "\(error)".contains("arca sync"), "\(error)")
        let id = try #require(try repository.backupIDs().first)
        #expect(try Verification(path: repository.archivePath(id), repository: repository).run().intact)
        #expect(try cloud.archives().isEmpty)
        #expect(try cloud.unfinishedUploads().isEmpty, "an orphaned multipart upload was left behind")

        let environment = Self.environment(cloud, repository)
        let status = try await onThread { try Operations(configuration: try ServiceConfiguration(environment: environment), requester: .commandLine).status() }
        #expect(status.cloudMissing == [id.rawValue])
        #expect(status.problems.contains { $0.contains("arca sync") })

        let synced = try await onThread { try CloudSync(repository: repository, cloud: cloud).upload() }
        #expect(synced.copied == [id.rawValue] && synced.failed.isEmpty)
        #expect(try cloud.archives().map(\.id) == [id])
    }

    /// The server goes away in the middle of a streamed upload: a clear
    /// failure, and nothing left locally (there is no local copy to keep).
    @Test func serverStoppedDuringAnUploadOnlyBackup() async throws {
        let source = try Self.scans("cloud_stop", rows: 200_000)
        defer { source.drop() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let cloud = try await Self.bucket("stop", endpoint: moto.endpoint)
        let repository = Steps.repository("cloud-stop")
        let stopped = Flag()
        do {
            _ = try await Self.backup(source, repository, cloud: cloud, uploadOnly: true) { progress in
                if progress.bytesDone > 8 << 20, stopped.set() { moto.stop() }
            }
            Issue.record("the backup succeeded although the server was stopped")
        } catch {
            #expect(stopped.isSet)
            #expect("\(error)".contains("could not be reached") || "\(error)".contains("upload"), "\(error)")
        }
        #expect(try repository.backupIDs().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: repository.temporaryDirectory).isEmpty)
    }

    /// An `--upload-only` backup through a proxy that fails the PUT of the
    /// checksum sidecar (and, with `failDeletes`, every deletion); returns
    /// the error it ended with.
    func backupWithFailingSidecar(
        _ label: String, failDeletes: Bool
    ) async throws -> (error: CloudError, cloud: CloudStore, repository: Repository)? {
        let source = try Self.scans("cloud_\(label)", rows: 2000)
        defer { source.drop() }
        let cloud = try await Self.bucket(label)
        let proxy = try S3FaultProxy(upstream: cloud.configuration.endpoint!, failPutsEndingWith: ".md5", failDeletes: failDeletes)
        defer { proxy.stop() }
        let repository = Steps.repository("cloud-\(label)")
        do {
            _ = try await Self.backup(source, repository, cloud: Self.sameBucket(cloud, through: proxy.endpoint), uploadOnly: true)
            Issue.record("the backup succeeded although its checksum could not be stored")
            return nil
        } catch let error as CloudError {
            return (error, cloud, repository)
        }
    }

    /// The checksum sidecar that completes a streamed upload cannot be
    /// stored: the archive it would vouch for is deleted again, so the
    /// bucket never holds an archive without its checksum.
    @Test func failedSidecarUploadTakesTheArchiveBack() async throws {
        guard let (error, cloud, repository) = try await backupWithFailingSidecar("sidecar", failDeletes: false) else { return }
        #expect("\(error)".contains("InternalError"), "\(error)")
        #expect(try cloud.archives().isEmpty, "an archive without its sidecar was left in the bucket")
        #expect(try cloud.unfinishedUploads().isEmpty)
        #expect(try repository.backupIDs().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: repository.temporaryDirectory).isEmpty)
    }

    /// When the clean-up fails as well, the error says that the archive is
    /// in the bucket without its sidecar, where, and what to do.
    @Test func archiveThatCannotBeTakenBackIsNamed() async throws {
        guard let (error, cloud, repository) = try await backupWithFailingSidecar("sidecar-left", failDeletes: true) else { return }
        let left = try #require(try cloud.archives().first, "the proxy did not keep the archive from being deleted")
        #expect("\(error)".contains("\(cloud.describe(left.id)) is in the bucket without its sidecar: delete that object"), "\(error)")
        #expect(try repository.backupIDs().isEmpty)
    }

    /// About 20 MB streamed: three parts, so the writer waits for a staged
    /// part to be free while earlier parts upload. The staged parts are
    /// unlinked files: temp/ shows none of them, even while they are used.
    @Test func uploadOnlyThenDownloadBySync() async throws {
        let source = try Self.scans("cloud_only")
        let target = try TestDatabase("cloud_only_dst", creating: false)
        defer { source.drop(); target.drop() }
        let cloud = try await Self.bucket("only")
        let repository = Steps.repository("cloud-only")

        let seenInTemp = Flag()
        let result = try await Self.backup(source, repository, cloud: cloud, uploadOnly: true) { _ in
            if let names = try? FileManager.default.contentsOfDirectory(atPath: repository.temporaryDirectory), !names.isEmpty {
                _ = seenInTemp.set()
            }
        }
        #expect(!seenInTemp.isSet, "a staged upload part was visible in temp/")
        let id = try #require(BackupID(result.backupId))
        #expect(result.bytes > 16 << 20, "the archive should need several upload parts")
        #expect(try repository.backupIDs().isEmpty, "--upload-only left a local copy")
        #expect(result.path == cloud.describe(id))
        #expect(try cloud.recordedMD5(id) == result.md5)

        let synced = try await onThread { try CloudSync(repository: repository, cloud: cloud).download() }
        #expect(synced.copied == [id.rawValue])
        let local = repository.archivePath(id)
        #expect(try Verification(path: local, repository: repository).run().intact)
        try Steps.restore(local, into: target) { $0.create = true }
        try Steps.expectEqual(source, target)
    }

    /// With a key configured, `sync --download` copies only archives made
    /// with it: a plain object in the bucket (which anyone with write access
    /// can put there, sidecar and all) is refused unless allowed.
    @Test func downloadRefusesPlainArchivesWhileAKeyIsConfigured() async throws {
        let source = try Self.scans("cloud_plain", rows: 200)
        defer { source.drop() }
        let cloud = try await Self.bucket("plain")
        let planted = try await Self.backup(source, Steps.repository("cloud-plain-writer"), cloud: cloud, uploadOnly: true)
        let repository = Steps.repository("cloud-plain-reader")
        var sync = CloudSync(repository: repository, cloud: cloud)
        sync.key = ArchiveKey.generate()
        let configured = sync
        let refused = try await onThread { try configured.download() }
        #expect(refused.copied.isEmpty)
        #expect(refused.failed[planted.backupId]?.contains("is not encrypted, but an encryption key is configured") == true)
        #expect(try repository.backupIDs().isEmpty)

        sync.allowUnencrypted = true
        let allowed = sync
        #expect(try await onThread { try allowed.download() }.copied == [planted.backupId])
    }

    /// Cloud copies follow their own retention: old ones go, the newest stays,
    /// local archives are not touched.
    @Test func retentionRemovesOldCloudCopies() async throws {
        let source = try Self.scans("cloud_retention", rows: 500)
        defer { source.drop() }
        let cloud = try await Self.bucket("retention")
        let repository = Steps.repository("cloud-retention")
        let result = try await Self.backup(source, repository, cloud: cloud)
        // Two old backups, in the bucket only (retention goes by the time in their manifests).
        var old: [String] = []
        for day in [1, 2] {
            var options = BackupOptions(source: source.connectionString, repository: repository)
            options.cloud = cloud
            options.uploadOnly = true
            let configured = options
            let date = Date(timeIntervalSince1970: 1_577_844_000 + Double(day) * 86_400)  // 2020-01-0x
            old.append(try await onThread { try BackupRunner(options: configured).run(now: { date }) }.backupId)
        }
        #expect(old.map { $0.prefix(22) } == ["backup_20200102_020000", "backup_20200103_020000"])
        #expect(try cloud.archives().count == 3)

        let cleanup = Cleanup(repository: repository, targets: [(repository, RetentionPolicy(retentionDays: 30)), (cloud, RetentionPolicy(retentionDays: 30))])
        let outcome = try await onThread { try cleanup.run() }
        #expect(outcome.stores.map(\.location) == [.local, .cloud])
        #expect(outcome.stores[1].removed.sorted() == old)
        #expect(try cloud.archives().map(\.id.rawValue) == [result.backupId])
        #expect(try cloud.recordedMD5(BackupID(old[0])!) == nil)
        #expect(try repository.backupIDs().map(\.rawValue) == [result.backupId])
    }
}

extension CloudStorageTests {
    static func environment(_ cloud: CloudStore, _ repository: Repository, _ extra: [String: String] = [:]) -> [String: String] {
        [
            "ARCA_REPO": repository.root, "AWS_S3_BUCKET": cloud.configuration.bucket, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": cloud.configuration.endpoint!.absoluteString,
            "ARCA_S3_PREFIX": cloud.configuration.prefix,
        ].merging(extra) { $1 }
    }

    /// A connection that drops in the middle of a GET: verify, restore and
    /// download go on from the bytes that arrived instead of failing.
    @Test func readsResumeAfterAConnectionDropsMidAnswer() async throws {
        let source = try Self.scans("cloud_cut")
        let target = try TestDatabase("cloud_cut_dst", creating: false)
        defer { source.drop(); target.drop() }
        let cloud = try await Self.bucket("cut")
        let repository = Steps.repository("cloud-cut")
        let result = try await Self.backup(source, repository, cloud: cloud, uploadOnly: true)
        let id = try #require(BackupID(result.backupId))

        let proxy = try S3FaultProxy(upstream: cloud.configuration.endpoint!, cutGets: 2)
        defer { proxy.stop() }
        let cut = Self.sameBucket(cloud, through: proxy.endpoint)
        let verification = try await onThread { try Verification(archive: .cloud(cut, id), repository: repository).run() }
        #expect(verification.intact && verification.sidecar == "match", "\(verification.problems)")
        // Each cut GET was resumed, not read again from the start.
        #expect(cut.bytesDownloaded < result.bytes + (1 << 20), "read \(cut.bytesDownloaded) bytes of \(result.bytes)")

        let proxyForRestore = try S3FaultProxy(upstream: cloud.configuration.endpoint!, cutGets: 2)
        defer { proxyForRestore.stop() }
        let restoreCut = Self.sameBucket(cloud, through: proxyForRestore.endpoint)
        try await Self.restore(id, from: restoreCut, into: target)
        try Steps.expectEqual(source, target)
    }

    /// An interrupted `--upload-only` leaves an unfinished multipart upload:
    /// status counts it, cleanup aborts it once older than
    /// ARCA_STALE_UPLOAD_HOURS (at 0 at once), and uploads of keys that are
    /// not archives are left alone.
    @Test func cleanupAbortsStaleUploadsAndStatusCountsThem() async throws {
        let cloud = try await Self.bucket("stale")
        let repository = Steps.repository("cloud-stale")
        try repository.prepare()
        let client = S3Client(configuration: cloud.configuration)
        let interrupted = "backup_20200101_020000.arca"
        _ = try await client.createMultipartUpload(key: interrupted)
        let foreign = try await client.createMultipartUpload(key: "notes/report.pdf")

        func status(_ hours: String) async throws -> ServiceStatus {
            let environment = Self.environment(cloud, repository, ["ARCA_STALE_UPLOAD_HOURS": hours])
            return try await onThread { try Operations(configuration: try ServiceConfiguration(environment: environment), requester: .commandLine).status() }
        }
        func cleanup(hours: Int, now: Date = Date()) async throws -> UnfinishedWrites? {
            var cleanup = Cleanup(repository: repository, targets: [(repository, RetentionPolicy(retentionDays: 30)), (cloud, RetentionPolicy(retentionDays: 30))])
            cleanup.staleWriteHours = hours
            let configured = cleanup
            let result = try await onThread { try configured.run(now: now) }
            #expect(result.stores[0].unfinishedWrites == nil, "the repository has no unfinished writes to abort")
            return result.stores[1].unfinishedWrites
        }
        #expect(try await status("24").unfinishedUploads == 1)

        // Ages go by the Initiated time S3 reports (moto reports a fixed one).
        let initiated = try #require(try await client.listMultipartUploads().first { $0.key == interrupted }?.initiated)
        // 23 hours after it started: left.
        let young = try await cleanup(hours: 24, now: initiated.addingTimeInterval(23 * 3600))
        #expect(young?.aborted == [] && young?.remaining == 1)
        // 25 hours after: stale.
        let later = try await cleanup(hours: 24, now: initiated.addingTimeInterval(25 * 3600))
        #expect(later?.aborted == [interrupted] && later?.remaining == 0)
        #expect(try await status("24").unfinishedUploads == 0)
        #expect(try await client.listMultipartUploads().map(\.uploadID) == [foreign])

        // At 0 hours, any one: a backup running in this repository would
        // hold the lock cleanup takes first.
        _ = try await client.createMultipartUpload(key: "backup_20200102_020000.arca")
        #expect(try await status("0").unfinishedUploads == 1)
        let now = try await cleanup(hours: 0)
        #expect(now?.aborted == ["backup_20200102_020000.arca"] && now?.remaining == 0)
        #expect(try await client.listMultipartUploads().map(\.uploadID) == [foreign])
        try await client.shutdown()
    }

    /// A cleanup that starts while an `--upload-only` backup runs is refused
    /// by the repository lock: the running upload is never aborted.
    @Test func cleanupNeverAbortsTheUploadOfARunningBackup() async throws {
        let source = try Self.scans("cloud_running", rows: 200_000)
        defer { source.drop() }
        let cloud = try await Self.bucket("running")
        let repository = Steps.repository("cloud-running")
        let attempted = Flag()
        let outcome = Outcome()
        let result = try await Self.backup(source, repository, cloud: cloud, uploadOnly: true) { progress in
            // Past two parts (16 MiB of archive, twice that of COPY text:
            // bytea is hex there) the multipart upload exists.
            guard progress.bytesDone > 40 << 20, attempted.set() else { return }
            var cleanup = Cleanup(repository: repository, targets: [(repository, RetentionPolicy(retentionDays: 30)), (cloud, RetentionPolicy(retentionDays: 30))])
            cleanup.staleWriteHours = 0
            outcome.unfinished = (try? cloud.unfinishedUploads().count) ?? -1
            do {
                _ = try cleanup.run()
                outcome.error = "none"
            } catch {
                outcome.error = "\(error)"
            }
        }
        #expect(attempted.isSet)
        #expect(outcome.unfinished == 1, "the backup's multipart upload was not under way when cleanup ran")
        #expect(outcome.error.contains("already running"), "\(outcome.error)")
        let id = try #require(BackupID(result.backupId))
        #expect(try cloud.archives().map(\.id) == [id])
        #expect(try cloud.recordedMD5(id) == result.md5)
    }

    @Test func staleUploadHoursIsValidated() throws {
        #expect(try ServiceConfiguration.staleUploadHours([:]) == 24)
        #expect(try ServiceConfiguration.staleUploadHours(["ARCA_STALE_UPLOAD_HOURS": "0"]) == 0)
        for bad in ["-1", "1.5", "a day", "99999999999999999999"] {
            let error = #expect(throws: OperationError.self) { try ServiceConfiguration.staleUploadHours(["ARCA_STALE_UPLOAD_HOURS": bad]) }
            #expect("\(error.map { "\($0)" } ?? "")".contains("ARCA_STALE_UPLOAD_HOURS must be a whole number of hours"), "\(bad)")
        }
    }
}

/// What a callback on another thread saw.
final class Outcome: @unchecked Sendable {
    private let lock = NSLock()
    private var _error = ""
    private var _unfinished = 0
    var error: String { get { lock.withLock { _error } } set { lock.withLock { _error = newValue } } }
    var unfinished: Int { get { lock.withLock { _unfinished } } set { lock.withLock { _unfinished = newValue } } }
}

/// Set once, from any thread.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    /// True for the caller that set it.
    func set() -> Bool { lock.withLock { defer { value = true }; return !value } }
}
