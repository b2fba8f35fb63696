import Foundation
/// SQL identifier quoting. Every name Arca puts in SQL is quoted, so `"User"`,
/// names with spaces, quotes or capitals, and reserved words all work.
public enum SQLIdentifier {
    public static func quote(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    public static func qualified(_ schema: String, _ name: String) -> String {
        quote(schema) + "." + quote(name)
    }

    /// The column list of a COPY, or nothing for a table without columns
    /// (`COPY t () …` is not valid SQL; without a list COPY skips generated columns).
    public static func columnList(_ columns: [String]) -> String {
        columns.isEmpty ? "" : " (" + columns.map(quote).joined(separator: ", ") + ")"
    }

    /// A string literal (standard_conforming_strings on, the default since 9.1).
    public static func literal(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
    }
}
