import Foundation

/// A standard five-field cron schedule, `minute hour day-of-month month day-of-week`,
/// that computes when it next fires in a given time zone.
///
/// Syntax (as in Vixie cron / cronie):
/// - minute 0-59, hour 0-23, day of month 1-31, month 1-12 or `JAN`-`DEC`,
///   day of week 0-7 (0 and 7 are Sunday) or `SUN`-`SAT`; names are case-insensitive.
/// - `*`, lists `1,2,5`, ranges `9-17` or `MON-FRI`, steps `*/15`, `10-50/5`, and `5/10`
///   (a single value with a step runs to the end of the field: `5-59/10`).
///   A day-of-week range may end in `SUN` (`SAT-SUN`), which then means 7.
/// - Macros `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`.
///   `@reboot` is rejected: it is not a time-based schedule.
/// - When both day of month and day of week are restricted, a day matches if *either* matches
///   (`0 12 13 * FRI` fires on every 13th and on every Friday). As in Vixie cron, a field counts as
///   unrestricted when it starts with `*`, so `0 0 */2 * MON` fires only on odd-numbered Mondays.
/// - Expressions that can never fire (`0 0 30 2 *`) are rejected by the initializer.
///
/// Time zones and daylight saving time: wall-clock times are evaluated in the (proleptic) Gregorian
/// calendar in the time zone passed to ``nextDate(after:in:)``.
/// - A wall-clock time that does not exist because clocks spring forward (02:30 on 2025-03-30 in
///   Europe/Berlin) fires once at the first instant after the gap (03:00 CEST), like cronie and
///   systemd, instead of being skipped for that day. All skipped times collapse into that one firing.
/// - A wall-clock time that occurs twice because clocks fall back (01:30 on 2025-11-02 in
///   America/New_York) fires once, at its first occurrence (01:30 EDT). The repeated hour does not
///   fire again, so `0 * * * *` fires at 01:00 EDT and next at 02:00 EST, two hours later.
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    typealias Field = CronError.Field

    /// The expression as written (without surrounding whitespace), e.g. `"0 2 * * *"` or `"@daily"`.
    public let expression: String

    // The allowed values of each field; internal so that tests can inspect the parse.
    let minutes: [Int]        // ascending
    let hours: [Int]          // ascending
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>  // 0 = Sunday ... 6 = Saturday
    /// True when both day fields are restricted, so that a day matches if either field matches.
    let daysMatchEither: Bool

    public static let dailyBackup = try! CronSchedule("0 2 * * *")
    public static let weeklyCleanup = try! CronSchedule("0 3 * * SUN")

    public var description: String { expression }

    public init(_ expression: String) throws(CronError) {
        let expression = expression.trimmingCharacters(in: .whitespacesAndNewlines)
        var fieldsText = expression
        if expression.hasPrefix("@") {
            guard let expansion = Self.macros[expression.lowercased()] else {
                throw .unsupportedMacro(expression: expression, macro: expression)
            }
            fieldsText = expansion
        }
        let fields = fieldsText.split(whereSeparator: \.isWhitespace)
        guard fields.count == 5 else {
            throw .wrongFieldCount(expression: expression, count: fields.count)
        }
        self.expression = expression
        minutes = try Self.values(of: fields[0], .minute, in: expression)
        hours = try Self.values(of: fields[1], .hour, in: expression)
        daysOfMonth = Set(try Self.values(of: fields[2], .dayOfMonth, in: expression))
        months = Set(try Self.values(of: fields[3], .month, in: expression))
        daysOfWeek = Set(try Self.values(of: fields[4], .dayOfWeek, in: expression).map { $0 % 7 })
        daysMatchEither = !fields[2].hasPrefix("*") && !fields[4].hasPrefix("*")

        // nextDate searches a whole 400-year Gregorian cycle, so nil means "never".
        guard nextDate(after: Date(timeIntervalSince1970: 0), in: TimeZone(secondsFromGMT: 0)!) != nil else {
            throw .neverFires(expression: expression, dayOfMonth: String(fields[2]), month: String(fields[3]))
        }
    }

    /// The first time strictly after `date` at which the schedule fires, evaluated in `timeZone`.
    /// Returns nil only if there is no firing within 400 years (or `date` is absurdly far away).
    public func nextDate(after date: Date, in timeZone: TimeZone) -> Date? {
        guard let start = Self.localSeconds(of: date, in: timeZone) else { return nil }
        let startDay = floorDivision(start, 86_400)
        let startMinuteOfDay = (start - startDay * 86_400) / 60
        var day = CivilDay(number: startDay)
        // The calendar repeats every 400 years, so searching one cycle (plus the partial first day)
        // finds a firing if there is one at all.
        while day.number <= startDay + Self.daysPerGregorianCycle {
            guard months.contains(day.month) else {
                day.advanceToNextMonth()
                continue
            }
            if matchesDayOfMonthAndWeek(day) {
                for hour in hours {
                    for minute in minutes {
                        let minuteOfDay = hour * 60 + minute
                        // Wall-clock times map to instants monotonically (see `instant`), so no time at
                        // or before the current wall-clock minute can come after `date`.
                        if day.number == startDay && minuteOfDay <= startMinuteOfDay { continue }
                        let firing = Self.instant(atLocalSeconds: day.number * 86_400 + minuteOfDay * 60, in: timeZone)
                        // Needed after a fall-back: during the repeated hour, later wall-clock
                        // times of the first pass are already in the past.
                        if firing > date { return firing }
                    }
                }
            }
            day.advance()
        }
        return nil
    }

    /// The shortest interval between two consecutive firings, in wall-clock time, over the year after
    /// `from` (longer if needed to see two firing days, e.g. for `0 0 29 2 *`).
    ///
    /// Daylight-saving shifts are deliberately ignored: `0 2 * * *` has a period of exactly one day
    /// everywhere, although one night per year in Europe/Berlin is only 23 hours long. Otherwise the
    /// period would depend on whether a transition lies ahead, and skipped times that collapse into
    /// the end of a gap could make it arbitrarily short.
    public func period(in timeZone: TimeZone, from: Date) -> TimeInterval {
        let timesOfDay = hours.flatMap { hour in minutes.map { hour * 60 + $0 } } // ascending minutes since midnight
        let acrossDays = shortestGapBetweenFiringDays(startingAt: Self.localDayNumber(of: from, in: timeZone)) * 1_440
            - (timesOfDay.last! - timesOfDay.first!)
        let withinDay = zip(timesOfDay, timesOfDay.dropFirst()).map { $1 - $0 }.min() ?? acrossDays
        return TimeInterval(min(withinDay, acrossDays) * 60)
    }

    // MARK: - Day matching

    private func matchesDayOfMonthAndWeek(_ day: CivilDay) -> Bool {
        let dayOfMonthMatches = daysOfMonth.contains(day.day)
        let dayOfWeekMatches = daysOfWeek.contains(day.weekday)
        return daysMatchEither ? dayOfMonthMatches || dayOfWeekMatches : dayOfMonthMatches && dayOfWeekMatches
    }

    /// The fewest days between two consecutive days on which the schedule fires, looking at least a
    /// year ahead. Every schedule fires within any 400-year cycle, so two cycles always contain two firing days.
    private func shortestGapBetweenFiringDays(startingAt startDay: Int) -> Int {
        var shortest: Int?
        var previousFiringDay: Int?
        var day = CivilDay(number: startDay)
        while day.number < startDay + 2 * Self.daysPerGregorianCycle, day.number < startDay + 366 || shortest == nil {
            if months.contains(day.month) && matchesDayOfMonthAndWeek(day) {
                if let previousFiringDay { shortest = min(shortest ?? .max, day.number - previousFiringDay) }
                previousFiringDay = day.number
            }
            day.advance()
        }
        return shortest ?? Self.daysPerGregorianCycle
    }

    // MARK: - Time zone conversion

    private static let daysPerGregorianCycle = 146_097 // 400 years

    /// Seconds since 1970-01-01 00:00 on the wall clock in `timeZone`, rounded down.
    private static func localSeconds(of date: Date, in timeZone: TimeZone) -> Int? {
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite, abs(seconds) < 100_000_000_000 else { return nil } // about ±3000 years
        return Int(seconds.rounded(.down)) + timeZone.secondsFromGMT(for: date)
    }

    private static func localDayNumber(of date: Date, in timeZone: TimeZone) -> Int {
        floorDivision(localSeconds(of: date, in: timeZone) ?? 0, 86_400)
    }

    /// The instant at which the wall-clock time `local` (seconds since 1970-01-01 00:00 local) occurs
    /// in `timeZone`: the first occurrence if it occurs twice, and the end of the gap if it is skipped.
    /// This mapping never decreases as the wall-clock time increases, which `nextDate` relies on.
    private static func instant(atLocalSeconds local: Int, in timeZone: TimeZone) -> Date {
        func offset(at instant: Int) -> Int {
            timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant)))
        }
        // The offsets a day before and after cover any transition near this time (UTC offsets are
        // within ±14 hours), so the instant is one of these two candidates unless it is in a gap.
        let candidates = [local - offset(at: local - 86_400), local - offset(at: local + 86_400)].sorted()
        if let earliestValid = candidates.first(where: { local - $0 == offset(at: $0) }) {
            return Date(timeIntervalSince1970: TimeInterval(earliestValid))
        }
        // In a gap: the earlier candidate is before the transition and the later one after it.
        // Binary search for the transition, which is the first valid instant after the gap.
        var beforeGap = candidates[0], afterGap = candidates[1]
        let offsetBeforeGap = offset(at: beforeGap)
        while afterGap - beforeGap > 1 {
            let middle = beforeGap + (afterGap - beforeGap) / 2
            if offset(at: middle) == offsetBeforeGap { beforeGap = middle } else { afterGap = middle }
        }
        return Date(timeIntervalSince1970: TimeInterval(afterGap))
    }

    // MARK: - Parsing

    private static let macros = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    /// The ascending values allowed by one field, e.g. `1,5-10,*/20` in the minute field.
    private static func values(of text: Substring, _ field: Field, in expression: String) throws(CronError) -> [Int] {
        var values = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw .emptyListItem(expression: expression, field: field, text: String(text)) }
            let rangeAndStep = item.split(separator: "/", omittingEmptySubsequences: false)
            guard rangeAndStep.count <= 2, !rangeAndStep[0].isEmpty else {
                throw .invalidSyntax(expression: expression, field: field, text: String(item))
            }
            var step = 1
            if rangeAndStep.count == 2 {
                guard isNumber(rangeAndStep[1]), let number = Int(rangeAndStep[1]), number > 0 else {
                    throw .invalidStep(expression: expression, field: field, text: String(item))
                }
                step = number
            }
            let range = try self.range(rangeAndStep[0], field, hasStep: rangeAndStep.count == 2, in: expression)
            values.formUnion(stride(from: range.lowerBound, through: range.upperBound, by: step))
        }
        return values.sorted()
    }

    /// The range written as `*`, `9-17`, or a single value (`5`, which with a step means `5` to the end).
    private static func range(_ text: Substring, _ field: Field, hasStep: Bool, in expression: String) throws(CronError) -> ClosedRange<Int> {
        if text == "*" { return field.bounds }
        let ends = text.split(separator: "-", omittingEmptySubsequences: false)
        guard ends.count <= 2, ends.allSatisfy({ isNumber($0) || isName($0) }) else {
            throw .invalidSyntax(expression: expression, field: field, text: String(text))
        }
        let low = try value(ends[0], field, isRangeEnd: false, in: expression)
        guard ends.count == 2 else { return hasStep ? low...field.bounds.upperBound : low...low }
        let high = try value(ends[1], field, isRangeEnd: true, in: expression)
        guard low <= high else { throw .reversedRange(expression: expression, field: field, text: String(text)) }
        return low...high
    }

    /// A number or name, already known to consist only of digits or only of letters.
    private static func value(_ text: Substring, _ field: Field, isRangeEnd: Bool, in expression: String) throws(CronError) -> Int {
        if isNumber(text) {
            guard let number = Int(text), field.bounds.contains(number) else { // nil if too many digits
                throw .valueOutOfRange(expression: expression, field: field, text: String(text))
            }
            return number
        }
        guard let index = field.names.firstIndex(of: text.uppercased()) else {
            throw .unknownName(expression: expression, field: field, text: String(text))
        }
        // `SAT-SUN` means Saturday to Sunday, not a reversed range from 6 down to 0.
        if field == .dayOfWeek && index == 0 && isRangeEnd { return 7 }
        return field.bounds.lowerBound + index
    }

    private static func isNumber(_ text: Substring) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isASCII && $0.isNumber }
    }

    private static func isName(_ text: Substring) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isASCII && $0.isLetter }
    }
}

