import Foundation

/// A backup's name, also its file and object name:
///
///     backup_YYYYMMDD_HHMMSS_mmmrrrrr
///
/// the UTC date and time it started, then eight characters: the
/// milliseconds (`mmm`) and five random characters of `a`–`z`, `2`–`7`
/// (`rrrrr`, 25 bits). Two hosts, or two databases, that share a bucket
/// choose their ids without asking each other, so the random part is what
/// keeps them apart; the milliseconds keep one host's ids in the order it
/// took them. Sorting ids sorts backups by time.
///
/// Archives written before this form are named `backup_YYYYMMDD_HHMMSS`,
/// with `_N` (one to six digits) when another started in the same second;
/// those names are still read. The parser accepts nothing else: no path
/// separators, no dots, no NUL.
public struct BackupID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: String

    /// Nil unless `text` matches
    /// `^backup_[0-9]{8}_[0-9]{6}(_[0-9]{1,6}|_[0-9a-z]{8})?$`.
    public init?(_ text: String) {
        let utf8 = Array(text.utf8)
        let prefix = Array("backup_".utf8)
        guard utf8.count >= 22, utf8.count <= 31, Array(utf8[0..<7]) == prefix else { return nil }
        func digits(_ range: Range<Int>) -> Bool { utf8[range].allSatisfy(Self.isDigit) }
        guard digits(7..<15), utf8[15] == UInt8(ascii: "_"), digits(16..<22) else { return nil }
        if utf8.count > 22 {
            guard utf8.count >= 24, utf8[22] == UInt8(ascii: "_") else { return nil }
            let suffix = utf8[23...]
            switch suffix.count {
            case 1...6: guard suffix.allSatisfy(Self.isDigit) else { return nil }
            case Self.suffixLength: guard suffix.allSatisfy({ Self.isDigit($0) || (0x61...0x7A).contains($0) }) else { return nil }
            default: return nil
            }
        }
        rawValue = text
    }

    /// A new id for a backup started at `date`, its random part drawn from
    /// `generator`.
    public init(date: Date, using generator: inout some RandomNumberGenerator) {
        let milliseconds = Int((date.timeIntervalSince1970 * 1000).rounded(.down)) % 1000
        let millisecondsText = String(milliseconds)
        var suffix = String(repeating: "0", count: 3 - millisecondsText.count) + millisecondsText
        for _ in 0..<5 { suffix.append(Self.randomAlphabet.randomElement(using: &generator)!) }
        rawValue = "\(Self.stamp(date))_\(suffix)"
    }

    /// A new id for a backup started at `date` (the system's random source).
    public init(date: Date) {
        var generator = SystemRandomNumberGenerator()
        self.init(date: date, using: &generator)
    }

    static let suffixLength = 8
    /// RFC 4648's base32 alphabet, lower-case: no `0`/`o` or `1`/`l` to confuse.
    private static let randomAlphabet = Array("abcdefghijklmnopqrstuvwxyz234567")

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// `backup_YYYYMMDD_HHMMSS` of `date` in UTC.
    private static func stamp(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func pad(_ value: Int?, _ width: Int) -> String {
            let text = String(value ?? 0)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "backup_\(pad(c.year, 4))\(pad(c.month, 2))\(pad(c.day, 2))_\(pad(c.hour, 2))\(pad(c.minute, 2))\(pad(c.second, 2))"
    }

    public var description: String { rawValue }

    /// Whether it is of the form written before ids had a random part.
    public var isLegacy: Bool { rawValue.count < 23 + Self.suffixLength }

    /// Chronological: the timestamp first; within a second the plain old
    /// form, then the old numbered ones, then the new ones by milliseconds.
    public static func < (lhs: BackupID, rhs: BackupID) -> Bool {
        let l = lhs.sortKey, r = rhs.sortKey
        if l.stamp != r.stamp { return l.stamp < r.stamp }
        if l.number != r.number { return l.number < r.number }
        return l.suffix < r.suffix
    }

    /// The timestamp, the old same-second number (0 for none, past every
    /// old one for the new form) and the new suffix.
    private var sortKey: (stamp: Substring, number: Int, suffix: Substring) {
        let stamp = rawValue.prefix(22)
        guard rawValue.count > 22 else { return (stamp, 0, "") }
        let suffix = rawValue.dropFirst(23)
        return isLegacy ? (stamp, Int(suffix) ?? 0, "") : (stamp, .max, suffix)
    }

    /// The UTC time encoded in the id, to the millisecond in the new form.
    public var date: Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let text = Array(rawValue.utf8)
        func number(_ range: Range<Int>) -> Int { Int(String(decoding: text[range], as: UTF8.self)) ?? 0 }
        let seconds = calendar.date(from: DateComponents(
            year: number(7..<11), month: number(11..<13), day: number(13..<15),
            hour: number(16..<18), minute: number(18..<20), second: number(20..<22)))
        guard !isLegacy else { return seconds }
        return seconds?.addingTimeInterval(Double(number(23..<26)) / 1000)
    }
}
