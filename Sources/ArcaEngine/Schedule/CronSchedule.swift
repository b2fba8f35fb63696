import Foundation

/// A standard 5-field cron expression (minute, hour, day of month, month,
/// day of week) with lists, ranges, steps and names, and the `@daily`-style
/// macros. Evaluated in a time zone, correct across daylight saving time:
///
/// - a wall-clock time that does not exist that day (spring forward) runs
///   once, at the first instant after the gap (02:30 → 03:00), as cronie
///   and systemd do, rather than being skipped;
/// - a wall-clock time that occurs twice (fall back) runs once, at its first
///   occurrence.
///
/// When both day of month and day of week are restricted, a day matches if
/// either does (Vixie cron).
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    public let expression: String
    private let minutes: Field
    private let hours: Field
    private let days: Field
    private let months: Field
    private let weekdays: Field
    private let daysRestricted: Bool
    private let weekdaysRestricted: Bool

    public static let dailyBackup = try! CronSchedule("0 2 * * *")
    public static let weeklyCleanup = try! CronSchedule("0 3 * * SUN")

    public var description: String { expression }

    public init(_ expression: String) throws {
        self.expression = expression
        let macros = [
            "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
            "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
        ]
        var text = expression.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("@") {
            guard let expansion = macros[text.lowercased()] else {
                throw CronError(expression, "\(text) is not supported; use @hourly, @daily, @weekly, @monthly or @yearly, or five fields")
            }
            text = expansion
        }
        let fields = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard fields.count == 5 else {
            throw CronError(expression, "it has \(fields.count) field(s); a cron expression has 5: minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\"")
        }
        let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
        minutes = try Field(fields[0], name: "minute", range: 0...59, expression: expression)
        hours = try Field(fields[1], name: "hour", range: 0...23, expression: expression)
        days = try Field(fields[2], name: "day of month", range: 1...31, expression: expression)
        months = try Field(fields[3], name: "month", range: 1...12, names: monthNames, firstName: 1, expression: expression)
        // 7 is Sunday too; it folds onto 0.
        var weekdays = try Field(fields[4], name: "day of week", range: 0...7, names: dayNames, firstName: 0, expression: expression)
        if weekdays.contains(7) { weekdays.insert(0) }
        self.weekdays = weekdays
        daysRestricted = fields[2] != "*"
        weekdaysRestricted = fields[4] != "*"
        // A schedule that can never fire (30 February) is an error now, not silence later.
        guard months.values.contains(where: { month in days.values.contains { $0 <= Self.maximumDays[month - 1] } }) || weekdaysRestricted && daysRestricted else {
            throw CronError(expression, "it never fires: no month in it has such a day")
        }
    }

    private static let maximumDays = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

    /// The first firing strictly after `date`, or nil if none within five years.
    public func nextDate(after date: Date, in timeZone: TimeZone) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        var day = calendar.startOfDay(for: date)
        for _ in 0..<(366 * 5) {
            let parts = calendar.dateComponents([.year, .month, .day, .weekday], from: day)
            if let year = parts.year, let month = parts.month, let dayOfMonth = parts.day, let weekday = parts.weekday,
               matches(month: month, day: dayOfMonth, weekday: weekday - 1) {
                for hour in hours.values {
                    for minute in minutes.values {
                        guard let candidate = instant(year, month, dayOfMonth, hour, minute, calendar) else { continue }
                        if candidate > date { return candidate }
                    }
                }
            }
            guard let next = calendar.date(byAdding: .day, value: 1, to: day) else { return nil }
            day = calendar.startOfDay(for: next)
        }
        return nil
    }

    /// The longest interval between consecutive firings over the next 64:
    /// how old the last run may be before a run was missed.
    public func period(in timeZone: TimeZone, from start: Date) -> TimeInterval {
        var longest: TimeInterval = 0
        var previous = nextDate(after: start, in: timeZone)
        for _ in 0..<64 {
            guard let current = previous, let next = nextDate(after: current, in: timeZone) else { break }
            longest = max(longest, next.timeIntervalSince(current))
            previous = next
        }
        return longest
    }

    private func matches(month: Int, day: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        switch (daysRestricted, weekdaysRestricted) {
        case (true, true): return days.contains(day) || weekdays.contains(weekday)
        case (true, false): return days.contains(day)
        case (false, true): return weekdays.contains(weekday)
        case (false, false): return true
        }
    }

    /// The instant of a local wall-clock time; inside a spring-forward gap,
    /// the end of the gap.
    private func instant(_ year: Int, _ month: Int, _ day: Int, _ hour: Int, _ minute: Int, _ calendar: Calendar) -> Date? {
        let wanted = DateComponents(year: year, month: month, day: day, hour: hour, minute: minute)
        guard let date = calendar.date(from: wanted) else { return nil }
        let actual = calendar.dateComponents([.day, .hour, .minute], from: date)
        if actual.day == day, actual.hour == hour, actual.minute == minute { return date }
        // Not a valid local time: the clocks jumped over it.
        let before = calendar.date(from: DateComponents(year: year, month: month, day: day, hour: hour)) ?? date
        return calendar.timeZone.nextDaylightSavingTimeTransition(after: before.addingTimeInterval(-7200))
    }

    public static func == (lhs: CronSchedule, rhs: CronSchedule) -> Bool { lhs.expression == rhs.expression }

    /// The allowed values of one field.
    private struct Field: Sendable, Equatable {
        private(set) var values: [Int]

        func contains(_ value: Int) -> Bool { values.contains(value) }
        mutating func insert(_ value: Int) { if !values.contains(value) { values.append(value); values.sort() } }

        init(_ text: String, name: String, range: ClosedRange<Int>, names: [String] = [], firstName: Int = 0, expression: String) throws {
            func fail(_ reason: String) -> CronError { CronError(expression, "\(name) \(reason)") }
            func number(_ token: Substring) throws -> Int {
                if let value = Int(token) {
                    guard range.contains(value) else { throw fail("\(value) is outside \(range.lowerBound)-\(range.upperBound)") }
                    return value
                }
                if let index = names.firstIndex(of: token.uppercased()) { return index + firstName }
                throw fail("\"\(token)\" is not a number\(names.isEmpty ? "" : " or a name (\(names.first!)-\(names.last!))")")
            }
            var values = Set<Int>()
            for item in text.split(separator: ",", omittingEmptySubsequences: false) {
                guard !item.isEmpty else { throw fail("has an empty list item in \"\(text)\"") }
                let stepParts = item.split(separator: "/", omittingEmptySubsequences: false)
                guard stepParts.count <= 2 else { throw fail("\"\(item)\" has more than one step") }
                var step = 1
                if stepParts.count == 2 {
                    guard let value = Int(stepParts[1]), value > 0 else { throw fail("step \"\(stepParts[1])\" must be a positive number") }
                    step = value
                }
                let base = stepParts[0]
                var low = range.lowerBound, high = range.upperBound
                if base == "*" {
                    // `*/n` over the whole range.
                } else if let dash = base.firstIndex(of: "-") {
                    low = try number(base[..<dash])
                    high = try number(base[base.index(after: dash)...])
                    guard low <= high else { throw fail("range \(base) runs backwards") }
                } else {
                    low = try number(base)
                    // `5/10` means 5-max/10; a lone value is just itself.
                    high = stepParts.count == 2 ? range.upperBound : low
                }
                values.formUnion(stride(from: low, through: high, by: step))
            }
            self.values = values.sorted()
        }
    }
}

public struct CronError: Error, Sendable, Equatable, CustomStringConvertible {
    public let expression: String
    public let reason: String

    init(_ expression: String, _ reason: String) {
        self.expression = expression
        self.reason = reason
    }

    public var description: String { "Invalid cron expression \"\(expression)\": \(reason)." }
}