/// Why a cron expression was rejected. `description` explains it in a sentence.
public enum CronError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Field: String, Sendable {
        case minute, hour, dayOfMonth = "day of month", month, dayOfWeek = "day of week"

        var bounds: ClosedRange<Int> {
            switch self {
            case .minute: 0...59
            case .hour: 0...23
            case .dayOfMonth: 1...31
            case .month: 1...12
            case .dayOfWeek: 0...7
            }
        }

        /// Names in order of value, starting at the lower bound.
        var names: [String] {
            switch self {
            case .month: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
            case .dayOfWeek: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
            case .minute, .hour, .dayOfMonth: []
            }
        }

        var validValues: String {
            let numbers = "\(bounds.lowerBound)-\(bounds.upperBound)"
            return names.isEmpty ? numbers : "\(numbers) or \(names.first!)-\(names.last!)"
        }
    }

    /// Not five whitespace-separated fields (`count` is how many there were).
    case wrongFieldCount(expression: String, count: Int)
    /// An `@` macro other than the supported ones; `@reboot` is deliberately unsupported.
    case unsupportedMacro(expression: String, macro: String)
    /// A list with an empty item, such as `1,,2` or a trailing comma `1,2,`; `text` is the whole field.
    case emptyListItem(expression: String, field: Field, text: String)
    /// Characters that are not part of cron syntax, such as `1#2`, `?` or `-5`.
    case invalidSyntax(expression: String, field: Field, text: String)
    /// A name that is not valid for the field, such as `FOO` in the month field or any name in the hour field.
    case unknownName(expression: String, field: Field, text: String)
    /// A number outside the field's range, such as hour `25`.
    case valueOutOfRange(expression: String, field: Field, text: String)
    /// A range whose start is after its end, such as `17-9`.
    case reversedRange(expression: String, field: Field, text: String)
    /// A step that is not a whole number of at least 1, such as `*/0`; `text` is the whole item.
    case invalidStep(expression: String, field: Field, text: String)
    /// No date matches the day-of-month and month fields, such as `0 0 30 2 *`.
    case neverFires(expression: String, dayOfMonth: String, month: String)

    public var description: String {
        switch self {
        case let .wrongFieldCount(expression, count):
            return Self.invalid(expression) + "expected 5 fields (minute hour day-of-month month day-of-week) "
                + "but found \(count), e.g. \"0 2 * * *\" or @daily."
        case let .unsupportedMacro(expression, macro) where macro.lowercased() == "@reboot":
            return Self.invalid(expression) + "@reboot is not supported because a backup schedule needs a time; "
                + "use e.g. @daily or \"0 2 * * *\"."
        case let .unsupportedMacro(expression, macro):
            return Self.invalid(expression) + "unknown macro \(macro); "
                + "valid macros are @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly."
        case let .emptyListItem(expression, field, text):
            return Self.invalid(expression) + "\(field.rawValue) list \"\(text)\" has an empty item; "
                + "separate values with single commas and no trailing comma, e.g. 1,2,5."
        case let .invalidSyntax(expression, field, text):
            return Self.invalid(expression) + "\(field.rawValue) \"\(text)\" is not valid; use values \(field.validValues), "
                + "alone or as a list (1,2,5), range (1-5) or step (*/2)."
        case let .unknownName(expression, field, text) where field.names.isEmpty:
            return Self.invalid(expression) + "\(field.rawValue) \"\(text)\" is not a number; use \(field.validValues)."
        case let .unknownName(expression, field, text):
            return Self.invalid(expression) + "\(field.rawValue) name \"\(text)\" is unknown; use \(field.validValues)."
        case let .valueOutOfRange(expression, field, text):
            return Self.invalid(expression) + "\(field.rawValue) \(text) is outside \(field.bounds.lowerBound)-\(field.bounds.upperBound)."
        case let .reversedRange(expression, field, text):
            let swapped = text.split(separator: "-").reversed().joined(separator: "-")
            return Self.invalid(expression) + "\(field.rawValue) range \(text) is reversed; "
                + "write the smaller value first, e.g. \(swapped)."
        case let .invalidStep(expression, field, text):
            return Self.invalid(expression) + "\(field.rawValue) step in \"\(text)\" is invalid; "
                + "the step after / must be a whole number of at least 1, e.g. */15."
        case let .neverFires(expression, dayOfMonth, month):
            return Self.invalid(expression) + "it never fires because day of month \(dayOfMonth) "
                + "never occurs in month \(month); choose a day that exists in the selected months."
        }
    }

    private static func invalid(_ expression: String) -> String {
        "Invalid cron expression \"\(expression)\": "
    }
}

