import ArcaEngine
import ArcaOperations
import ArcaPostgres
import ArcaScheduler
import ArcaServer
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle

struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Run the service: the scheduler (backups, cleanup, drills) and, when JWT_SECRET is set, the REST API.",
        discussion: "Schedules: ARCA_BACKUP_SCHEDULE (default daily 02:00), ARCA_CLEANUP_SCHEDULE (Sunday 03:00), ARCA_DRILL_SCHEDULE. Logs go to stderr. SIGTERM or SIGINT stops it; a running backup is cancelled cleanly.")

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var listen: ListenOptions

    @Option(name: .long, help: "Parallel connections of a backup (default $ARCA_JOBS, else the number of cores, at least 2).")
    var jobs: Int?

    func run() throws {
        let configuration = try commandLineOperations(repository, settings: ["ARCA_JOBS": jobs.map(String.init)]).configuration
        guard configuration.database != nil else {
            Output.error("DATABASE_URL is not set. `arca start` backs up that database on schedule.")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        bootstrapLogging()
        let cancellation = Cancellation()
        let logger = Logger(label: "arca")
        let service = Scheduler(configuration: configuration, cancellation: cancellation, logger: logger)
        guard ProcessInfo.processInfo.environment["JWT_SECRET"].map({ !$0.isEmpty }) == true else {
            logger.notice("JWT_SECRET is not set: the REST API is off; running the scheduler only")
            Signals.cancel(cancellation)
            do { try service.run() } catch { throw Output.fail(error) }
            return
        }
        let server = try serverConfiguration(configuration, listen)
        do {
            try runBlocking {
                let app = try await buildApplication(server, services: [SchedulerService(scheduler: service)], logger: logger)
                try await app.runService()
            }
        } catch {
            throw Output.fail(error)
        }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Scheduler, last backup, last failure, storage and retention at a glance.",
        discussion: "Exit status 1 when the last scheduled backup failed or the newest backup is older than the schedule allows.")

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var output: JSONOption
    @OptionGroup var verbosity: VerboseOption

    func run() throws {
        let operations = try commandLineOperations(repository)
        let status: ServiceStatus
        do {
            status = try operations.status()
        } catch {
            throw Output.fail(error, verbose: verbosity)
        }
        if output.json {
            Output.json(status)
        } else {
            let scheduler = status.scheduler
            print("Scheduler   \(scheduler.running ? "running (pid \(scheduler.pid.map(String.init) ?? "?"))" : "not running") — \(scheduler.timeZone)")
            print("  backups   \(scheduler.backupSchedule), next \(scheduler.nextBackup ?? "never")")
            print("  cleanup   \(scheduler.cleanupSchedule), next \(scheduler.nextCleanup ?? "never")")
            if let drill = scheduler.drillSchedule { print("  drills    \(drill), next \(scheduler.nextDrill ?? "never")") }
            if let source = status.source { print("Source      \(source)") }
            if let running = status.running { print("Running     \(running.operation) (pid \(running.pid), since \(running.since))") }
            if let last = status.lastBackup {
                let age = last.ageSeconds.map { Format.seconds($0 / 3600).replacingOccurrences(of: " s", with: " h") } ?? "?"
                print("Last backup \(last.id) (\(last.location.rawValue)), \(age) ago, \(Format.bytes(last.bytes))\(last.durationSeconds.map { ", took \(Format.seconds($0))" } ?? ""), \(last.integrity.rawValue)")
            } else {
                print("Last backup none")
            }
            if let failure = status.lastFailure { print("Last failure \(failure.time) \(failure.action): \(failure.error ?? "")") }
            if let drill = status.lastDrill { print("Last drill  \(drill.time) \(drill.target ?? ""): \(drill.outcome.rawValue)") }
            for storage in status.storage {
                print("Storage     \(storage.place): \(storage.backups) backups, \(Format.bytes(storage.bytes))\(storage.freeBytes.map { ", \(Format.bytes($0)) free" } ?? "")\(storage.otherSources.map { "; \($0) of other databases (list --all-sources)" } ?? "")")
            }
            if let unfinished = status.unfinishedUploads, let hours = status.staleUploadHours {
                print("Unfinished  \(unfinished) upload(s) in the bucket (cleanup aborts those older than \(hours) h)")
            }
            for stream in status.streams ?? [] {
                let state = stream.slotExists == nil ? "database not reachable" : stream.slotExists == true ? (stream.active == true ? "streaming" : "slot idle") : "no slot"
                print("Stream      slot \(stream.slot): \(state), \(stream.segments) segments\(stream.lagSeconds.map { ", \(Format.seconds($0)) behind" } ?? "")\(stream.lagBytes.map { ", \(Format.bytes($0)) of WAL not in a segment" } ?? "")\(stream.retainedWALBytes.map { ", \(Format.bytes($0)) of WAL retained" } ?? "")")
                print("  window    \(stream.oldestRestorable ?? "none") to \(stream.newestRestorable ?? "none")")
            }
            let retention = status.retention
            print("Retention   \(retention.retentionDays) days")
            print(status.healthy ? "Healthy." : "Problems:")
            for problem in status.problems { print("  - \(problem)") }
        }
        if !status.healthy { throw ExitCode(ExitStatus.failure.rawValue) }
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Show the audit trail, or prove it is unbroken with --verify.")

    @OptionGroup var repository: RepositoryOption

    @Option(name: .long, help: "Only events at or after this time (RFC 3339, e.g. 2024-12-01T00:00:00Z).")
    var since: String?

    @Option(name: .long, help: "Only events of this action (backup, restore, verify, cleanup, drill, ...).")
    var action: String?

    @Flag(name: .long, help: "Check the hash chain: any edited, removed or inserted line is found and located.")
    var verify = false

    @OptionGroup var output: JSONOption

    func run() throws {
        let log = AuditTrail(repository: repository.repository, action: "audit").log
        if verify {
            let result: AuditVerification
            do { result = try log.verify() } catch { throw Output.fail(error) }
            if output.json {
                Output.json(result)
            } else if result.intact {
                print("The audit trail is intact: \(result.records) records.")
            } else {
                Output.error("The audit trail is broken at line \(result.line.map(String.init) ?? "?"): \(result.problem ?? "").")
            }
            if !result.intact { throw ExitCode(ExitStatus.integrity.rawValue) }
            return
        }
        var sinceDate: Date?
        if let since {
            guard let date = try? Date(since, strategy: .iso8601) else {
                Output.error("--since \(since) is not an RFC 3339 time such as 2024-12-01T00:00:00Z.")
                throw ExitCode(ExitStatus.usage.rawValue)
            }
            sinceDate = date
        }
        let records: [AuditRecord]
        do { records = try log.records(since: sinceDate, action: action) } catch { throw Output.fail(error) }
        if output.json {
            Output.json(records)
            return
        }
        for record in records {
            let event = record.event
            var line = "\(event.time)  \(event.action)  \(event.outcome.rawValue)  \(event.actor)"
            if let ip = event.clientIP { line += " from \(ip)" }
            if let target = event.target { line += "  \(target)" }
            if let seconds = event.durationSeconds { line += "  \(Format.seconds(seconds))" }
            if let error = event.error { line += "  — \(error)" }
            print(line)
        }
    }
}

struct DrillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Restore a backup (default: the newest) into a scratch database, check it, drop it.",
        discussion: "Uses a scratch database on DATABASE_URL's server, or on ARCA_DRILL_URL's. Exit status 3 when the check fails.")

    @Argument(help: "A backup id or archive path (default: the newest backup).")
    var backup: String?

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var unencrypted: UnencryptedOption
    @OptionGroup var output: JSONOption
    @OptionGroup var verbosity: VerboseOption

    func run() throws {
        let operations = try commandLineOperations(repository)
        let result: DrillResult
        do {
            result = try operations.drill(backup: backup, allowUnencrypted: unencrypted.allowUnencrypted)
        } catch let failure as DrillFailure {
            if output.json { Output.json(failure.result) }
            throw Output.fail(failure, verbose: verbosity)
        } catch {
            throw Output.fail(error, verbose: verbosity)
        }
        if output.json {
            Output.json(result)
        } else {
            print("Drill of \(result.backupId) passed: \(result.tables) tables, \(Format.count(result.rows)) rows restored and checked in \(Format.seconds(result.durationSeconds)); scratch database \(result.database) dropped.")
        }
    }
}

/// The scheduler as a service of the HTTP application (`arca start` with
/// the API): it runs on its own thread and is cancelled on graceful
/// shutdown (a running backup stops cleanly).
struct SchedulerService: Service {
    let scheduler: Scheduler

    func run() async throws {
        let scheduler = self.scheduler
        try await withGracefulShutdownHandler {
            try await onThread { try scheduler.run() }
        } onGracefulShutdown: {
            scheduler.cancellation.cancel()
        }
    }
}
