import Foundation

/// A backup's name: `backup_YYYYMMDD_HHMMSS` in UTC, with `_N` appended when
/// another backup started in the same second. Ids are also file names, so the
/// parser accepts nothing else: no path separators, no dots, no NUL.
public struct BackupID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: String

    /// Nil unless `text` matches `^backup_[0-9]{8}_[0-9]{6}(_[0-9]{1,6})?$`.
    public init?(_ text: String) {
        let utf8 = Array(text.utf8)
        let prefix = Array("backup_".utf8)
        guard utf8.count >= 22, utf8.count <= 29, Array(utf8[0..<7]) == prefix else { return nil }
        func digits(_ range: Range<Int>) -> Bool { utf8[range].allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        guard digits(7..<15), utf8[15] == UInt8(ascii: "_"), digits(16..<22) else { return nil }
        if utf8.count > 22 {
            guard utf8.count >= 24, utf8[22] == UInt8(ascii: "_"), digits(23..<utf8.count) else { return nil }
        }
        rawValue = text
    }

    /// The id for a backup started at `date`; `attempt` 0 gives the plain
    /// form, later attempts add a suffix to stay unique within a second.
    public init(date: Date, attempt: Int = 0) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func pad(_ value: Int?, _ width: Int) -> String {
            let text = String(value ?? 0)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        var text = "backup_\(pad(c.year, 4))\(pad(c.month, 2))\(pad(c.day, 2))_\(pad(c.hour, 2))\(pad(c.minute, 2))\(pad(c.second, 2))"
        if attempt > 0 { text += "_\(attempt + 1)" }
        rawValue = text
    }

    public var description: String { rawValue }

    /// Chronological: the timestamp first, then the same-second suffix.
    public static func < (lhs: BackupID, rhs: BackupID) -> Bool {
        let l = lhs.sortKey, r = rhs.sortKey
        return l.stamp != r.stamp ? l.stamp < r.stamp : l.suffix < r.suffix
    }

    private var sortKey: (stamp: Substring, suffix: Int) {
        let stamp = rawValue.prefix(22)
        let suffix = rawValue.count > 22 ? Int(rawValue.dropFirst(23)) ?? 0 : 0
        return (stamp, suffix)
    }

    /// The UTC time encoded in the id.
    public var date: Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let text = Array(rawValue.utf8)
        func number(_ range: Range<Int>) -> Int { Int(String(decoding: text[range], as: UTF8.self)) ?? 0 }
        return calendar.date(from: DateComponents(
            year: number(7..<11), month: number(11..<13), day: number(13..<15),
            hour: number(16..<18), minute: number(18..<20), second: number(20..<22)))
    }
}
