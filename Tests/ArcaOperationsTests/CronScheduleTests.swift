import Foundation
import Testing
@testable import ArcaOperations

/// Parses an ISO 8601 timestamp with an explicit offset, e.g. "2025-03-30T03:00:00+02:00".
private func instant(_ text: String) -> Date {
    try! Date(text, strategy: .iso8601)
}

private func zone(_ identifier: String) -> TimeZone {
    TimeZone(identifier: identifier)!
}

// MARK: - Next firings

/// Starting just after `after`, the schedule fires at `firings`, in order and with nothing in between.
struct FiringCase: Sendable, CustomTestStringConvertible {
    let expression: String
    let zone: String
    let after: String
    let firings: [String]

    init(_ expression: String, _ zone: String, after: String, _ firings: [String]) {
        self.expression = expression
        self.zone = zone
        self.after = after
        self.firings = firings
    }

    var testDescription: String { "\"\(expression)\" in \(zone) after \(after)" }
}

let utcFirings: [FiringCase] = [
    FiringCase("0 2 * * *", "UTC", after: "2025-01-01T00:00:00Z", ["2025-01-01T02:00:00Z", "2025-01-02T02:00:00Z"]),
    FiringCase("*/15 9-17 * * MON-FRI", "UTC", after: "2025-01-03T17:40:00Z", // Friday evening → Monday
               ["2025-01-03T17:45:00Z", "2025-01-06T09:00:00Z", "2025-01-06T09:15:00Z"]),
    FiringCase("*/15 9-17 * * MON-FRI", "UTC", after: "2025-01-06T08:59:59Z", ["2025-01-06T09:00:00Z", "2025-01-06T09:15:00Z"]),
    FiringCase("0 3 * * SUN", "UTC", after: "2025-01-01T00:00:00Z", ["2025-01-05T03:00:00Z", "2025-01-12T03:00:00Z"]),
    FiringCase("0 0 1,15 * *", "UTC", after: "2025-01-20T00:00:00Z",
               ["2025-02-01T00:00:00Z", "2025-02-15T00:00:00Z", "2025-03-01T00:00:00Z"]),
    FiringCase("0 0 * * 7", "UTC", after: "2025-01-01T00:00:00Z", ["2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"]),
    FiringCase("0 0 * * 0", "UTC", after: "2025-01-01T00:00:00Z", ["2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"]),
    // Both day fields restricted: the 13th OR any Friday. 2025-07-13 is a Sunday.
    FiringCase("0 12 13 * FRI", "UTC", after: "2025-07-05T00:00:00Z",
               ["2025-07-11T12:00:00Z", "2025-07-13T12:00:00Z", "2025-07-18T12:00:00Z"]),
    // 2025-06-13 is a Friday: fires once that day.
    FiringCase("0 12 13 * FRI", "UTC", after: "2025-06-01T00:00:00Z",
               ["2025-06-06T12:00:00Z", "2025-06-13T12:00:00Z", "2025-06-20T12:00:00Z"]),
    // Vixie cron: a day field starting with `*` is unrestricted, so both must match: odd-numbered Mondays.
    FiringCase("0 0 */2 * MON", "UTC", after: "2025-01-01T00:00:00Z",
               ["2025-01-13T00:00:00Z", "2025-01-27T00:00:00Z", "2025-02-03T00:00:00Z"]),
    // Either-or with an impossible day of month still fires on the weekday.
    FiringCase("0 0 29 2 MON", "UTC", after: "2028-02-25T00:00:00Z",
               ["2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z", "2029-02-05T00:00:00Z"]),
    // Leap years, including 2100, which is not one.
    FiringCase("0 0 29 2 *", "UTC", after: "2025-01-01T00:00:00Z", ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
    FiringCase("0 0 29 2 *", "UTC", after: "2096-03-01T00:00:00Z", ["2104-02-29T00:00:00Z"]),
    FiringCase("0 0 28-31 2 *", "UTC", after: "2027-12-01T00:00:00Z",
               ["2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"]),
    // February 29th on a Sunday: 28 and then 40 years apart; found without minute-by-minute search.
    FiringCase("0 0 29 2 */7", "UTC", after: "2025-01-01T00:00:00Z", ["2032-02-29T00:00:00Z", "2060-02-29T00:00:00Z"]),
    FiringCase("0 0 29 2 */7", "UTC", after: "2089-01-01T00:00:00Z", ["2128-02-29T00:00:00Z"]),
    // Month ends.
    FiringCase("0 0 31 * *", "UTC", after: "2025-01-31T00:00:00Z",
               ["2025-03-31T00:00:00Z", "2025-05-31T00:00:00Z", "2025-07-31T00:00:00Z", "2025-08-31T00:00:00Z"]),
    FiringCase("0 0 30 * *", "UTC", after: "2025-01-30T00:00:00Z", ["2025-03-30T00:00:00Z", "2025-04-30T00:00:00Z"]),
    // Year boundary.
    FiringCase("@daily", "UTC", after: "2025-12-31T23:59:59Z", ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]),
    FiringCase("59 23 31 12 *", "UTC", after: "2025-12-31T23:59:00Z", ["2026-12-31T23:59:00Z"]),
    FiringCase("@hourly", "UTC", after: "2025-12-31T23:30:00Z", ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"]),
    // Macros.
    FiringCase("@midnight", "UTC", after: "2025-03-01T12:00:00Z", ["2025-03-02T00:00:00Z"]),
    FiringCase("@weekly", "UTC", after: "2025-01-01T00:00:00Z", ["2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"]),
    FiringCase("@monthly", "UTC", after: "2025-12-15T00:00:00Z", ["2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"]),
    FiringCase("@yearly", "UTC", after: "2025-06-15T00:00:00Z", ["2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
    FiringCase("@annually", "UTC", after: "2025-06-15T00:00:00Z", ["2026-01-01T00:00:00Z"]),
    // Steps, names and weekday ranges.
    FiringCase("5/10 * * * *", "UTC", after: "2025-01-01T00:50:00Z", ["2025-01-01T00:55:00Z", "2025-01-01T01:05:00Z"]),
    FiringCase("10-50/20 * * * *", "UTC", after: "2025-01-01T00:00:00Z",
               ["2025-01-01T00:10:00Z", "2025-01-01T00:30:00Z", "2025-01-01T00:50:00Z", "2025-01-01T01:10:00Z"]),
    FiringCase("0 9 * jan,JUL mon", "UTC", after: "2025-01-31T10:00:00Z", ["2025-07-07T09:00:00Z", "2025-07-14T09:00:00Z"]),
    FiringCase("0 10 * * SAT-SUN", "UTC", after: "2025-01-03T00:00:00Z",
               ["2025-01-04T10:00:00Z", "2025-01-05T10:00:00Z", "2025-01-11T10:00:00Z"]),
    FiringCase("0 10 * * 5-7", "UTC", after: "2025-01-01T00:00:00Z",
               ["2025-01-03T10:00:00Z", "2025-01-04T10:00:00Z", "2025-01-05T10:00:00Z", "2025-01-10T10:00:00Z"]),
    FiringCase("* * * * *", "UTC", after: "2025-01-01T23:59:30Z", ["2025-01-02T00:00:00Z", "2025-01-02T00:01:00Z"]),
    // A time zone without DST, with a half-hour offset.
    FiringCase("0 2 * * *", "Asia/Kolkata", after: "2025-01-01T00:00:00+05:30",
               ["2025-01-01T02:00:00+05:30", "2025-01-02T02:00:00+05:30"]),
]

let berlinFirings: [FiringCase] = [
    // Spring forward on 2025-03-30: 02:00 CET jumps to 03:00 CEST, so 02:xx does not exist.
    FiringCase("0 2 * * *", "Europe/Berlin", after: "2025-03-28T12:00:00+01:00",
               ["2025-03-29T02:00:00+01:00", "2025-03-30T03:00:00+02:00", "2025-03-31T02:00:00+02:00"]),
    FiringCase("30 2 * * *", "Europe/Berlin", after: "2025-03-29T12:00:00+01:00",
               ["2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"]),
    // 02:00 moves to 03:00, where the 03:00 run also is: one run.
    FiringCase("0 2,3 * * *", "Europe/Berlin", after: "2025-03-30T00:00:00+01:00",
               ["2025-03-30T03:00:00+02:00", "2025-03-31T02:00:00+02:00"]),
    FiringCase("*/15 * * * *", "Europe/Berlin", after: "2025-03-30T01:40:00+01:00",
               ["2025-03-30T01:45:00+01:00", "2025-03-30T03:00:00+02:00", "2025-03-30T03:15:00+02:00"]),
    FiringCase("0 3 * * SUN", "Europe/Berlin", after: "2025-03-29T00:00:00+01:00",
               ["2025-03-30T03:00:00+02:00", "2025-04-06T03:00:00+02:00"]),
    // Fall back on 2025-10-26: 03:00 CEST goes back to 02:00 CET, so 02:xx happens twice.
    FiringCase("0 2 * * *", "Europe/Berlin", after: "2025-10-25T12:00:00+02:00",
               ["2025-10-26T02:00:00+02:00", "2025-10-27T02:00:00+01:00"]),
    FiringCase("30 2 * * *", "Europe/Berlin", after: "2025-10-25T12:00:00+02:00",
               ["2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"]),
    FiringCase("*/30 * * * *", "Europe/Berlin", after: "2025-10-26T02:15:00+02:00",
               ["2025-10-26T02:30:00+02:00", "2025-10-26T03:00:00+01:00"]),
    // Starting inside the repeated hour: its times already ran in the first pass.
    FiringCase("*/30 * * * *", "Europe/Berlin", after: "2025-10-26T02:10:00+01:00", ["2025-10-26T03:00:00+01:00"]),
    FiringCase("0 3 * * SUN", "Europe/Berlin", after: "2025-10-25T00:00:00+02:00",
               ["2025-10-26T03:00:00+01:00", "2025-11-02T03:00:00+01:00"]),
]

let newYorkFirings: [FiringCase] = [
    // Spring forward on 2025-03-09: 02:00 EST jumps to 03:00 EDT.
    FiringCase("0 2 * * *", "America/New_York", after: "2025-03-08T12:00:00-05:00",
               ["2025-03-09T03:00:00-04:00", "2025-03-10T02:00:00-04:00"]),
    FiringCase("30 2 * * *", "America/New_York", after: "2025-03-08T12:00:00-05:00",
               ["2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00"]),
    // Fall back on 2025-11-02: 02:00 EDT goes back to 01:00 EST, so 01:xx happens twice and 02:00 once.
    FiringCase("0 2 * * *", "America/New_York", after: "2025-11-01T12:00:00-04:00",
               ["2025-11-02T02:00:00-05:00", "2025-11-03T02:00:00-05:00"]),
    FiringCase("30 1 * * *", "America/New_York", after: "2025-11-01T12:00:00-04:00",
               ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]),
    FiringCase("30 1 * * *", "America/New_York", after: "2025-11-02T01:10:00-05:00", ["2025-11-03T01:30:00-05:00"]),
    // The repeated hour does not fire again, so this gap is two hours long.
    FiringCase("0 * * * *", "America/New_York", after: "2025-11-02T00:30:00-04:00",
               ["2025-11-02T01:00:00-04:00", "2025-11-02T02:00:00-05:00", "2025-11-02T03:00:00-05:00"]),
    FiringCase("@daily", "America/New_York", after: "2025-12-31T12:00:00-05:00",
               ["2026-01-01T00:00:00-05:00", "2026-01-02T00:00:00-05:00"]),
]

let southernHemisphereFirings: [FiringCase] = [
    // Sydney springs forward on 2025-10-05 (02:00 AEST → 03:00 AEDT) and falls back on 2025-04-06.
    FiringCase("30 2 * * *", "Australia/Sydney", after: "2025-10-04T12:00:00+10:00",
               ["2025-10-05T03:00:00+11:00", "2025-10-06T02:30:00+11:00"]),
    FiringCase("30 2 * * *", "Australia/Sydney", after: "2025-04-05T12:00:00+11:00",
               ["2025-04-06T02:30:00+11:00", "2025-04-07T02:30:00+10:00"]),
]

@Test(arguments: utcFirings + berlinFirings + newYorkFirings + southernHemisphereFirings)
func firesAtExpectedTimes(_ testCase: FiringCase) throws {
    let schedule = try CronSchedule(testCase.expression)
    var previous = instant(testCase.after)
    for expected in testCase.firings {
        let next = schedule.nextDate(after: previous, in: zone(testCase.zone))
        #expect(next == instant(expected), "after \(previous)")
        previous = instant(expected)
    }
}

/// Each case is a firing time and the firing after it.
let firingTimesAndTheirSuccessors: [(expression: String, zone: String, firing: String, following: String)] = [
    ("0 2 * * *", "UTC", "2025-01-01T02:00:00Z", "2025-01-02T02:00:00Z"),
    ("* * * * *", "UTC", "2025-01-01T02:00:00Z", "2025-01-01T02:01:00Z"),
    ("0 0 29 2 *", "UTC", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"),
    ("30 2 * * *", "Europe/Berlin", "2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"),
    ("0 2,3 * * *", "Europe/Berlin", "2025-03-30T03:00:00+02:00", "2025-03-31T02:00:00+02:00"),
    ("30 1 * * *", "America/New_York", "2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"),
]

@Test(arguments: firingTimesAndTheirSuccessors)
func nextDateIsStrictlyAfterAFiringTime(expression: String, zoneName: String, firing: String, following: String) throws {
    let schedule = try CronSchedule(expression)
    #expect(schedule.nextDate(after: instant(firing), in: zone(zoneName)) == instant(following))
}

@Test func fractionalSecondsAroundAFiringTime() {
    let firing = instant("2025-01-01T02:00:00Z")
    let utc = zone("UTC")
    #expect(CronSchedule.dailyBackup.nextDate(after: firing.addingTimeInterval(-0.001), in: utc) == firing)
    #expect(CronSchedule.dailyBackup.nextDate(after: firing.addingTimeInterval(0.001), in: utc)
        == instant("2025-01-02T02:00:00Z"))
}

@Test(arguments: ["*/15 9-17 * * MON-FRI", "0 2 * * *", "*/7 * * * *", "0 12 13 * FRI", "0 * * * *"],
      ["UTC", "Europe/Berlin", "America/New_York"])
func successiveFiringsAlwaysMoveForward(expression: String, zoneName: String) throws {
    // Walks through a whole year (including both DST transitions) in large strides.
    let schedule = try CronSchedule(expression)
    var date = instant("2025-01-01T00:00:00Z")
    for _ in 0..<500 {
        let next = try #require(schedule.nextDate(after: date, in: zone(zoneName)))
        #expect(next > date)
        #expect(schedule.nextDate(after: next, in: zone(zoneName))! > next)
        date = next.addingTimeInterval(17 * 3_600 + 7) // skip ahead irregularly
    }
}

/// How often the schedule fires during one local calendar day.
let firingsOnDSTDays: [(expression: String, zone: String, dayStart: String, dayEnd: String, count: Int)] = [
    ("*/15 * * * *", "America/New_York", "2025-11-02T00:00:00-04:00", "2025-11-03T00:00:00-05:00", 96), // 25 h, repeated hour once
    ("*/15 * * * *", "America/New_York", "2025-03-09T00:00:00-05:00", "2025-03-10T00:00:00-04:00", 92), // 23 h: 02:xx → one run at 03:00
    ("0 * * * *", "Europe/Berlin", "2025-10-26T00:00:00+02:00", "2025-10-27T00:00:00+01:00", 24),
    ("0 * * * *", "Europe/Berlin", "2025-03-30T00:00:00+01:00", "2025-03-31T00:00:00+02:00", 23),
    ("30 2 * * *", "Europe/Berlin", "2025-03-30T00:00:00+01:00", "2025-03-31T00:00:00+02:00", 1),
    ("30 2 * * *", "Europe/Berlin", "2025-10-26T00:00:00+02:00", "2025-10-27T00:00:00+01:00", 1),
    ("30 1 * * *", "America/New_York", "2025-11-02T00:00:00-04:00", "2025-11-03T00:00:00-05:00", 1),
    ("0 2 * * *", "America/New_York", "2025-03-09T00:00:00-05:00", "2025-03-10T00:00:00-04:00", 1),
]

@Test(arguments: firingsOnDSTDays)
func firingsPerLocalDay(expression: String, zoneName: String, dayStart: String, dayEnd: String, count: Int) throws {
    let schedule = try CronSchedule(expression)
    var firings: [Date] = []
    // Start just before midnight so that a firing at exactly midnight counts.
    var date = instant(dayStart).addingTimeInterval(-1)
    while let next = schedule.nextDate(after: date, in: zone(zoneName)), next < instant(dayEnd) {
        firings.append(next)
        date = next
    }
    #expect(firings.count == count)
}

// MARK: - Parsing

struct ParseCase: Sendable, CustomTestStringConvertible {
    let expression: String
    var minutes: [Int] = [0]
    var hours: [Int] = [0]
    var daysOfMonth: Set<Int> = Set(1...31)
    var months: Set<Int> = Set(1...12)
    var daysOfWeek: Set<Int> = Set(0...6)
    var daysMatchEither = false

    var testDescription: String { "\"\(expression)\"" }
}

let parseCases: [ParseCase] = [
    ParseCase(expression: "*/15 9-17 * * MON-FRI", minutes: [0, 15, 30, 45], hours: Array(9...17), daysOfWeek: [1, 2, 3, 4, 5]),
    ParseCase(expression: "5/10 * * * *", minutes: [5, 15, 25, 35, 45, 55], hours: Array(0...23)),
    ParseCase(expression: "10-50/5 0 * * *", minutes: Array(stride(from: 10, through: 50, by: 5))),
    ParseCase(expression: "1,2,5 0 * * *", minutes: [1, 2, 5]),
    ParseCase(expression: "00 07 * * *", hours: [7]),
    ParseCase(expression: "0 0 1,15 * *", daysOfMonth: [1, 15]),
    ParseCase(expression: "0 0 * * 7", daysOfWeek: [0]),
    ParseCase(expression: "0 0 * * 0-7"),
    ParseCase(expression: "0 0 * * sat-SUN", daysOfWeek: [6, 0]),
    ParseCase(expression: "0 0 * jan-MAR,Dec *", months: [1, 2, 3, 12]),
    ParseCase(expression: "0 0 * */3 *", months: [1, 4, 7, 10]),
    ParseCase(expression: "0 12 13 * FRI", hours: [12], daysOfMonth: [13], daysOfWeek: [5], daysMatchEither: true),
    ParseCase(expression: "0 0 1-31 * MON", daysOfWeek: [1], daysMatchEither: true),
    ParseCase(expression: "0 0 */2 * MON", daysOfMonth: Set(stride(from: 1, through: 31, by: 2)), daysOfWeek: [1]),
    ParseCase(expression: "@weekly", daysOfWeek: [0]),
    ParseCase(expression: "@yearly", daysOfMonth: [1], months: [1]),
    ParseCase(expression: "@HOURLY", hours: Array(0...23)),
    ParseCase(expression: " 0\t0  *  * *\n"),
]

@Test(arguments: parseCases)
func parsesFields(_ testCase: ParseCase) throws {
    let schedule = try CronSchedule(testCase.expression)
    #expect(schedule.minutes == testCase.minutes)
    #expect(schedule.hours == testCase.hours)
    #expect(schedule.daysOfMonth == testCase.daysOfMonth)
    #expect(schedule.months == testCase.months)
    #expect(schedule.daysOfWeek == testCase.daysOfWeek)
    #expect(schedule.daysMatchEither == testCase.daysMatchEither)
}

let invalidExpressions: [(expression: String, error: CronError)] = [
    ("", .wrongFieldCount(expression: "", count: 0)),
    ("0 2 * *", .wrongFieldCount(expression: "0 2 * *", count: 4)),
    ("0 2 * * * *", .wrongFieldCount(expression: "0 2 * * * *", count: 6)),
    ("@reboot", .unsupportedMacro(expression: "@reboot", macro: "@reboot")),
    ("@fortnightly", .unsupportedMacro(expression: "@fortnightly", macro: "@fortnightly")),
    ("1,,2 * * * *", .emptyListItem(expression: "1,,2 * * * *", field: .minute, text: "1,,2")),
    ("0 1,2, * * *", .emptyListItem(expression: "0 1,2, * * *", field: .hour, text: "1,2,")),
    ("0 2 ,1 * *", .emptyListItem(expression: "0 2 ,1 * *", field: .dayOfMonth, text: ",1")),
    ("60 * * * *", .valueOutOfRange(expression: "60 * * * *", field: .minute, text: "60")),
    ("0-60 * * * *", .valueOutOfRange(expression: "0-60 * * * *", field: .minute, text: "60")),
    ("0 25 * * *", .valueOutOfRange(expression: "0 25 * * *", field: .hour, text: "25")),
    ("0 0 0 * *", .valueOutOfRange(expression: "0 0 0 * *", field: .dayOfMonth, text: "0")),
    ("0 0 32 * *", .valueOutOfRange(expression: "0 0 32 * *", field: .dayOfMonth, text: "32")),
    ("0 0 * 0 *", .valueOutOfRange(expression: "0 0 * 0 *", field: .month, text: "0")),
    ("0 0 * 13 *", .valueOutOfRange(expression: "0 0 * 13 *", field: .month, text: "13")),
    ("0 0 * * 8", .valueOutOfRange(expression: "0 0 * * 8", field: .dayOfWeek, text: "8")),
    ("99999999999999999999 * * * *",
     .valueOutOfRange(expression: "99999999999999999999 * * * *", field: .minute, text: "99999999999999999999")),
    ("0 17-9 * * *", .reversedRange(expression: "0 17-9 * * *", field: .hour, text: "17-9")),
    ("0 0 * DEC-JAN *", .reversedRange(expression: "0 0 * DEC-JAN *", field: .month, text: "DEC-JAN")),
    ("0 0 * * FRI-MON", .reversedRange(expression: "0 0 * * FRI-MON", field: .dayOfWeek, text: "FRI-MON")),
    ("*/0 * * * *", .invalidStep(expression: "*/0 * * * *", field: .minute, text: "*/0")),
    ("*/-5 * * * *", .invalidStep(expression: "*/-5 * * * *", field: .minute, text: "*/-5")),
    ("0 */ * * *", .invalidStep(expression: "0 */ * * *", field: .hour, text: "*/")),
    ("0 1-5/x * * *", .invalidStep(expression: "0 1-5/x * * *", field: .hour, text: "1-5/x")),
    ("0 0 * * FOO", .unknownName(expression: "0 0 * * FOO", field: .dayOfWeek, text: "FOO")),
    ("0 0 * JANUARY *", .unknownName(expression: "0 0 * JANUARY *", field: .month, text: "JANUARY")),
    ("0 0 * MON *", .unknownName(expression: "0 0 * MON *", field: .month, text: "MON")),
    ("0 0 L * *", .unknownName(expression: "0 0 L * *", field: .dayOfMonth, text: "L")),
    ("0 MON * * *", .unknownName(expression: "0 MON * * *", field: .hour, text: "MON")),
    ("0 0 * * 1#2", .invalidSyntax(expression: "0 0 * * 1#2", field: .dayOfWeek, text: "1#2")),
    ("0 0 ? * *", .invalidSyntax(expression: "0 0 ? * *", field: .dayOfMonth, text: "?")),
    ("-1 * * * *", .invalidSyntax(expression: "-1 * * * *", field: .minute, text: "-1")),
    ("0 0 +5 * *", .invalidSyntax(expression: "0 0 +5 * *", field: .dayOfMonth, text: "+5")),
    ("0 5- * * *", .invalidSyntax(expression: "0 5- * * *", field: .hour, text: "5-")),
    ("*-5 * * * *", .invalidSyntax(expression: "*-5 * * * *", field: .minute, text: "*-5")),
    ("0 1-2-3 * * *", .invalidSyntax(expression: "0 1-2-3 * * *", field: .hour, text: "1-2-3")),
    ("*/5/2 * * * *", .invalidSyntax(expression: "*/5/2 * * * *", field: .minute, text: "*/5/2")),
    ("/5 * * * *", .invalidSyntax(expression: "/5 * * * *", field: .minute, text: "/5")),
    ("0 2 * * MON;", .invalidSyntax(expression: "0 2 * * MON;", field: .dayOfWeek, text: "MON;")),
    ("0 2 * * 1.5", .invalidSyntax(expression: "0 2 * * 1.5", field: .dayOfWeek, text: "1.5")),
    ("0 0 30 2 *", .neverFires(expression: "0 0 30 2 *", dayOfMonth: "30", month: "2")),
    ("0 0 30,31 FEB *", .neverFires(expression: "0 0 30,31 FEB *", dayOfMonth: "30,31", month: "FEB")),
    ("0 0 31 4,6,9,11 *", .neverFires(expression: "0 0 31 4,6,9,11 *", dayOfMonth: "31", month: "4,6,9,11")),
    // A day-of-week field starting with `*` does not switch to either-or matching (Vixie cron).
    ("0 0 30 2 */2", .neverFires(expression: "0 0 30 2 */2", dayOfMonth: "30", month: "2")),
]

@Test(arguments: invalidExpressions)
func rejectsInvalidExpressions(expression: String, expected: CronError) {
    #expect(throws: expected) { try CronSchedule(expression) }
    #expect(expected.description.hasPrefix("Invalid cron expression \"\(expression)\": "))
    #expect(expected.description.hasSuffix("."))
}

@Test func errorDescriptionsSayWhatIsWrongAndWhatIsValid() {
    func message(_ expression: String) -> String {
        do {
            _ = try CronSchedule(expression)
            return "no error"
        } catch {
            return error.description
        }
    }
    #expect(message("0 25 * * *") == "Invalid cron expression \"0 25 * * *\": hour 25 is outside 0-23.")
    #expect(message("0 17-9 * * *")
        == "Invalid cron expression \"0 17-9 * * *\": hour range 17-9 is reversed; write the smaller value first, e.g. 9-17.")
    #expect(message("0 0 30 2 *") == "Invalid cron expression \"0 0 30 2 *\": it never fires because day of month 30 "
        + "never occurs in month 2; choose a day that exists in the selected months.")
    #expect(message("0 0 * FOO *")
        == "Invalid cron expression \"0 0 * FOO *\": month name \"FOO\" is unknown; use 1-12 or JAN-DEC.")
    #expect(message("0 x * * *") == "Invalid cron expression \"0 x * * *\": hour \"x\" is not a number; use 0-23.")
    #expect(message("0 2 * *")
        == "Invalid cron expression \"0 2 * *\": expected 5 fields (minute hour day-of-month month day-of-week) "
        + "but found 4, e.g. \"0 2 * * *\" or @daily.")
    #expect(message("@reboot").contains("@reboot is not supported"))
}

