import ArcaPostgres
import Foundation

public struct DatabaseComparisonResult: Codable, Sendable {
    public var equal: Bool
    public var tables: Int
    public var sequences: Int
    /// One line per difference, e.g. `table public."User": rows 10 vs 9`.
    public var differences: [String]
}

/// Compares two databases the way a restore must be judged: the same tables
/// with the same columns and types, the same rows (as a multiset, so physical
/// order does not matter), and the same sequence states. Runs entirely in
/// SQL with constant memory: each table's rows are reduced to a count and two
/// 64-bit sums of per-row MD5s.
public struct DatabaseComparison: Sendable {
    public let first: ConnectionString
    public let second: ConnectionString

    public init(_ first: ConnectionString, _ second: ConnectionString) {
        self.first = first
        self.second = second
    }

    public func run() throws -> DatabaseComparisonResult {
        let a = try Self.fingerprint(first)
        let b = try Self.fingerprint(second)
        var differences: [String] = []
        for key in Set(a.keys).union(b.keys).sorted() {
            switch (a[key], b[key]) {
            case (let left?, nil): differences.append("\(key): only in the first database (\(left))")
            case (nil, let right?): differences.append("\(key): only in the second database (\(right))")
            case (let left?, let right?) where left != right: differences.append("\(key): \(left) vs \(right)")
            default: break
            }
        }
        return DatabaseComparisonResult(
            equal: differences.isEmpty,
            tables: Set(a.keys).union(b.keys).filter { $0.hasPrefix("table ") }.count,
            sequences: Set(a.keys).union(b.keys).filter { $0.hasPrefix("sequence ") }.count,
            differences: differences)
    }

    /// `"table schema.name"` → columns, row count and row hash;
    /// `"sequence schema.name"` → its state.
    static func fingerprint(_ target: ConnectionString) throws -> [String: String] {
        let connection = try PostgresConnection(target, applicationName: "arca compare")
        try SessionSettings.apply(to: connection)
        try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", during: "starting the comparison")
        var fingerprint: [String: String] = [:]

        let relations = try connection.execute(
            """
            SELECT c.oid::pg_catalog.regclass::text, c.relkind,
                   (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname) || ' ' ||
                            pg_catalog.format_type(a.atttypid, a.atttypmod) ||
                            CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END ||
                            CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY a.attnum)
                      FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
              FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'S')
               AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                  AND d.objid = c.oid AND d.deptype = 'e')
             ORDER BY 1
            """, during: "listing relations")
        for row in relations.rows {
            guard let name = row[0], let kind = row[1] else { continue }
            switch kind {
            case "S":
                let state = try connection.execute(
                    "SELECT last_value::text || CASE WHEN is_called THEN ' called' ELSE ' not called' END FROM \(name)",
                    during: "reading sequence \(name)")
                fingerprint["sequence \(name)"] = state.singleValue ?? "?"
            case "p":
                fingerprint["table \(name)"] = "partitioned (\(row[2] ?? ""))"
            default:
                let hash = try connection.execute(
                    """
                    SELECT pg_catalog.count(*)::text || ' rows, hash ' ||
                           COALESCE(pg_catalog.sum(('x' || pg_catalog.substr(h, 1, 16))::bit(64)::bigint::numeric), 0)::text || '/' ||
                           COALESCE(pg_catalog.sum(('x' || pg_catalog.substr(h, 17, 16))::bit(64)::bigint::numeric), 0)::text
                      FROM (SELECT pg_catalog.md5(t::text) AS h FROM ONLY \(name) AS t) rows
                    """, during: "hashing the rows of \(name)")
                fingerprint["table \(name)"] = "(\(row[2] ?? "")) \(hash.singleValue ?? "?")"
            }
        }
        try connection.execute("COMMIT")
        return fingerprint
    }
}
