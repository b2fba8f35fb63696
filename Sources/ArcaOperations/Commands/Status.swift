import ArcaEngine
import ArcaFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a person (or a monitor) needs at a glance. `healthy` is false when
/// the last scheduled backup failed or the newest backup is older than the
/// schedule allows; `arca status` then exits non-zero.
public struct ServiceStatus: Codable, Sendable {
    public struct Scheduler: Codable, Sendable {
        public var running: Bool
        public var pid: Int32?
        public var timeZone: String
        public var backupSchedule: String
        public var cleanupSchedule: String
        public var drillSchedule: String?
        public var nextBackup: String?
        public var nextCleanup: String?
        public var nextDrill: String?
    }

    public struct LastBackup: Codable, Sendable {
        public var id: String
        public var time: String?
        public var ageSeconds: Double?
        public var bytes: UInt64
        public var durationSeconds: Double?
        public var integrity: Integrity
        public var location: StorageLocation
    }

    public struct Event: Codable, Sendable {
        public var time: String
        public var action: String
        public var target: String?
        public var outcome: AuditOutcome
        public var error: String?
    }

    public struct Storage: Codable, Sendable {
        public var location: StorageLocation
        public var place: String
        /// The configured database's backups there, and their bytes.
        public var backups: Int
        public var bytes: UInt64
        public var freeBytes: UInt64?
        /// Backups there of other databases (services sharing the store), left out of the rest.
        public var otherSources: Int?
    }

    public var healthy: Bool
    public var problems: [String]
    public var scheduler: Scheduler
    public var running: LockHolder?
    public var lastBackup: LastBackup?
    public var lastFailure: Event?
    public var lastScheduledBackup: Event?
    public var lastDrill: Event?
    public var storage: [Storage]
    public var retention: RetentionPolicy
    /// Local backups without a copy in the bucket (when one is configured).
    public var cloudMissing: [String]?
    /// Unfinished multipart uploads of archives in the bucket: interrupted
    /// uploads (or one running now) that S3 bills until they are aborted.
    public var unfinishedUploads: Int?
    /// Cleanup aborts unfinished uploads older than this.
    public var staleUploadHours: Int?
    /// The change streams (point-in-time restore), when there are any.
    public var streams: [StreamStatus]?
    /// The database whose backups this is about (`DATABASE_URL`'s); nil
    /// when none is configured: then every backup counts.
    public var source: SourceIdentity?
}

extension ServiceConfiguration {
    /// The scheduler's lock: one scheduler per repository.
    public var schedulerLockPath: String { repository.root + "/scheduler.lock" }
}

