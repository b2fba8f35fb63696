import ArcaEngine
import Foundation
import Testing

@Suite struct CronScheduleTests {
    static func date(_ text: String) -> Date { try! Date(text, strategy: .iso8601) }
    static let utc = TimeZone(identifier: "UTC")!
    static let berlin = TimeZone(identifier: "Europe/Berlin")!
    static let newYork = TimeZone(identifier: "America/New_York")!

    struct Case: Sendable, CustomStringConvertible {
        var expression: String
        var zone: TimeZone
        var after: String
        var expected: [String]   // the next firings, in UTC
        var description: String { "\(expression) in \(zone.identifier) after \(after)" }
    }

    static let cases: [Case] = [
        Case(expression: "0 2 * * *", zone: utc, after: "2024-12-01T14:05:30Z", expected: ["2024-12-02T02:00:00Z", "2024-12-03T02:00:00Z"]),
        // Berlin: CET (+1) until 2025-03-30 01:00Z, CEST (+2) until 2025-10-26 01:00Z.
        Case(expression: "0 2 * * *", zone: berlin, after: "2025-03-28T12:00:00Z",
             expected: ["2025-03-29T01:00:00Z", "2025-03-30T01:00:00Z", "2025-03-31T00:00:00Z"]),
        Case(expression: "30 2 * * *", zone: berlin, after: "2025-03-29T12:00:00Z", expected: ["2025-03-30T01:00:00Z", "2025-03-31T00:30:00Z"]),
        // Fall back: 02:00 happens twice (CEST, then CET); it runs once, the first time.
        Case(expression: "0 2 * * *", zone: berlin, after: "2025-10-25T12:00:00Z", expected: ["2025-10-26T00:00:00Z", "2025-10-27T01:00:00Z"]),
        // New York: EST (-5) until 2025-03-09 07:00Z, EDT (-4) until 2025-11-02 06:00Z.
        Case(expression: "0 2 * * *", zone: newYork, after: "2025-03-08T12:00:00Z", expected: ["2025-03-09T07:00:00Z", "2025-03-10T06:00:00Z"]),
        Case(expression: "30 1 * * *", zone: newYork, after: "2025-11-01T12:00:00Z", expected: ["2025-11-02T05:30:00Z", "2025-11-03T06:30:00Z"]),
        Case(expression: "*/15 9-17 * * MON-FRI", zone: utc, after: "2024-11-29T17:40:00Z",
             expected: ["2024-11-29T17:45:00Z", "2024-12-02T09:00:00Z", "2024-12-02T09:15:00Z"]),
        Case(expression: "0 3 * * SUN", zone: utc, after: "2024-12-01T03:00:00Z", expected: ["2024-12-08T03:00:00Z"]),
        Case(expression: "0 0 * * 7", zone: utc, after: "2024-12-02T00:00:00Z", expected: ["2024-12-08T00:00:00Z"]),
        Case(expression: "0 0 1,15 * *", zone: utc, after: "2024-12-01T00:00:00Z", expected: ["2024-12-15T00:00:00Z", "2025-01-01T00:00:00Z"]),
        Case(expression: "0 12 13 * FRI", zone: utc, after: "2024-12-10T00:00:00Z", expected: ["2024-12-13T12:00:00Z", "2024-12-20T12:00:00Z"]),
        Case(expression: "0 0 29 2 *", zone: utc, after: "2025-01-01T00:00:00Z", expected: ["2028-02-29T00:00:00Z"]),
        Case(expression: "59 23 31 12 *", zone: utc, after: "2024-12-31T23:59:00Z", expected: ["2025-12-31T23:59:00Z"]),
        Case(expression: "@daily", zone: utc, after: "2024-12-31T23:00:00Z", expected: ["2025-01-01T00:00:00Z"]),
        Case(expression: "@hourly", zone: utc, after: "2024-12-31T23:00:00Z", expected: ["2025-01-01T00:00:00Z"]),
        Case(expression: "5/20 * * jan,Dec *", zone: utc, after: "2024-12-31T23:50:00Z", expected: ["2025-01-01T00:05:00Z", "2025-01-01T00:25:00Z"]),
        Case(expression: "10-50/20 4 * * *", zone: utc, after: "2024-12-01T00:00:00Z", expected: ["2024-12-01T04:10:00Z", "2024-12-01T04:30:00Z", "2024-12-01T04:50:00Z"]),
    ]

    @Test(arguments: cases)
    func nextFirings(_ test: Case) throws {
        let schedule = try CronSchedule(test.expression)
        var now = Self.date(test.after)
        for expected in test.expected {
            let next = try #require(schedule.nextDate(after: now, in: test.zone))
            #expect(next == Self.date(expected), "\(test): got \(next)")
            now = next
        }
    }

    @Test(arguments: [
        "", "0 2 * *", "0 2 * * * *", "60 * * * *", "0 24 * * *", "0 0 0 * *", "0 0 32 * *", "0 0 * 13 *", "0 0 * * 8",
        "17-9 * * * *", "*/0 * * * *", "*/-5 * * * *", "1,,2 * * * *", "1, * * * *", "x * * * *", "0 0 * FOO *",
        "0 0 * * FUNDAY", "0 0 30 2 *", "@reboot", "@fortnightly", "1/2/3 * * * *",
    ])
    func invalidExpressions(_ expression: String) {
        #expect(throws: CronError.self) { try CronSchedule(expression) }
    }

    @Test func errorsSayWhatIsWrong() {
        #expect(throws: CronError.self) { try CronSchedule("0 25 * * *") }
        do {
            _ = try CronSchedule("0 25 * * *")
        } catch {
            #expect("\(error)" == #"Invalid cron expression "0 25 * * *": hour 25 is outside 0-23."#)
        }
    }

    @Test func nextIsStrictlyAfterAFiringTime() throws {
        let schedule = try CronSchedule("0 2 * * *")
        #expect(schedule.nextDate(after: Self.date("2024-12-01T02:00:00Z"), in: Self.utc) == Self.date("2024-12-02T02:00:00Z"))
    }

    @Test func periods() throws {
        let start = Self.date("2024-12-01T00:00:00Z")
        #expect(try CronSchedule("0 2 * * *").period(in: Self.utc, from: start) == 86_400)
        #expect(try CronSchedule("*/15 * * * *").period(in: Self.utc, from: start) == 900)
        #expect(try CronSchedule("0 3 * * SUN").period(in: Self.utc, from: start) == 604_800)
    }
}