/// A day of the proleptic Gregorian calendar, numbered from 1970-01-01 (day 0).
/// Walking days with plain arithmetic keeps `nextDate` fast and independent of DST.
private struct CivilDay {
    private(set) var number: Int
    private(set) var year: Int
    private(set) var month: Int
    private(set) var day: Int
    private(set) var weekday: Int // 0 = Sunday

    /// Converts a day number to a date (Howard Hinnant's `civil_from_days`).
    init(number: Int) {
        self.number = number
        let shifted = number + 719_468 // days since 0000-03-01
        let era = floorDivision(shifted, 146_097)
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100) // from March 1st
        let monthFromMarch = (5 * dayOfYear + 2) / 153
        day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        year = era * 400 + yearOfEra + (month <= 2 ? 1 : 0)
        weekday = ((number + 4) % 7 + 7) % 7 // 1970-01-01 was a Thursday; also correct for negative numbers
    }

    mutating func advance() {
        if day < daysInMonth {
            move(by: 1)
            day += 1
        } else {
            advanceToNextMonth()
        }
    }

    mutating func advanceToNextMonth() {
        move(by: daysInMonth - day + 1)
        day = 1
        month = month % 12 + 1
        if month == 1 { year += 1 }
    }

    private mutating func move(by days: Int) {
        number += days
        weekday = (weekday + days) % 7
    }

    private var daysInMonth: Int {
        switch month {
        case 2: year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}

private func floorDivision(_ dividend: Int, _ divisor: Int) -> Int {
    let quotient = dividend / divisor
    return dividend % divisor < 0 ? quotient - 1 : quotient
}
