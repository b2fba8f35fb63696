import ArcaEngine
import ArcaFormat
import Foundation

/// What a backup call may choose beyond the configuration.
public struct BackupRequest: Sendable {
    public var tables = TableFilter()
    /// nil: the configured level (`ARCA_COMPRESSION_LEVEL`).
    public var compressionLevel: Int32?
    /// nil: the configured format (`ARCA_COPY_FORMAT`, default auto).
    public var copyFormat: CopyFormatChoice?
    public var chunkSize: UInt32?
    /// nil: the configured jobs (`ARCA_JOBS`).
    public var jobs: Int?
    /// nil: the configured rate (`ARCA_MAX_RATE`), if any.
    public var maxRate: ByteRate?
    public var splitThresholdBytes: UInt64?
    public var lockTimeoutMilliseconds: Int?
    public var excludeLargeObjects = false
    /// false: a plain archive although a key is configured (`--no-encrypt`).
    public var encrypt = true
    /// Stream to the bucket with no local copy.
    public var uploadOnly = false
    /// Record the roles' password hashes (encrypted archives only).
    public var withRolePasswords = false
    /// true: incremental (`--incremental`); false: full (`--full`); nil:
    /// as the configuration's policy says (`ARCA_FULL_BACKUP_EVERY`,
    /// `Operations.backupIsIncremental`).
    public var incremental: Bool?
    /// Verify the backup once it is published (and its bucket copy, read
    /// back from the bucket): true for `--verify`; nil: as
    /// `ARCA_VERIFY_AFTER_BACKUP` says (the scheduler's and the API's
    /// backups, on by default).
    public var verify: Bool?

    public init() {}
}

extension Operations {
    /// Backs up `DATABASE_URL` into the repository (and the bucket). The
    /// trigger is the requester's, in the manifest and the audit trail alike.
    /// `started` is called with the id once the archive is reserved.
    public func backup(
        _ request: BackupRequest = BackupRequest(), started: (BackupID) -> Void = { _ in },
        progress: @escaping (OperationProgress) -> Void = { _ in }
    ) throws -> BackupResult {
        let result = try trail("backup").run(details: ["trigger": requester.trigger.rawValue], summary: { (result: BackupResult) in
            var details = ["bytes": String(result.bytes), "rows": String(result.rows), "tables": String(result.tables)]
            if let base = result.base { details["base"] = base }
            return AuditSummary(target: result.backupId, details: details)
        }) {
            try BackupRunner(options: try backupOptions(request)).run(started: started, progress: progress)
        }
        guard request.verify ?? configuration.verifyAfterBackup else { return result }
        return verifyAfterBackup(result)
    }

    /// Reads the new backup back and records its integrity (a verify of its
    /// own in the audit trail, so a damaged one is a failure, notified, and
    /// `status` turns unhealthy): the local file from disk, and the bucket
    /// copy from the bucket. The backup itself stands whatever this finds.
    func verifyAfterBackup(_ result: BackupResult) -> BackupResult {
        var result = result
        if !result.path.isEmpty, result.cloud == nil || FileManager.default.fileExists(atPath: result.path) {
            result.verified = (try? verify(VerifyRequest(backup: result.backupId)))?.intact ?? false
        }
        if result.cloud != nil {
            var request = VerifyRequest(backup: result.backupId)
            request.fromCloud = true
            result.cloudVerified = (try? verify(request))?.intact ?? false
        }
        return result
    }

    /// The policy for a backup that does not say: full when
    /// `ARCA_FULL_BACKUP_EVERY` is unset; else incremental unless the newest
    /// full backup of the store it goes to is that many days old or more
    /// (or there is none). One place decides, for the CLI, the API and the
    /// scheduler alike.
    public func backupIsIncremental(uploadOnly: Bool = false, now: Date = Date()) throws -> Bool {
        guard let days = configuration.fullBackupEveryDays else { return false }
        var store: any ArchiveStore = repository
        if uploadOnly, let cloud = configuration.cloud { store = cloud }
        let fulls = try store.listings(key: configuration.encryptionKey, records: repository, now: now)
            .filter { $0.tables != nil && $0.base == nil }
        guard let newest = fulls.newest(now: now), let date = newest.date else { return false }
        return now.timeIntervalSince(date) < Double(days) * 86_400
    }

    func backupOptions(_ request: BackupRequest) throws -> BackupOptions {
        guard let database = configuration.database else {
            throw OperationError.invalidConfiguration("DATABASE_URL is not set: there is no database to back up. Set it (or pass --database-url).")
        }
        if request.uploadOnly, configuration.cloud == nil {
            throw OperationError.invalidConfiguration("--upload-only needs a bucket: set AWS_S3_BUCKET and the AWS_* credentials.")
        }
        var options = BackupOptions(source: database, repository: repository)
        options.tables = request.tables
        options.compressionLevel = request.compressionLevel ?? configuration.compressionLevel
        options.copyFormat = request.copyFormat ?? configuration.copyFormat
        if let chunkSize = request.chunkSize { options.chunkSize = chunkSize }
        options.jobs = request.jobs ?? configuration.backupJobs
        options.maxRate = request.maxRate ?? configuration.backupMaxRate
        if let threshold = request.splitThresholdBytes { options.splitThresholdBytes = threshold }
        if let timeout = request.lockTimeoutMilliseconds { options.lockTimeoutMilliseconds = timeout }
        options.excludeLargeObjects = request.excludeLargeObjects
        options.encryptionKey = request.encrypt ? configuration.encryptionKey : nil
        options.cloud = configuration.cloud
        options.uploadOnly = request.uploadOnly
        options.withRolePasswords = request.withRolePasswords
        options.incremental = try request.incremental ?? backupIsIncremental(uploadOnly: request.uploadOnly)
        options.postgresBinDirectory = configuration.postgresBinDirectory
        options.trigger = requester.trigger
        options.cancellation = cancellation
        options.streamSlot = configuration.streamSlot
        // The stream vouches for tables it saw no change to; the rest are compared.
        options.changeEvidence = StreamEvidence(
            repository: repository, key: configuration.encryptionKey, wait: 2 * Double(configuration.segmentSeconds) + 5)
        return options
    }
}
