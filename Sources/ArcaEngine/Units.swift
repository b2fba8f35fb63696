import Foundation

extension Duration {
    /// The duration in seconds, for reports and JSON.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// Sizes for people: decimal units, one decimal ("2.5 MB"; the API's
/// contract writes them without the space: "2.5MB").
public enum ByteCount {
    public static func format(_ count: UInt64, separator: String = " ") -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(count)
        var unit = 0
        while value >= 1000, unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(count)\(separator)B" : String(format: "%.1f", value) + separator + units[unit]
    }
}
