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
/// and the same large objects; the same owners and privileges of schemas,
/// relations, columns, functions and default privileges; and the databases'
/// own properties (encoding, locale, owner, comment, settings, privileges,
/// options, security labels, extensions), not their names. Runs entirely in
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
        let differences = Self.differences(a, b)
        return DatabaseComparisonResult(
            equal: differences.isEmpty,
            tables: Set(a.keys).union(b.keys).filter { $0.hasPrefix("table ") }.count,
            sequences: Set(a.keys).union(b.keys).filter { $0.hasPrefix("sequence ") }.count,
            differences: differences)
    }

    /// One line per key whose value differs between two fingerprints.
    static func differences(_ a: [String: String], _ b: [String: String]) -> [String] {
        var differences: [String] = []
        for key in Set(a.keys).union(b.keys).sorted() {
            switch (a[key], b[key]) {
            case (let left?, nil): differences.append("\(key): only in the first database (\(left))")
            case (nil, let right?): differences.append("\(key): only in the second database (\(right))")
            case (let left?, let right?) where left != right: differences.append("\(key): \(left) vs \(right)")
            default: break
            }
        }
        return differences
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
        fingerprint.merge(try Self.databaseProperties(connection)) { first, _ in first }
        fingerprint.merge(try Self.ownersAndPrivileges(connection)) { first, _ in first }
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

    /// The database's own properties, one entry each (settings and security
    /// labels one per setting and provider).
    static func databaseProperties(_ connection: PostgresConnection) throws -> [String: String] {
        let database = try DatabaseCapture.properties(connection)
        var entries: [String: String] = [
            "database encoding and locale": ["\(database.encoding)", "collate \(database.collate)", "ctype \(database.ctype)",
                                             "provider \(database.localeProvider)"]
                .joined(separator: ", ") + (database.locale.map { ", locale \($0)" } ?? "") + (database.icuRules.map { ", rules \($0)" } ?? ""),
            "database owner": DisplayName.role(database.owner),
            "database comment": database.comment.map(SQLIdentifier.literal) ?? "none",
            "database options": "connection limit \(database.connectionLimit), allow connections \(database.allowConnections), template \(database.isTemplate)",
            "database privileges": database.privileges.map { privileges in
                privileges.map { "\($0.grantee.map(DisplayName.role) ?? "PUBLIC") \($0.privilege)\($0.grantable ? " with grant option" : "")" }
                    .sorted().joined(separator: ", ")
            } ?? "default",
            "database extensions": database.extensions.joined(separator: ", "),
        ]
        for setting in database.settings {
            entries["database setting \(setting.role.map { "of role \(DisplayName.role($0))" } ?? "for all roles") \(setting.name)"] = setting.value
        }
        for label in database.securityLabels {
            entries["database security label \(DisplayName.role(label.provider))"] = SQLIdentifier.literal(label.label)
        }
        return entries
    }

    /// `"owner and privileges of <kind> <name>"` → the owner and the
    /// privileges (grantee, privilege, grant option; not the grantor), for
    /// every schema, relation, column with privileges, function and default
    /// privilege entry that is not a system's or an extension's.
    static func ownersAndPrivileges(_ connection: PostgresConnection) throws -> [String: String] {
        let result = try connection.execute(
            """
            WITH objects(kind, name, owner, acl) AS (
                SELECT 'schema', pg_catalog.quote_ident(n.nspname), n.nspowner, n.nspacl
                  FROM pg_catalog.pg_namespace n
                 WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
                UNION ALL
                SELECT 'relation', c.oid::pg_catalog.regclass::text, c.relowner, c.relacl
                  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                   AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')
                UNION ALL
                SELECT 'column', c.oid::pg_catalog.regclass::text || '.' || pg_catalog.quote_ident(a.attname), NULL, a.attacl
                  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE a.attacl IS NOT NULL AND NOT a.attisdropped
                   AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
                UNION ALL
                SELECT 'function', p.oid::pg_catalog.regprocedure::text, p.proowner, p.proacl
                  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                    WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e')
                UNION ALL
                SELECT 'default privileges', 'for ' || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(d.defaclrole))
                       || COALESCE(' in schema ' || pg_catalog.quote_ident(n.nspname), '') || ' on ' || d.defaclobjtype::text,
                       NULL, d.defaclacl
                  FROM pg_catalog.pg_default_acl d LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace)
            SELECT o.kind || ' ' || o.name,
                   COALESCE('owner ' || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(o.owner)), ''),
                   COALESCE((SELECT pg_catalog.string_agg(g.item, ', ' ORDER BY g.item)
                               FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END
                                            || ' ' || a.privilege_type || CASE WHEN a.is_grantable THEN ' with grant option' ELSE '' END
                                       FROM pg_catalog.aclexplode(o.acl) a) AS g(item)), 'default')
              FROM objects o
            """, during: "listing owners and privileges")
        var entries: [String: String] = [:]
        for row in result.rows {
            guard let name = row[0] else { continue }
            entries["owner and privileges of \(name)"] = [row[1], "privileges " + (row[2] ?? "default")].compactMap { $0 }
                .filter { !$0.isEmpty }.joined(separator: "; ")
        }
        return entries
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
