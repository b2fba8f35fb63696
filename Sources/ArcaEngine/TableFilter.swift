#if canImport(Glibc)
import Glibc
#endif

/// `--table` / `--exclude-table` patterns: shell globs (`*`, `?`, `[...]`)
/// matched against the unquoted `schema.table` name. A pattern without a dot
/// matches the table name in any schema.
public struct TableFilter: Sendable {
    public var include: [String]
    public var exclude: [String]

    public init(include: [String] = [], exclude: [String] = []) {
        self.include = include
        self.exclude = exclude
    }

    public func matches(schema: String, name: String) -> Bool {
        let included = include.isEmpty || include.contains { Self.match($0, schema: schema, name: name) }
        return included && !exclude.contains { Self.match($0, schema: schema, name: name) }
    }

    /// Include patterns that matched none of `tables`: almost always a typo,
    /// which a backup tool must not silently turn into a smaller backup.
    public func unmatchedIncludes(_ tables: [(schema: String, name: String)]) -> [String] {
        include.filter { pattern in !tables.contains { Self.match(pattern, schema: $0.schema, name: $0.name) } }
    }

    static func match(_ pattern: String, schema: String, name: String) -> Bool {
        if pattern.contains(".") {
            return fnmatch(pattern, "\(schema).\(name)", 0) == 0
        }
        return fnmatch(pattern, name, 0) == 0
    }
}
