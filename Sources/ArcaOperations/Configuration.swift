import ArcaEngine
import ArcaFormat
import ArcaPostgres
import Foundation

/// Arca's settings, read once from the environment and validated at start-up
/// (a typo in a schedule fails `arca start` now, not at 2 a.m.). The CLI,
/// the API and the scheduler all build their operations from it, so every
/// setting means the same through all three.
public struct ServiceConfiguration: Sendable {
    public var repository: Repository
    public var database: ConnectionString?
    public var backupSchedule: CronSchedule
    public var cleanupSchedule: CronSchedule
    public var drillSchedule: CronSchedule?
    public var timeZone: TimeZone
    public var retention: RetentionPolicy
    /// Where drills restore (default: a scratch database on the source's server).
    public var drillTarget: ConnectionString?
    /// `ARCA_AUDIT_DATABASE_URL`: a database that receives a copy of the audit trail.
    public var auditMirror: ConnectionString?
    /// Encrypts every backup and opens encrypted archives (KeyConfiguration).
    public var encryptionKey: ArchiveKey?
    /// The bucket every backup is also uploaded to (`AWS_S3_BUCKET`, …).
    public var cloud: CloudStore?
    /// Retention of the cloud copies (`ARCA_CLOUD_RETENTION_DAYS`, default the local days).
    public var cloudRetention: RetentionPolicy
    /// Where pg_dump and pg_restore are (`ARCA_PG_BINDIR`; default: found by `PostgresTools`).
    public var postgresBinDirectory: String?
    /// Parallel connections of a backup (`ARCA_JOBS`; default: the cores, at least 2).
    public var backupJobs = BackupOptions.defaultJobs
    /// zstd level of a backup (`ARCA_COMPRESSION_LEVEL`, 1–19; default 1).
    public var compressionLevel = BackupOptions.defaultCompressionLevel
    /// The COPY format of a backup's tables (`ARCA_COPY_FORMAT`: auto, text or binary; default auto).
    public var copyFormat = CopyFormatChoice.auto
    /// `ARCA_STALE_UPLOAD_HOURS`: cleanup aborts unfinished uploads older than this.
    public var staleUploadHours: Int
    /// `ARCA_SLOT`: the change stream's replication slot (default `arca_<database>`).
    public var streamSlot: String?
    /// `ARCA_SEGMENT_SECONDS` (1–3600, default 60): how long a change segment stays open.
    public var segmentSeconds = 60
    /// `ARCA_CONTINUOUS=1`: `arca start` runs the change stream too.
    public var continuous = false
    /// `ARCA_REPLICA_IDENTITY_FULL=1`: the stream may set REPLICA IDENTITY
    /// FULL on tables without a primary key.
    public var replicaIdentityFull = false
    /// `ARCA_MAX_LAG_SECONDS` (default 300): `status` is unhealthy when the
    /// newest restorable instant is older than this.
    public var maxLagSeconds = 300
    /// `ARCA_FULL_BACKUP_EVERY`: a backup that does not say is incremental
    /// unless the newest full one is this many days old; nil (unset): every
    /// backup is full unless asked otherwise.
    public var fullBackupEveryDays: Int?
    /// `ARCA_NOTIFY_*`, `ARCA_SMTP_URL`: where events of failures (and, with
    /// `ARCA_NOTIFY_ON=all`, successes) are sent; nil when nowhere.
    public var notifier: Notifier?
    /// `ARCA_MAX_RATE` (`40MiB`, …): table data a backup reads per second,
    /// all workers together (`--max-rate` overrides it); nil: unlimited.
    public var backupMaxRate: ByteRate?
    /// `ARCA_UPLOAD_MAX_RATE`: bytes sent to the bucket per second, every
    /// upload together (the `cloud` store's limiter); nil: unlimited.
    public var uploadMaxRate: ByteRate?
    /// `ARCA_VERIFY_AFTER_BACKUP` (default 1): the scheduler's and the API's
    /// backups are read back and verified once published.
    public var verifyAfterBackup = true
    /// `DATABASE_URL`'s identity, once read (`Operations.configuredSource`).
    let sourceCache = SourceIdentityCache()