extension Operations {
    /// The scheduler, the newest backup and the health of every store: a
    /// host that keeps its backups only in the bucket is healthy when its
    /// bucket is.
    public func status(now: Date = Date()) throws -> ServiceStatus {
        let plan = SchedulePlan(configuration: configuration)
        let runs = plan.nextRuns(after: now)
        let lockPath = configuration.schedulerLockPath
        let holder = FileLock.contents(lockPath).flatMap { try? JSONDecoder().decode(LockHolder.self, from: Data($0.utf8)) }
        let schedulerRunning = FileLock.isHeld(lockPath)
        let scheduler = ServiceStatus.Scheduler(
            running: schedulerRunning, pid: schedulerRunning ? holder?.pid : nil, timeZone: configuration.timeZone.identifier,
            backupSchedule: configuration.backupSchedule.expression, cleanupSchedule: configuration.cleanupSchedule.expression,
            drillSchedule: configuration.drillSchedule?.expression,
            nextBackup: runs[.backup].map(Manifest.timestamp), nextCleanup: runs[.cleanup].map(Manifest.timestamp),
            nextDrill: runs[.drill].map(Manifest.timestamp))

        let log = trail("status").log
        // How operations ended: a start record says nothing of that.
        let records = ((try? log.records()) ?? []).filter { $0.event.outcome != .started }
        func event(_ record: AuditRecord) -> ServiceStatus.Event {
            .init(time: record.event.time, action: record.event.action, target: record.event.target, outcome: record.event.outcome, error: record.event.error)
        }
        let backups = records.filter { $0.event.action == "backup" }
        let scheduled = backups.last { $0.event.details?["trigger"] == BackupTrigger.scheduled.rawValue }
        var status = ServiceStatus(
            healthy: true, problems: [], scheduler: scheduler, running: repository.lockHolder,
            lastBackup: nil,
            lastFailure: records.last { $0.event.outcome == .failure }.map(event),
            lastScheduledBackup: scheduled.map(event),
            lastDrill: records.last { $0.event.action == "drill" }.map(event),
            storage: [],
            retention: configuration.retention)

        // Every store; one that cannot be listed is a problem, not a failure
        // of status. Only the configured database's backups count.
        var listed: [(store: any ArchiveStore, listings: [BackupListing])] = []
        for store in configuration.stores {
            do {
                listed.append((store, try store.listings(key: configuration.encryptionKey, records: repository, now: now)))
                if let unfinished = try store.unfinishedWrites(olderThanHours: configuration.staleUploadHours, now: now, aborting: false) {
                    status.unfinishedUploads = (status.unfinishedUploads ?? 0) + unfinished.aborted.count + unfinished.remaining
                    status.staleUploadHours = configuration.staleUploadHours
                }
            } catch {
                status.problems.append("The backups in \(store.place) cannot be listed: \(error)")
            }
        }
        let scope = sourceScope(now: now, localListings: listed.first { $0.store.location == .local }?.listings)
        status.source = scope.identity
        var listings: [BackupListing] = []
        for (store, every) in listed {
            let found = every.filter(scope.includes)
            listings += found
            status.storage.append(.init(
                location: store.location, place: store.place, backups: found.count, bytes: found.lazy.map(\.bytes).checkedSum ?? .max,
                freeBytes: store.location == .local ? Self.freeBytes(repository.root) : nil,
                otherSources: every.count == found.count ? nil : every.count - found.count))
        }
        let newest = listings.newest(now: now)
        if let newest {
            let record = backups.last { $0.event.target == newest.id && $0.event.outcome == .success }
            status.lastBackup = .init(
                id: newest.id, time: newest.timestamp, ageSeconds: newest.date.map { now.timeIntervalSince($0) }, bytes: newest.bytes,
                durationSeconds: record?.event.durationSeconds, integrity: newest.integrity, location: newest.location)
        }
        do {
            try log.checkAppendable()
        } catch {
            status.problems.append("\(error)")
        }
        if let scheduled, scheduled.event.outcome != .success {
            status.problems.append("The last scheduled backup (\(scheduled.event.time)) failed: \(scheduled.event.error ?? "no reason recorded").")
        }
        if let newest, let date = newest.date {
            if plan.backupMissed(lastSuccess: date, now: now) {
                status.problems.append("The newest backup, \(newest.id), is older than the backup schedule (\(configuration.backupSchedule.expression)) allows.")
            }
        } else {
            status.problems.append("There is no backup in \(configuration.stores.map(\.place).joined(separator: " or ")) yet.")
        }
        if newest?.integrity == .failed {
            status.problems.append("The newest backup failed verification.")
        }
        for listing in listings {
            for warning in listing.warnings ?? [] { status.problems.append("Backup \(listing.id) (\(listing.location.rawValue)) is \(warning).") }
        }
        if let cloud = configuration.cloud {
            // Local backups the bucket lacks: what `arca sync` would upload.
            let uploaded = Set(listings.filter { $0.location == .cloud }.map(\.id))
            let missing = listings.filter { $0.location == .local && !uploaded.contains($0.id) }.map(\.id)
            status.cloudMissing = missing
            if let newest, missing.contains(newest.id) {
                status.problems.append("The newest backup, \(newest.id), has no copy in \(cloud.place). Run `arca sync` to upload it.")
            }
        }
        if let drill = drillReadiness() { status.problems.append(drill) }
        let streams = streamStatuses(now: now)
        if !streams.streams.isEmpty { status.streams = streams.streams }
        status.problems += streams.problems
        status.healthy = status.problems.isEmpty
        return status
    }

    static func freeBytes(_ path: String) -> UInt64? {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        return UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
    }
}
