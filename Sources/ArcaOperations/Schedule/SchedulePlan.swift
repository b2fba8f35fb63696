import Foundation

/// The service's jobs and when each runs next: pure, so that schedules,
/// missed runs and DST are tested with a clock the test sets, not by
/// sleeping.
public struct SchedulePlan: Sendable {
    public enum Job: String, Sendable, Codable, CaseIterable {
        case backup
        case cleanup
        case drill
    }

    public var schedules: [Job: CronSchedule]
    public var timeZone: TimeZone

    public init(configuration: ServiceConfiguration) {
        var schedules: [Job: CronSchedule] = [.backup: configuration.backupSchedule, .cleanup: configuration.cleanupSchedule]
        schedules[.drill] = configuration.drillSchedule
        self.schedules = schedules
        timeZone = configuration.timeZone
    }

    public init(schedules: [Job: CronSchedule], timeZone: TimeZone) {
        self.schedules = schedules
        self.timeZone = timeZone
    }

    /// When each job runs next, strictly after `now`.
    public func nextRuns(after now: Date) -> [Job: Date] {
        schedules.compactMapValues { $0.nextDate(after: now, in: timeZone) }
    }

    /// The earliest next run, and every job due then.
    public func next(after now: Date) -> (date: Date, jobs: [Job])? {
        let runs = nextRuns(after: now)
        guard let earliest = runs.values.min() else { return nil }
        return (earliest, Job.allCases.filter { runs[$0] == earliest })
    }

    /// A backup missed while the service was down runs once at start-up:
    /// when the last success is older than the schedule's period (plus the
    /// time a backup may take), or there is none.
    public func backupMissed(lastSuccess: Date?, now: Date) -> Bool {
        guard let schedule = schedules[.backup] else { return false }
        guard let lastSuccess else { return true }
        return now.timeIntervalSince(lastSuccess) > schedule.period(in: timeZone, from: now) + Self.grace
    }

    /// How long after its time a scheduled backup may still be running or
    /// finishing before `status` calls it late.
    public static let grace: TimeInterval = 3600
}