    public static let variables = [
        "DATABASE_URL", "ARCA_REPO", "ARCA_BACKUP_SCHEDULE", "ARCA_CLEANUP_SCHEDULE", "ARCA_DRILL_SCHEDULE",
        "ARCA_TIMEZONE", "TZ", "ARCA_RETENTION_DAYS", "ARCA_DRILL_URL", "ARCA_AUDIT_DATABASE_URL",
        "ARCA_PG_BINDIR", "ARCA_JOBS", "ARCA_COMPRESSION_LEVEL", "ARCA_COPY_FORMAT", "ARCA_FULL_BACKUP_EVERY", "ARCA_MAX_RATE",
    ] + KeyConfiguration.variables + [
        "ARCA_UPLOAD_MAX_RATE",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_S3_BUCKET", "AWS_ENDPOINT_URL",
        "ARCA_S3_PREFIX", "ARCA_S3_ADDRESSING", "ARCA_CLOUD_RETENTION_DAYS", "ARCA_STALE_UPLOAD_HOURS",
        "ARCA_SLOT", "ARCA_SEGMENT_SECONDS", "ARCA_CONTINUOUS", "ARCA_REPLICA_IDENTITY_FULL", "ARCA_MAX_LAG_SECONDS",
        "ARCA_VERIFY_AFTER_BACKUP",
    ] + NotificationSettings.variables

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, repository: String? = nil) throws {
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        self.repository = Repository.resolve(repository, environment: environment)
        database = try value("DATABASE_URL").map { text in
            do { return try ConnectionString(text) } catch {
                throw OperationError.invalidConfiguration("DATABASE_URL is not a valid connection string: \(error)")
            }
        }
        func schedule(_ name: String, _ fallback: CronSchedule) throws -> CronSchedule {
            guard let text = value(name) else { return fallback }
            do { return try CronSchedule(text) } catch {
                throw OperationError.invalidConfiguration("\(name): \(error)")
            }
        }
        backupSchedule = try schedule("ARCA_BACKUP_SCHEDULE", .dailyBackup)
        cleanupSchedule = try schedule("ARCA_CLEANUP_SCHEDULE", .weeklyCleanup)
        // A restore drill a month unless told otherwise (`off`).
        let drill = value("ARCA_DRILL_SCHEDULE") ?? Self.defaultDrillSchedule
        drillSchedule = try drill.lowercased() == "off" ? nil : {
            do { return try CronSchedule(drill) } catch { throw OperationError.invalidConfiguration("ARCA_DRILL_SCHEDULE: \(error)") }
        }()
        let zoneName = value("ARCA_TIMEZONE") ?? value("TZ").map { $0.hasPrefix(":") ? String($0.dropFirst()) : $0 }
        if let zoneName {
            guard let zone = TimeZone(identifier: zoneName) else {
                throw OperationError.invalidConfiguration("Unknown time zone \"\(zoneName)\" (ARCA_TIMEZONE or TZ). Use an IANA name such as Europe/Berlin.")
            }
            timeZone = zone
        } else {
            timeZone = .current
        }
        retention = RetentionPolicy(retentionDays: try Self.retentionDays(environment))
        cloudRetention = RetentionPolicy(retentionDays: try Self.retentionDays(environment, variable: "ARCA_CLOUD_RETENTION_DAYS") ?? retention.retentionDays)
        backupMaxRate = try Self.rate(environment, "ARCA_MAX_RATE")
        uploadMaxRate = try Self.rate(environment, "ARCA_UPLOAD_MAX_RATE")
        cloud = try CloudStore.fromEnvironment(environment, uploadRate: uploadMaxRate)
        staleUploadHours = try Self.staleUploadHours(environment)
        auditMirror = try value("ARCA_AUDIT_DATABASE_URL").map { text in
            do { return try ConnectionString(text) } catch {
                throw OperationError.invalidConfiguration("ARCA_AUDIT_DATABASE_URL is not a valid connection string: \(error)")
            }
        }
        encryptionKey = try KeyConfiguration.resolve(environment: environment)
        drillTarget = try value("ARCA_DRILL_URL").map { text in
            do { return try ConnectionString(text) } catch {
                throw OperationError.invalidConfiguration("ARCA_DRILL_URL is not a valid connection string: \(error)")
            }
        }
        postgresBinDirectory = value("ARCA_PG_BINDIR")
        if let jobs = try Self.integer(environment, "ARCA_JOBS", in: 1...64) { backupJobs = jobs }
        if let level = try Self.integer(environment, "ARCA_COMPRESSION_LEVEL", in: 1...19) { compressionLevel = Int32(level) }
        if let format = value("ARCA_COPY_FORMAT") { copyFormat = try CopyFormatChoice(parsing: format, setting: "ARCA_COPY_FORMAT") }
        if let slot = value("ARCA_SLOT") {
            guard ReplicationNames.isValidSlot(slot) else {
                throw OperationError.invalidConfiguration("ARCA_SLOT must be a replication slot name: lower-case letters, digits and underscores, at most 63.")
            }
            streamSlot = slot
        }
        if let seconds = try Self.integer(environment, "ARCA_SEGMENT_SECONDS", in: 1...3600) { segmentSeconds = seconds }
        if let lag = try Self.integer(environment, "ARCA_MAX_LAG_SECONDS", in: 1...604_800) { maxLagSeconds = lag }
        continuous = try Self.flag(environment, "ARCA_CONTINUOUS")
        replicaIdentityFull = try Self.flag(environment, "ARCA_REPLICA_IDENTITY_FULL")
        if value("ARCA_VERIFY_AFTER_BACKUP") != nil { verifyAfterBackup = try Self.flag(environment, "ARCA_VERIFY_AFTER_BACKUP") }
        fullBackupEveryDays = try Self.integer(environment, "ARCA_FULL_BACKUP_EVERY", in: 1...3650)
        notifier = try NotificationSettings.fromEnvironment(environment).map { Notifier(settings: $0) }
    }

    /// 04:00 on the first of each month: the restore drill a month that
    /// backup practice recommends, on by default.
    public static let defaultDrillSchedule = "0 4 1 * *"

    /// `1`/`true`/`yes` or `0`/`false`/`no` (unset: false).
    static func flag(_ environment: [String: String], _ variable: String) throws -> Bool {
        guard let text = environment[variable]?.lowercased(), !text.isEmpty else { return false }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw OperationError.invalidConfiguration("\(variable) must be 1 or 0, not \"\(text.prefix(20))\".")
        }
    }

    /// Where backups are kept: the repository, and the bucket when one is configured.
    public var stores: [any ArchiveStore] { [repository] + (cloud.map { [$0] } ?? []) }

    /// A whole-number setting within `range`, nil when unset; anything else names the variable.
    public static func integer(_ environment: [String: String], _ variable: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = environment[variable], !text.isEmpty else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw OperationError.invalidConfiguration("\(variable) must be a whole number from \(range.lowerBound) to \(range.upperBound), not \"\(text.prefix(40))\".")
        }
        return value
    }

    /// A rate setting (`ByteRate`: `40MiB`, …), nil when unset; anything else names the variable.
    public static func rate(_ environment: [String: String], _ variable: String) throws -> ByteRate? {
        guard let text = environment[variable], !text.isEmpty else { return nil }
        return try ByteRate(parsing: text, setting: variable)
    }

    /// `ARCA_RETENTION_DAYS`, default 30.
    public static func retentionDays(_ environment: [String: String]) throws -> Int {
        try retentionDays(environment, variable: "ARCA_RETENTION_DAYS") ?? 30
    }

    /// `ARCA_STALE_UPLOAD_HOURS`, default 24: how old an unfinished multipart
    /// upload of an archive must be before cleanup aborts it; 0 aborts every
    /// one (cleanup holds the repository lock, so no backup of its own is running).
    public static func staleUploadHours(_ environment: [String: String]) throws -> Int {
        guard let text = environment["ARCA_STALE_UPLOAD_HOURS"], !text.isEmpty else { return 24 }
        guard let hours = Int(text), hours >= 0 else {
            throw OperationError.invalidConfiguration(
                "ARCA_STALE_UPLOAD_HOURS must be a whole number of hours (0 or more), not \"\(text)\". Cleanup aborts unfinished uploads older than that; unset it for the default, 24.")
        }
        return hours
    }

    static func retentionDays(_ environment: [String: String], variable: String) throws -> Int? {
        guard let text = environment[variable], !text.isEmpty else { return nil }
        guard let days = Int(text), days >= 0 else {
            throw OperationError.invalidConfiguration("\(variable) must be a whole number of days, not \"\(text)\".")
        }
        return days
    }
}
