import ArcaEngine
import ArcaOperations
import Foundation
import Testing

@Suite struct SchedulePlanTests {
    func date(_ text: String) -> Date { try! Date(text, strategy: .iso8601) }

    @Test func nextJobsAndMissedRuns() throws {
        let plan = SchedulePlan(
            schedules: [.backup: try CronSchedule("0 2 * * *"), .cleanup: try CronSchedule("0 3 * * SUN")],
            timeZone: TimeZone(identifier: "Europe/Berlin")!)
        let saturday = try #require(plan.next(after: date("2025-03-22T12:00:00Z")))
        #expect(saturday.jobs == [.backup])
        #expect(saturday.date == date("2025-03-23T01:00:00Z"))  // 02:00 CET
        let sunday = try #require(plan.next(after: saturday.date))
        #expect(sunday.jobs == [.cleanup])
        #expect(sunday.date == date("2025-03-23T02:00:00Z"))  // 03:00 CET
        // On the night clocks spring forward, 02:00 does not exist: the backup
        // runs at the end of the gap, 03:00 CEST, together with the cleanup.
        let springForward = try #require(plan.next(after: date("2025-03-29T12:00:00Z")))
        #expect(springForward.jobs == [.backup, .cleanup])
        #expect(springForward.date == date("2025-03-30T01:00:00Z"))
        #expect(plan.backupMissed(lastSuccess: nil, now: date("2025-03-29T12:00:00Z")))
        #expect(!plan.backupMissed(lastSuccess: date("2025-03-29T01:00:00Z"), now: date("2025-03-29T12:00:00Z")))
        #expect(plan.backupMissed(lastSuccess: date("2025-03-27T01:00:00Z"), now: date("2025-03-29T12:00:00Z")))
    }

    @Test func invalidSchedulesFailAtStartUp() {
        #expect(throws: OperationError.self) { try ServiceConfiguration(environment: ["ARCA_BACKUP_SCHEDULE": "0 25 * * *"]) }
        #expect(throws: OperationError.self) { try ServiceConfiguration(environment: ["ARCA_TIMEZONE": "Mars/Olympus"]) }
        #expect(throws: OperationError.self) { try ServiceConfiguration(environment: ["ARCA_RETENTION_DAYS": "thirty"]) }
        #expect((try? ServiceConfiguration(environment: ["ARCA_BACKUP_SCHEDULE": "*/15 9-17 * * MON-FRI", "TZ": "America/New_York"])) != nil)
    }
}
