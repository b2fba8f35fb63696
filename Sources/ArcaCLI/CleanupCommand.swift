import ArcaEngine
import ArgumentParser
import Foundation

struct CleanupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Remove backups older than the retention period, unless a keep rule holds them.",
        discussion: """
            Backups younger than --retention-days (default $ARCA_RETENTION_DAYS, else 30) stay. Older ones stay \\
            when --keep-last/--keep-daily/--keep-weekly/--keep-monthly holds them. The newest verified backup and \\
            any backup a restore is reading always stay. Each archive goes with its sidecar files.
            """)

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var retention: RetentionOptions
    @OptionGroup var key: KeyOption

    @Flag(name: .long, help: "Only show what would be removed.")
    var dryRun = false

    @OptionGroup var output: JSONOption

    func run() throws {
        let result: CleanupResult
        let bucket = try configuredCloud()
        let audit = auditTrail(repository.repository, "cleanup")
        do {
            var cleanup = Cleanup(repository: repository.repository, policy: try retention.policy())
            cleanup.dryRun = dryRun
            cleanup.key = try key.key()
            if let cloud = bucket {
                // Cloud copies follow ARCA_CLOUD_RETENTION_DAYS (default: the local days) and the same keep rules.
                var policy = try retention.policy()
                policy.retentionDays = try retention.retentionDays ?? ServiceConfiguration(environment: ProcessInfo.processInfo.environment).cloudRetention.retentionDays
                cleanup.cloud = (cloud, policy)
                cleanup.staleUploadHours = try ServiceConfiguration.staleUploadHours(ProcessInfo.processInfo.environment)
            }
            result = try cleanup.run()
            try audit.record(outcome: "success", details: [
                "removed": String(result.removed.count), "freedBytes": String(result.freedBytes), "dryRun": String(dryRun),
            ])
        } catch {
            audit.recordFailure(error)
            throw Output.fail(error)
        }
        if output.json {
            Output.json(result)
            return
        }
        let verb = dryRun ? "Would remove" : "Removed"
        print("\(verb) \(result.removed.count) backup(s), \(Format.bytes(result.freedBytes)) \(dryRun ? "would be" : "") freed.")
        for id in result.removed { print("  - \(id)") }
        for id in result.inUse { print("  kept \(id): a restore is reading it") }
        for decision in result.kept { print("  kept \(decision.id): \(decision.reasons.joined(separator: ", "))") }
        if let cloud = result.cloud {
            print("\(verb) \(cloud.removed.count) cloud cop(ies) in \(cloud.location), \(Format.bytes(cloud.freedBytes)) \(dryRun ? "would be" : "") freed (retention \(cloud.policy.retentionDays) days).")
            for id in cloud.removed { print("  - \(id)") }
            let verbAbort = dryRun ? "Would abort" : "Aborted"
            print("\(verbAbort) \(cloud.abortedUploads.count) unfinished upload(s) older than \(cloud.staleUploadHours) h; \(cloud.unfinishedUploads) younger one(s) left.")
            for key in cloud.abortedUploads { print("  - \(key)") }
        }
    }
}

struct RetentionOptions: ParsableArguments {
    @Option(name: .long, help: "Remove backups older than this many days (default $ARCA_RETENTION_DAYS, else 30).")
    var retentionDays: Int?

    @Option(name: .long, help: "Always keep the newest N backups.")
    var keepLast = 0

    @Option(name: .long, help: "Keep the newest backup of each of the last N days.")
    var keepDaily = 0

    @Option(name: .long, help: "Keep the newest backup of each of the last N weeks.")
    var keepWeekly = 0

    @Option(name: .long, help: "Keep the newest backup of each of the last N months.")
    var keepMonthly = 0

    func policy(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> RetentionPolicy {
        let days = try retentionDays ?? ServiceConfiguration.retentionDays(environment)
        guard days >= 0, keepLast >= 0, keepDaily >= 0, keepWeekly >= 0, keepMonthly >= 0 else {
            throw ValidationError("Retention values must not be negative.")
        }
        return RetentionPolicy(retentionDays: days, keepLast: keepLast, keepDaily: keepDaily, keepWeekly: keepWeekly, keepMonthly: keepMonthly)
    }
}