@Test func neverFiringExpressionIsRejectedQuickly() {
    let started = ContinuousClock.now
    #expect(throws: CronError.self) { try CronSchedule("0 0 31 2 *") }
    #expect(ContinuousClock.now - started < .seconds(2))
}

// MARK: - Period

let periods: [(expression: String, zone: String, period: TimeInterval)] = [
    ("0 2 * * *", "UTC", 86_400),
    ("@daily", "UTC", 86_400),
    ("*/15 * * * *", "UTC", 900),
    ("0 3 * * SUN", "UTC", 604_800),
    ("@weekly", "UTC", 604_800),
    ("@hourly", "UTC", 3_600),
    ("*/15 9-17 * * MON-FRI", "UTC", 900),
    ("0 9 * * MON-FRI", "UTC", 86_400),
    ("0 0,23 * * *", "UTC", 3_600), // 23:00 to midnight
    ("0 0 1,15 * *", "UTC", 14 * 86_400),
    ("@monthly", "UTC", 28 * 86_400), // February 2025
    ("@yearly", "UTC", 365 * 86_400),
    ("0 0 29 2 *", "UTC", 1_461 * 86_400), // 2028 to 2032
    // Daylight saving time is ignored: the period is measured on the wall clock.
    ("0 2 * * *", "Europe/Berlin", 86_400),
    ("0 2 * * *", "America/New_York", 86_400),
]

@Test(arguments: periods)
func periodIsTheShortestIntervalBetweenFirings(expression: String, zoneName: String, period: TimeInterval) throws {
    let schedule = try CronSchedule(expression)
    #expect(schedule.period(in: zone(zoneName), from: instant("2025-01-01T00:00:00Z")) == period)
}

// MARK: - Presets and conformances

@Test func presets() throws {
    #expect(CronSchedule.dailyBackup.expression == "0 2 * * *")
    #expect(CronSchedule.dailyBackup == (try CronSchedule("0 2 * * *")))
    #expect(CronSchedule.weeklyCleanup.expression == "0 3 * * SUN")
    #expect(CronSchedule.weeklyCleanup == (try CronSchedule("0 3 * * SUN")))
    #expect(CronSchedule.weeklyCleanup.description == "0 3 * * SUN")
    #expect(CronSchedule.dailyBackup != CronSchedule.weeklyCleanup)
    #expect(try CronSchedule("  @daily \n").expression == "@daily")
}
