import ArcaFormat
import ArcaPostgres
import Foundation

/// Reads the connected database's own properties and the roles it refers
/// to, each in one set-based catalog query. In a backup they run inside
/// the snapshot transaction (shared catalogs are read in it too).
enum DatabaseCapture {
    /// Encoding, locale, owner, comment, options, privileges, settings
    /// (the database's and its roles' in it), security labels, extensions.
    static func properties(_ connection: PostgresConnection) throws -> Manifest.Database {
        let version = connection.serverVersionNumber
        // The locale columns moved between versions: 15 added the provider
        // and ICU locale, 16 the ICU rules, 17 renamed the locale column.
        let provider = version >= 150000 ? "d.datlocprovider::text" : "'c'"
        let locale = version >= 170000 ? "d.datlocale" : version >= 150000 ? "d.daticulocale" : "NULL::text"
        let rules = version >= 160000 ? "d.daticurules" : "NULL::text"
        let during = "reading the database's properties"
        let result = try connection.execute(
            """
            SELECT pg_catalog.pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, \(provider), \(locale), \(rules),
                   pg_catalog.pg_get_userbyid(d.datdba), pg_catalog.shobj_description(d.oid, 'pg_database'),
                   d.datconnlimit, d.datallowconn, d.datistemplate, d.datacl IS NULL,
                   (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(
                               CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
                               a.privilege_type, a.is_grantable) ORDER BY a.grantee, a.privilege_type)
                      FROM pg_catalog.aclexplode(d.datacl) a)::text,
                   (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(
                               CASE WHEN s.setrole = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(s.setrole) END, c.setting)
                               ORDER BY s.setrole, c.ordinal)
                      FROM pg_catalog.pg_db_role_setting s,
                           pg_catalog.unnest(s.setconfig) WITH ORDINALITY AS c(setting, ordinal)
                     WHERE s.setdatabase = d.oid)::text,
                   (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(l.provider, l.label) ORDER BY l.provider)
                      FROM pg_catalog.pg_shseclabel l
                     WHERE l.objoid = d.oid AND l.classoid = 'pg_catalog.pg_database'::pg_catalog.regclass)::text,
                   (SELECT pg_catalog.json_agg(e.extname ORDER BY e.extname) FROM pg_catalog.pg_extension e)::text
              FROM pg_catalog.pg_database d
             WHERE d.datname = pg_catalog.current_database()
            """, during: during)
        guard let row = result.rows.first, let encoding = row[0], let collate = row[1], let ctype = row[2], let owner = row[6] else {
            throw PostgresError.unexpectedResponse(during: during, message: "the database has no catalog row")
        }
        let providers = ["c": "libc", "i": "icu", "b": "builtin"]
        var database = Manifest.Database(
            encoding: encoding, collate: collate, ctype: ctype, localeProvider: providers[row[3] ?? "c"] ?? "libc",
            locale: row[4], icuRules: row[5], owner: owner, comment: row[7],
            connectionLimit: row[8].flatMap { Int($0) } ?? -1, allowConnections: row[9] != "f", isTemplate: row[10] == "t")
        if database.localeProvider == "libc" { database.locale = nil }
        if row[11] != "t" {
            database.privileges = try decodeRows(row[12], width: 3, during: during).map { fields in
                Manifest.Database.Privilege(grantee: fields[0].string, privilege: fields[1].string ?? "", grantable: fields[2].bool)
            }
        }
        database.settings = try decodeRows(row[13], width: 2, during: during).compactMap { fields in
            // Stored as `name=value`; the name never holds `=`.
            guard let pair = fields[1].string, let equals = pair.firstIndex(of: "=") else { return nil }
            return Manifest.Database.Setting(
                role: fields[0].string, name: String(pair[..<equals]), value: String(pair[pair.index(after: equals)...]))
        }
        database.securityLabels = try decodeRows(row[14], width: 2, during: during).map { fields in
            Manifest.Database.SecurityLabel(provider: fields[0].string ?? "", label: fields[1].string ?? "")
        }
        database.extensions = try decodeStrings(row[15], during: during)
        return database
    }

