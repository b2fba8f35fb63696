import ArcaFormat
import Foundation
import Logging

/// `arca start`: runs the scheduled jobs (backup, cleanup, drill) until
/// cancelled. One scheduler per repository (a lock a crashed process does
/// not keep); a backup missed while the service was down runs once at
/// start-up; cancellation (SIGTERM, SIGINT) stops a running backup cleanly
/// (temp removed, lock released, failure audited) and ends the loop.
public final class BackupService: @unchecked Sendable {
    public let configuration: ServiceConfiguration
    public let cancellation: Cancellation
    public var backupJobs = BackupOptions.defaultJobs
    private let logger: Logger

    public init(configuration: ServiceConfiguration, cancellation: Cancellation, logger: Logger) {
        self.configuration = configuration
        self.cancellation = cancellation
        self.logger = logger
    }

    public func run() throws {
        let repository = configuration.repository
        try repository.prepare()
        guard let lock = try FileLock(path: configuration.schedulerLockPath, mode: .exclusive) else {
            let holder = FileLock.contents(configuration.schedulerLockPath).flatMap { try? JSONDecoder().decode(LockHolder.self, from: Data($0.utf8)) }
            throw OperationError.alreadyRunning(holder.map { LockHolder(pid: $0.pid, operation: "scheduler", since: $0.since) })
        }
        defer { lock.release() }
        if let json = try? JSONEncoder().encode(LockHolder(pid: getpid(), operation: "scheduler", since: Manifest.timestamp(Date()))) {
            lock.write(String(decoding: json, as: UTF8.self))
        }
        let plan = SchedulePlan(configuration: configuration)
        logger.info("scheduler started", metadata: [
            "repository": "\(repository.root)", "backup": "\(configuration.backupSchedule)",
            "cleanup": "\(configuration.cleanupSchedule)", "timeZone": "\(configuration.timeZone.identifier)",
        ])

        let newest = try repository.listings(key: configuration.encryptionKey).newest()?.date
        if plan.backupMissed(lastSuccess: newest, now: Date()) {
            logger.notice("the last backup is older than the schedule allows: running one now")
            runJob(.backup, trigger: "missed")
        }
        while !cancellation.isCancelled {
            guard let next = plan.next(after: Date()) else { break }
            logger.info("next run", metadata: ["at": "\(Manifest.timestamp(next.date))", "jobs": "\(next.jobs.map(\.rawValue))"])
            guard sleep(until: next.date) else { break }
            for job in next.jobs where !cancellation.isCancelled { runJob(job, trigger: "scheduled") }
        }
        logger.info("scheduler stopped")
    }

    /// Sleeps until `date` in short steps; false when cancelled first.
    private func sleep(until date: Date) -> Bool {
        while Date() < date {
            if cancellation.isCancelled { return false }
            Thread.sleep(forTimeInterval: min(1, max(0.01, date.timeIntervalSinceNow)))
        }
        return !cancellation.isCancelled
    }

    /// Runs one job; failures are logged and audited, never fatal to the loop.
    public func runJob(_ job: SchedulePlan.Job, trigger: String) {
        let repository = configuration.repository
        let actor = "scheduler"
        do {
            switch job {
            case .backup:
                guard let database = configuration.database else {
                    throw OperationError.invalidConfiguration("DATABASE_URL is not set: nothing to back up.")
                }
                var options = BackupOptions(source: database, repository: repository)
                options.jobs = backupJobs
                options.cancellation = cancellation
                options.trigger = trigger
                options.encryptionKey = configuration.encryptionKey
                options.cloud = configuration.cloud
                let trail = AuditTrail(repository: repository, action: "backup", actor: actor, mirror: configuration.auditMirror)
                let result = try trail.run(details: ["trigger": trigger], describe: { (result: BackupResult) in
                    (result.backupId, ["bytes": String(result.bytes), "rows": String(result.rows), "tables": String(result.tables)])
                }) { try BackupRunner(options: options).run() }
                logger.info("backup complete", metadata: ["backupId": "\(result.backupId)", "bytes": "\(result.bytes)", "seconds": "\(result.durationSeconds)"])
            case .cleanup:
                let trail = AuditTrail(repository: repository, action: "cleanup", actor: actor, mirror: configuration.auditMirror)
                let result = try trail.run(details: ["trigger": trigger], describe: { (result: CleanupResult) in
                    (nil, ["removed": String(result.removed.count), "freedBytes": String(result.freedBytes)])
                }) {
                    var cleanup = Cleanup(repository: repository, policy: configuration.retention)
                    cleanup.key = configuration.encryptionKey
                    cleanup.cloud = configuration.cloud.map { ($0, configuration.cloudRetention) }
                    cleanup.staleUploadHours = configuration.staleUploadHours
                    return try cleanup.run()
                }
                logger.info("cleanup complete", metadata: ["removed": "\(result.removed.count)", "freedBytes": "\(result.freedBytes)"])
            case .drill:
                let trail = AuditTrail(repository: repository, action: "drill", actor: actor, mirror: configuration.auditMirror)
                let result = try trail.run(details: ["trigger": trigger], describe: { (result: DrillResult) in
                    (result.backupId, ["passed": String(result.passed), "rows": String(result.rows)])
                }) {
                    let result = try Drill(configuration: configuration).run()
                    guard result.passed else { throw DrillFailure(result: result) }
                    return result
                }
                logger.info("drill passed", metadata: ["backupId": "\(result.backupId)"])
            }
        } catch {
            logger.error("\(job.rawValue) failed", metadata: ["error": "\(error)", "trigger": "\(trigger)"])
        }
    }
}

public struct DrillFailure: Error, CustomStringConvertible {
    public var result: DrillResult
    public init(result: DrillResult) { self.result = result }
    public var description: String {
        "The drill of \(result.backupId) failed: \(result.problems.joined(separator: "; "))"
    }
}
