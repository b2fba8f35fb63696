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
/// and materialized views with the same columns and types, the same rows (as
/// a multiset, so physical order does not matter), the same sequence states
/// and the same large objects. Runs entirely in
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
             WHERE c.relkind IN ('r', 'p', 'S', 'm')
               AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                  AND d.objid = c.oid AND d.deptype = 'e')
             ORDER BY 1
            """, during: "listing relations")
        for (index, row) in relations.rows.enumerated() {
            // Reading a relation locks it until the transaction ends: every
            // 100 relations the locks are released (the snapshot stays), so
            // a database of many tables does not fill the server's lock table.
            if index % 100 == 0 {
                try connection.execute(index == 0 ? "SAVEPOINT arca_compare" : "ROLLBACK TO SAVEPOINT arca_compare", during: "releasing locks")
            }
            guard let name = row[0], let kind = row[1] else { continue }
            switch kind {
            case "S":
                let state = try connection.execute(
                    "SELECT last_value::text || CASE WHEN is_called THEN ' called' ELSE ' not called' END FROM \(name)",
                    during: "reading sequence \(name)")
                fingerprint["sequence \(name)"] = state.singleValue ?? "?"
            case "p":
                fingerprint["table \(name)"] = "partitioned (\(row[2] ?? ""))"
            case "m":
                let populated = try connection.execute(
                    "SELECT relispopulated FROM pg_catalog.pg_class WHERE oid = \(SQLIdentifier.literal(name))::pg_catalog.regclass"
                ).singleValue == "t"
                fingerprint["materialized view \(name)"] = populated
                    ? "(\(row[2] ?? "")) " + (try rowHash(name, connection)) : "not populated"
            default:
                fingerprint["table \(name)"] = "(\(row[2] ?? "")) " + (try rowHash(name, connection))
            }
        }
        // Large objects: content digest and owner, one at a time.
        let objects = try connection.execute(
            "SELECT oid::text, pg_catalog.pg_get_userbyid(lomowner) FROM pg_catalog.pg_largeobject_metadata ORDER BY oid",
            during: "listing large objects")
        for row in objects.rows {
            guard let oid = row[0] else { continue }
            let digest = try connection.execute(
                "SELECT pg_catalog.md5(pg_catalog.lo_get(\(oid)::pg_catalog.oid))", during: "hashing large object \(oid)").singleValue
            fingerprint["large object \(oid)"] = "md5 \(digest ?? "?"), owner \(row[1] ?? "?")"
        }
        try connection.execute("COMMIT")
        return fingerprint
    }

    /// A table's rows as a multiset: the count and two 64-bit sums of row MD5s.
    static func rowHash(_ name: String, _ connection: PostgresConnection) throws -> String {
        try connection.execute(
            """
            SELECT pg_catalog.count(*)::text || ' rows, hash ' ||
                   COALESCE(pg_catalog.sum(('x' || pg_catalog.substr(h, 1, 16))::bit(64)::bigint::numeric), 0)::text || '/' ||
                   COALESCE(pg_catalog.sum(('x' || pg_catalog.substr(h, 17, 16))::bit(64)::bigint::numeric), 0)::text
              FROM (SELECT pg_catalog.md5(t::text) AS h FROM ONLY \(name) AS t) rows
            """, during: "hashing the rows of \(name)"
        ).singleValue ?? "?"
    }
}
