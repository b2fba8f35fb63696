import ArcaEngine
import ArcaOperations
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
        let operations = try commandLineOperations(repository, settings: ["ARCA_KEY_FILE": key.keyFile])
        var request = try retention.request()
        request.dryRun = dryRun
        let result: CleanupResult
        do {
            result = try operations.cleanup(request)
        } catch {
            throw Output.fail(error)
        }
        if output.json {
            Output.json(result)
            return
        }
        for store in result.stores {
            let verb = dryRun ? "Would remove" : "Removed"
            print("\(verb) \(store.removed.count) backup(s) in \(store.place), \(Format.bytes(store.freedBytes)) \(dryRun ? "would be" : "") freed (retention \(store.policy.retentionDays) days).")
            for id in store.removed { print("  - \(id)") }
            for id in store.inUse { print("  kept \(id): a restore is reading it") }
            for decision in store.kept { print("  kept \(decision.id): \(decision.reasons.joined(separator: ", "))") }
            if let others = store.otherSources { print("  left alone: \(others) backup(s) of other databases (they follow their own service's retention)") }
            if let unfinished = store.unfinishedWrites {
                print("\(dryRun ? "Would abort" : "Aborted") \(unfinished.aborted.count) unfinished upload(s) older than \(unfinished.olderThanHours) h; \(unfinished.remaining) younger one(s) left.")
                for key in unfinished.aborted { print("  - \(key)") }
            }
        }
        for note in result.notes { print("Note: \(note)") }
        if !result.removedSegments.isEmpty {
            print("\(dryRun ? "Would remove" : "Removed") \(result.removedSegments.count) change segment(s) older than the oldest kept backup's place in the stream.")
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

    /// This call's days and keep rules, over the configured retention.
    func request() throws -> CleanupRequest {
        guard (retentionDays ?? 0) >= 0, keepLast >= 0, keepDaily >= 0, keepWeekly >= 0, keepMonthly >= 0 else {
            throw ValidationError("Retention values must not be negative.")
        }
        var request = CleanupRequest()
        request.retentionDays = retentionDays
        request.keepLast = keepLast
        request.keepDaily = keepDaily
        request.keepWeekly = keepWeekly
        request.keepMonthly = keepMonthly
        return request
    }
}
