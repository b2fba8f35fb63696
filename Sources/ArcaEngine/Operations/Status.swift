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
        public var integrity: String
    }

    public struct Event: Codable, Sendable {
        public var time: String
        public var action: String
        public var target: String?
        public var outcome: String
        public var error: String?
    }

    public struct Storage: Codable, Sendable {
        public var location: String
        public var backups: Int
        public var bytes: UInt64
        public var freeBytes: UInt64?
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
}

extension ServiceConfiguration {
    var schedulerLockPath: String { repository.root + "/scheduler.lock" }

    public func status(now: Date = Date()) throws -> ServiceStatus {
        let plan = SchedulePlan(configuration: self)
        let runs = plan.nextRuns(after: now)
        let holder = FileLock.contents(schedulerLockPath).flatMap { try? JSONDecoder().decode(LockHolder.self, from: Data($0.utf8)) }
        let schedulerRunning = FileLock.isHeld(schedulerLockPath)
        let scheduler = ServiceStatus.Scheduler(
            running: schedulerRunning, pid: schedulerRunning ? holder?.pid : nil, timeZone: timeZone.identifier,
            backupSchedule: backupSchedule.expression, cleanupSchedule: cleanupSchedule.expression,
            drillSchedule: drillSchedule?.expression,
            nextBackup: runs[.backup].map(Manifest.timestamp), nextCleanup: runs[.cleanup].map(Manifest.timestamp),
            nextDrill: runs[.drill].map(Manifest.timestamp))

        let listings = try repository.listings(key: encryptionKey)
        let audit = AuditTrail(repository: repository, action: "status").log
        let records = (try? audit.records()) ?? []
        func event(_ record: AuditRecord) -> ServiceStatus.Event {
            .init(time: record.event.time, action: record.event.action, target: record.event.target, outcome: record.event.outcome, error: record.event.error)
        }
        let backups = records.filter { $0.event.action == "backup" }
        let scheduled = backups.last { $0.event.details?["trigger"] == "scheduled" }
        var status = ServiceStatus(
            healthy: true, problems: [], scheduler: scheduler, running: repository.lockHolder,
            lastBackup: nil,
            lastFailure: records.last { $0.event.outcome == "failure" }.map(event),
            lastScheduledBackup: scheduled.map(event),
            lastDrill: records.last { $0.event.action == "drill" }.map(event),
            storage: [ServiceStatus.Storage(
                location: "local", backups: listings.count, bytes: listings.lazy.map(\.bytes).checkedSum ?? .max,
                freeBytes: Self.freeBytes(repository.root))],
            retention: retention)
        if let newest = listings.first {
            let date = BackupID(newest.id)?.date
            let record = backups.last { $0.event.target == newest.id && $0.event.outcome == "success" }
            status.lastBackup = .init(
                id: newest.id, time: newest.timestamp, ageSeconds: date.map { now.timeIntervalSince($0) }, bytes: newest.bytes,
                durationSeconds: record?.event.durationSeconds, integrity: newest.integrity)
        }
        if let scheduled, scheduled.event.outcome != "success" {
            status.problems.append("The last scheduled backup (\(scheduled.event.time)) failed: \(scheduled.event.error ?? "no reason recorded").")
        }
        if let newest = listings.first, let date = BackupID(newest.id)?.date {
            if plan.backupMissed(lastSuccess: date, now: now) {
                status.problems.append("The newest backup, \(newest.id), is older than the backup schedule (\(backupSchedule.expression)) allows.")
            }
        } else {
            status.problems.append("There is no backup in \(repository.root) yet.")
        }
        if listings.first?.integrity == "failed" {
            status.problems.append("The newest backup failed verification.")
        }
        if let cloud {
            do {
                let archives = try cloud.archives()
                status.storage.append(.init(location: cloud.location, backups: archives.count, bytes: archives.lazy.map(\.size).checkedSum ?? .max, freeBytes: nil))
                let uploaded = Set(archives.map(\.id.rawValue))
                let missing = listings.map(\.id).filter { !uploaded.contains($0) }
                status.cloudMissing = missing
                if let newest = listings.first, missing.contains(newest.id) {
                    status.problems.append("The newest backup, \(newest.id), has no copy in \(cloud.location). Run `arca sync` to upload it.")
                }
            } catch {
                status.problems.append("The bucket \(cloud.location) cannot be listed: \(error)")
            }
        }
        status.healthy = status.problems.isEmpty
        return status
    }

    static func freeBytes(_ path: String) -> UInt64? {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        return UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
    }
}