    /// The roles the database refers to: owners of its objects and of
    /// itself, grantees of their privileges and of default privileges,
    /// roles named by row-security policies, roles with settings in it;
    /// then, for their memberships, every role they are (indirectly)
    /// members of and every (indirect) member of them. Password hashes only
    /// when asked (reading `pg_authid` needs a superuser).
    static func roles(_ connection: PostgresConnection, withPasswords: Bool) throws -> [Manifest.Role] {
        let password = withPasswords ? "(SELECT a.rolpassword FROM pg_catalog.pg_authid a WHERE a.oid = r.oid)" : "NULL::text"
        let during = "reading the roles the database refers to"
        // pg_shdepend does not record the bootstrap superuser (OID 10,
        // pinned): whether it owns user objects (OID 16384 and up) is asked
        // of the catalogs that hold what pg_dump gives an owner. Objects of
        // extensions are left out (the schema creates them with the
        // extension, under the restoring role), and so are the objects that
        // come with another one (indexes, TOAST tables, row and array types).
        let ownedByBootstrap = [
            ("pg_class", "relowner", "o.relkind NOT IN ('i', 'I', 't')"), ("pg_namespace", "nspowner", ""), ("pg_proc", "proowner", ""),
            ("pg_type", "typowner", "o.typrelid = 0 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type a WHERE a.typarray = o.oid)"),
            ("pg_collation", "collowner", ""), ("pg_conversion", "conowner", ""), ("pg_operator", "oprowner", ""),
            ("pg_opclass", "opcowner", ""), ("pg_opfamily", "opfowner", ""), ("pg_ts_dict", "dictowner", ""), ("pg_ts_config", "cfgowner", ""),
            ("pg_statistic_ext", "stxowner", ""), ("pg_foreign_data_wrapper", "fdwowner", ""), ("pg_foreign_server", "srvowner", ""),
            ("pg_event_trigger", "evtowner", ""), ("pg_publication", "pubowner", ""), ("pg_largeobject_metadata", "lomowner", ""),
        ].map { catalog, owner, condition in
            "SELECT 1 FROM pg_catalog.\(catalog) o WHERE o.\(owner) = 10 AND o.oid >= 16384\(condition.isEmpty ? "" : " AND " + condition)"
                + " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.\(catalog)'::pg_catalog.regclass"
                + " AND e.objid = o.oid AND e.deptype = 'e')"
        }.joined(separator: " UNION ALL ")
        let result = try connection.execute(
            """
            WITH RECURSIVE
            db AS (SELECT oid, datdba, datacl FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()),
            refs(role, kind) AS (
                SELECT s.refobjid,
                       CASE WHEN s.deptype = 'r' THEN 'policy'
                            WHEN s.deptype = 'o' AND s.classid <> 'pg_catalog.pg_default_acl'::pg_catalog.regclass THEN 'owner'
                            ELSE 'grantee' END
                  FROM pg_catalog.pg_shdepend s, db
                 WHERE s.dbid = db.oid AND s.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
                   AND s.deptype IN ('o', 'a', 'r')
                   AND s.classid <> 'pg_catalog.pg_extension'::pg_catalog.regclass
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                                    WHERE e.classid = s.classid AND e.objid = s.objid AND e.deptype = 'e')
                UNION SELECT datdba, 'databaseOwner' FROM db
                UNION SELECT a.grantee, 'databaseGrantee' FROM db, pg_catalog.aclexplode(db.datacl) a WHERE a.grantee <> 0
                UNION SELECT s.setrole, 'setting' FROM pg_catalog.pg_db_role_setting s, db
                       WHERE s.setdatabase = db.oid AND s.setrole <> 0
                UNION SELECT 10::pg_catalog.oid, 'owner' WHERE EXISTS (\(ownedByBootstrap))),
            up(role) AS (SELECT role FROM refs
                         UNION SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN up ON m.member = up.role),
            down(role) AS (SELECT role FROM refs
                           UNION SELECT m.member FROM pg_catalog.pg_auth_members m JOIN down ON m.roleid = down.role),
            recorded(role) AS (SELECT role FROM up UNION SELECT role FROM down)
            SELECT r.rolname,
                   (SELECT pg_catalog.json_agg(DISTINCT refs.kind) FROM refs WHERE refs.role = r.oid)::text,
                   r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication, r.rolbypassrls,
                   r.rolconnlimit, r.rolvaliduntil::text,
                   (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(p.rolname, m.admin) ORDER BY p.rolname)
                      FROM (SELECT roleid, pg_catalog.bool_or(admin_option) AS admin FROM pg_catalog.pg_auth_members
                             WHERE member = r.oid AND roleid IN (SELECT role FROM recorded) GROUP BY roleid) m
                      JOIN pg_catalog.pg_roles p ON p.oid = m.roleid)::text,
                   \(password)
              FROM pg_catalog.pg_roles r
             WHERE r.oid IN (SELECT role FROM recorded)
             ORDER BY r.rolname
            """, during: during)
        return try result.rows.map { row in
            guard let name = row[0] else { throw PostgresError.unexpectedResponse(during: during, message: "a role has no name") }
            return Manifest.Role(
                name: name, references: try decodeStrings(row[1], during: during), superuser: row[2] == "t", inherit: row[3] == "t",
                createRole: row[4] == "t", createDatabase: row[5] == "t", login: row[6] == "t", replication: row[7] == "t",
                bypassRowSecurity: row[8] == "t", connectionLimit: row[9].flatMap { Int($0) } ?? -1, validUntil: row[10],
                passwordHash: row[12],
                memberOf: try decodeRows(row[11], width: 2, during: during).map {
                    Manifest.Role.Membership(role: $0[0].string ?? "", admin: $0[1].bool)
                })
        }
    }

    /// A JSON array of arrays of `width` values from
    /// `json_agg(json_build_array(…))`; nil (no rows aggregated) is none.
    static func decodeRows(_ json: String?, width: Int, during: String) throws -> [[JSONScalar]] {
        guard let json else { return [] }
        guard let rows = try? JSONDecoder().decode([[JSONScalar]].self, from: Data(json.utf8)),
              rows.allSatisfy({ $0.count == width }) else {
            throw PostgresError.unexpectedResponse(during: during, message: "malformed JSON from the catalog")
        }
        return rows
    }

    /// A JSON array of strings from `json_agg`; nil is none.
    static func decodeStrings(_ json: String?, during: String) throws -> [String] {
        guard let json else { return [] }
        guard let strings = try? JSONDecoder().decode([String].self, from: Data(json.utf8)) else {
            throw PostgresError.unexpectedResponse(during: during, message: "malformed JSON from the catalog")
        }
        return strings
    }

    /// A string, boolean or null in a row of `decodeRows`.
    enum JSONScalar: Decodable {
        case string(String)
        case bool(Bool)
        case null

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let value = try? container.decode(Bool.self) {
                self = .bool(value)
            } else {
                self = .string(try container.decode(String.self))
            }
        }

        var string: String? {
            if case .string(let value) = self { return value }
            return nil
        }

        var bool: Bool {
            if case .bool(let value) = self { return value }
            return false
        }
    }
}
