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
        if let drill = operations(.scheduled).drillReadiness() {
            logger.warning("\(drill)")
        }
        logger.info("scheduler started", metadata: [
            "repository": "\(repository.root)", "backup": "\(configuration.backupSchedule)",
            "cleanup": "\(configuration.cleanupSchedule)", "timeZone": "\(configuration.timeZone.identifier)",
        ])

        let stream = configuration.continuous ? startStream() : nil
        defer {
            // The stream ends with the scheduler, whatever ended it.
            if let stream {
                cancellation.cancel()
                stream.wait()
            }
        }
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

    /// `ARCA_CONTINUOUS=1`: the change stream runs beside the schedule on a
    /// thread of its own until cancelled. A failure it cannot retry by
    /// itself (a refused setup, a full disk) is logged and tried again a
    /// minute later: `status` shows the growing lag meanwhile.
    private func startStream() -> StreamThread {
        let thread = StreamThread()
        let operations = operations(.scheduled)
        let logger = logger, cancellation = cancellation
        Thread.detachNewThread {
            defer { thread.finished() }
            while !cancellation.isCancelled {
                do {
                    try operations.stream { event in
                        switch event {
                        case .segment(let id, let transactions, _, let bytes, let last):
                            logger.debug("change segment", metadata: ["segment": "\(id)", "transactions": "\(transactions)", "bytes": "\(bytes)", "restorableTo": "\(last ?? "")"])
                        case .started(let slot, let from): logger.info("change stream started", metadata: ["slot": "\(slot)", "from": "\(from)"])
                        case .retrying(let after, let reason): logger.warning("change stream interrupted", metadata: ["retryIn": "\(after)", "reason": "\(reason)"])
                        case .ignoredMessage(let what): logger.warning("change stream ignored a message", metadata: ["what": "\(what)"])
                        case .backupForced(let reason): logger.notice("full backup forced by the change stream", metadata: ["reason": "\(reason)"])
                        }
                    }
                } catch {
                    logger.error("change stream failed", metadata: ["error": "\(error)"])
                    let resume = Date().addingTimeInterval(60)
                    while Date() < resume, !cancellation.isCancelled { Thread.sleep(forTimeInterval: 0.5) }
                }
            }
        }
        if configuration.notifier != nil { watchLag(operations) }
        return thread
    }

    /// Checks the stream's lag every minute while it runs: one notification
    /// when it passes `ARCA_MAX_LAG_SECONDS`, one when it is back within.
    private func watchLag(_ operations: Operations) {
        let watch = StreamLagWatch(), cancellation = cancellation
        Thread.detachNewThread {
            while !cancellation.isCancelled {
                let next = Date().addingTimeInterval(60)
                while Date() < next, !cancellation.isCancelled { Thread.sleep(forTimeInterval: 0.5) }
                if !cancellation.isCancelled { watch.check(operations) }
            }
        }
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

/// Waits for the stream's thread to end (after cancellation).
final class StreamThread: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    func finished() { done.signal() }
    func wait() { done.wait() }
}
