import ArcaEngine
import ArcaFormat
import ArcaOperations
import Foundation
import Logging

/// `arca start`: runs the scheduled jobs (backup, cleanup, drill) until
/// cancelled, each through `Operations` as requester `scheduler`. One
/// scheduler per repository (a lock a crashed process does not keep); a
/// backup missed while the service was down runs once at start-up;
/// cancellation (SIGTERM, SIGINT) stops a running backup cleanly (temp
/// removed, lock released, failure audited) and ends the loop.
public final class Scheduler: Sendable {
    public let configuration: ServiceConfiguration
    public let cancellation: Cancellation
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

        let newest = try? operations(.missed).newestBackup()?.date
        if plan.backupMissed(lastSuccess: newest ?? nil, now: Date()) {
            logger.notice("the last backup is older than the schedule allows: running one now")
            runJob(.backup, trigger: .missed)
        }
        while !cancellation.isCancelled {
            guard let next = plan.next(after: Date()) else { break }
            logger.info("next run", metadata: ["at": "\(Manifest.timestamp(next.date))", "jobs": "\(next.jobs.map(\.rawValue))"])
            guard sleep(until: next.date) else { break }
            for job in next.jobs where !cancellation.isCancelled { runJob(job, trigger: .scheduled) }
        }
        logger.info("scheduler stopped")
    }

    private func operations(_ trigger: BackupTrigger) -> Operations {
        var operations = Operations(configuration: configuration, requester: .scheduler(trigger))
        operations.cancellation = cancellation
        return operations
    }

    /// Sleeps until `date` in short steps; false when cancelled first.
    private func sleep(until date: Date) -> Bool {
        while Date() < date {
            if cancellation.isCancelled { return false }
            Thread.sleep(forTimeInterval: min(1, max(0.01, date.timeIntervalSinceNow)))
        }
        return !cancellation.isCancelled
    }

    /// Runs one job; failures are logged (the operation audited them), never fatal to the loop.
    public func runJob(_ job: SchedulePlan.Job, trigger: BackupTrigger) {
        let operations = operations(trigger)
        do {
            switch job {
            case .backup:
                let result = try operations.backup()
                logger.info("backup complete", metadata: [
                    "backupId": "\(result.backupId)", "bytes": "\(result.bytes)", "seconds": "\(result.durationSeconds)",
                    "base": "\(result.base ?? "none (full)")",
                ])
            case .cleanup:
                let result = try operations.cleanup()
                logger.info("cleanup complete", metadata: ["removed": "\(result.removedCount)", "freedBytes": "\(result.freedBytes)"])
            case .drill:
                let result = try operations.drill()
                logger.info("drill passed", metadata: ["backupId": "\(result.backupId)"])
            }
        } catch {
            logger.error("\(job.rawValue) failed", metadata: ["error": "\(error)", "trigger": "\(trigger.rawValue)"])
        }
    }
}
