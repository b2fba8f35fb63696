import ArcaFormat
import ArcaPostgres
import Foundation

/// What a restore does around the schema and rows for the database itself
/// and for the roles (the manifest's `database` and `roles`):
///
/// - the pre-flight: before anything is created, what the target server
///   lacks (locale, extensions, roles), all of it in one error;
/// - `--create-roles`: the missing roles, before the schema, then their
///   memberships; dropped again if the restore fails;
/// - `--create`: `CREATE DATABASE` with the source's encoding and locale,
///   and, once the data is in, its owner, comment, settings, privileges,
///   connection limit, security labels, then `ALLOW_CONNECTIONS` and
///   `IS_TEMPLATE` (last: a template cannot be dropped, and a closed
///   database not connected to).
struct DatabaseSetup: Sendable {
    let manifest: Manifest
    let choices: RestoreChoices

    var database: Manifest.Database? { manifest.database }

    // MARK: Pre-flight

    /// Everything the target server lacks for this restore, one phrase
    /// each; empty when it has everything. `connection` is to the server's
    /// maintenance database with `--create`, else to the target.
    func missing(on connection: PostgresConnection) throws -> [String] {
        var missing: [String] = []
        if choices.create, let database {
            missing += try missingLocale(database, connection)
        }
        if !choices.dataOnly, let database, !database.extensions.isEmpty {
            let absent = try absentNames(
                database.extensions, existing: "SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = e", connection)
            missing += absent.map { "extension \(DisplayName.role($0)) (not available on the target server: install its package there)" }
        }
        if let roles = manifest.roles, !choices.dataOnly {
            let needed = neededRoles(roles)
            let existing = try existingRoles(connection)
            let absent = needed.filter { !existing.contains($0) }.sorted()
            if choices.createRoles {
                // Names with the prefix pg_ are reserved for the server's own roles.
                missing += absent.filter { $0.hasPrefix("pg_") }.map {
                    "role \(DisplayName.role($0)) (a predefined role this server version does not have; it cannot be created)"
                }
                let toCreate = roles.filter { !existing.contains($0.name) && !$0.name.hasPrefix("pg_") }
                if !toCreate.isEmpty, let restorer = try restoringRole(connection), !restorer.superuser, !restorer.createRole {
                    missing.append(
                        "the privilege to create roles: \(DisplayName.role(connection.user)) has neither SUPERUSER nor CREATEROLE, and \(toCreate.count) role(s) must be created")
                }
            } else {
                missing += absent.map { "role \(DisplayName.role($0))" }
            }
        }
        return missing
    }

    /// The roles this restore needs to exist: owners (unless `--no-owner`),
    /// grantees (unless `--no-privileges`), roles of row-security policies;
    /// with `--create` also the database's owner, grantees and roles with
    /// settings in it.
    func neededRoles(_ roles: [Manifest.Role]) -> Set<String> {
        var kinds: Set<String> = ["policy"]
        if !choices.noOwner { kinds.insert("owner") }
        if !choices.noPrivileges { kinds.insert("grantee") }
        var needed = Set(roles.filter { !kinds.isDisjoint(with: $0.references) }.map(\.name))
        if choices.create, let database {
            if !choices.noOwner { needed.insert(database.owner) }
            if !choices.noPrivileges {
                needed.formUnion((database.privileges ?? []).compactMap(\.grantee).filter { !(choices.noOwner && $0 == database.owner) })
            }
            needed.formUnion(database.settings.compactMap(\.role))
        }
        return needed
    }

    private func missingLocale(_ database: Manifest.Database, _ connection: PostgresConnection) throws -> [String] {
        var missing: [String] = []
        let version = connection.serverVersionNumber
        let locale = database.locale ?? ""
        switch database.localeProvider {
        case "icu":
            if version < 150000 {
                missing.append("the ICU locale provider (ICU locale \(DisplayName.role(locale))): it needs PostgreSQL 15 or later")
            } else if !(try icuLocaleAvailable(locale, connection)) {
                missing.append("ICU locale \(DisplayName.role(locale)) (the target server's ICU does not know its language, or the server was built without ICU)")
            }
            if database.icuRules != nil, version < 160000 {
                missing.append("ICU collation rules: they need PostgreSQL 16 or later")
            }
        case "builtin":
            let known: Set<String> = version >= 180000 ? ["C", "C.UTF-8", "PG_UNICODE_FAST"] : version >= 170000 ? ["C", "C.UTF-8"] : []
            if !known.contains(locale) {
                missing.append("builtin locale \(DisplayName.role(locale)) (not provided by PostgreSQL \(version / 10000))")
            }
        default:
            break
        }
        var probed = Set<String>()
        for (what, name) in [("LC_COLLATE", database.collate), ("LC_CTYPE", database.ctype)] where probed.insert(name).inserted {
            if !(try libcLocaleAvailable(name, connection)) {
                missing.append("operating system locale \(DisplayName.role(name)) (\(what)): install it on the target server's machine")
            }
        }
        return missing
    }

    /// Creating a collation makes the server load the locale: a temporary
    /// one, in a transaction that is rolled back, tells whether the
    /// server's operating system has it. A probe the role may not run is
    /// not a verdict: then `CREATE DATABASE` decides.
    private func libcLocaleAvailable(_ name: String, _ connection: PostgresConnection) throws -> Bool {
        if ["C", "POSIX"].contains(name) { return true }
        try connection.execute("BEGIN", during: "checking locale \(name)")
        defer { _ = try? connection.execute("ROLLBACK") }
        do {
            try connection.execute(
                "CREATE COLLATION pg_temp.arca_locale_probe (provider = libc, locale = \(SQLIdentifier.literal(name)))",
                during: "checking locale \(name)")
            return true
        } catch let error as PostgresError where error.sqlState == "22023" || error.sqlState == "0A000" {
            return false
        } catch let error as PostgresError {
            if case .connectionLost = error { throw error }
            return true
        }
    }

    /// An ICU locale is taken as available when the server has ICU
    /// collations for its language (`initdb` imports one per ICU locale).
    private func icuLocaleAvailable(_ locale: String, _ connection: PostgresConnection) throws -> Bool {
        let column = connection.serverVersionNumber >= 170000 ? "colllocale" : "colliculocale"
        let result = try connection.query(
            """
            SELECT EXISTS (
                SELECT 1 FROM pg_catalog.pg_collation
                 WHERE collprovider = 'i'
                   AND (\(column) = $1
                        OR pg_catalog.lower(pg_catalog.split_part(pg_catalog.replace(\(column), '_', '-'), '-', 1))
                         = pg_catalog.lower(pg_catalog.split_part(pg_catalog.replace(pg_catalog.split_part($1, '@', 1), '_', '-'), '-', 1))))
            """, [locale], during: "checking ICU locale \(locale)")
        return result.singleValue == "t"
    }

    /// Those of `names` for which `existing` (a query on `e`) finds nothing.
    private func absentNames(_ names: [String], existing: String, _ connection: PostgresConnection) throws -> [String] {
        let list = String(decoding: try JSONEncoder().encode(names), as: UTF8.self)
        return try connection.query(
            "SELECT e FROM pg_catalog.jsonb_array_elements_text($1::pg_catalog.jsonb) e WHERE NOT EXISTS (\(existing)) ORDER BY 1",
            [list], during: "checking what the target server provides"
        ).rows.compactMap { $0[0] }
    }

    /// The recorded roles that exist on the target server.
    func existingRoles(_ connection: PostgresConnection) throws -> Set<String> {
        let names = (manifest.roles ?? []).map(\.name) + [database?.owner].compactMap { $0 }
        let absent = Set(try absentNames(names, existing: "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = e", connection))
        return Set(names).subtracting(absent)
    }

    struct RestoringRole {
        var superuser: Bool
        var createRole: Bool
    }

    private func restoringRole(_ connection: PostgresConnection) throws -> RestoringRole? {
        let row = try connection.execute(
            "SELECT rolsuper, rolcreaterole FROM pg_catalog.pg_roles WHERE rolname = CURRENT_USER", during: "reading the restoring role"
        ).rows.first
        return row.map { RestoringRole(superuser: $0[0] == "t", createRole: $0[1] == "t") }
    }

    // MARK: Roles

    /// What `--create-roles` did, for the result and for undoing it.
    struct RoleCreation: Sendable {
        var created: [String] = []
        var existing: [String] = []
        var notices: [String] = []
    }

    /// Creates the recorded roles the server does not have, with their
    /// attributes (and password hashes when the archive has them), then the
    /// memberships that involve a role created now, in one transaction.
    /// Existing roles are left as they are. SUPERUSER, REPLICATION and
    /// BYPASSRLS are given only by a restoring superuser (the server
    /// allows nothing else), and either way each such role is listed.
    func createRoles(_ connection: PostgresConnection) throws -> RoleCreation {
        let roles = manifest.roles ?? []
        let existing = try existingRoles(connection)
        var outcome = RoleCreation(existing: roles.map(\.name).filter(existing.contains))
        let toCreate = roles.filter { !existing.contains($0.name) && !$0.name.hasPrefix("pg_") }
        guard !toCreate.isEmpty else { return outcome }
        let superuser = try restoringRole(connection)?.superuser ?? false
        let what = "creating the archive's roles (--create-roles)"
        try connection.execute("BEGIN", during: what)
        do {
            for role in toCreate {
                let privileged = [("SUPERUSER", role.superuser), ("REPLICATION", role.replication), ("BYPASSRLS", role.bypassRowSecurity)]
                    .filter { $0.1 }.map { $0.0 }
                var attributes = [
                    role.login ? "LOGIN" : "NOLOGIN", role.inherit ? "INHERIT" : "NOINHERIT",
                    role.createDatabase ? "CREATEDB" : "NOCREATEDB", role.createRole ? "CREATEROLE" : "NOCREATEROLE",
                    "CONNECTION LIMIT \(role.connectionLimit)",
                ]
                if superuser { attributes += privileged }
                if let validUntil = role.validUntil { attributes.append("VALID UNTIL \(SQLIdentifier.literal(validUntil))") }
                let name = SQLIdentifier.quote(role.name)
                try connection.execute("CREATE ROLE \(name) WITH \(attributes.joined(separator: " "))", during: "creating role \(DisplayName.role(role.name))")
                if let hash = role.passwordHash {
                    // The statement holds the hash: its errors name the role only.
                    try connection.execute("ALTER ROLE \(name) PASSWORD \(SQLIdentifier.literal(hash))", during: "setting the password of role \(DisplayName.role(role.name))")
                }
                if !privileged.isEmpty {
                    outcome.notices.append(superuser
                        ? "role \(DisplayName.role(role.name)) was created with \(privileged.joined(separator: ", ")), as in the source"
                        : "role \(DisplayName.role(role.name)) was created without \(privileged.joined(separator: ", ")) (only a superuser may give them): grant them yourself if it needs them")
                }
                outcome.created.append(role.name)
            }
            let created = Set(outcome.created)
            for role in roles {
                for membership in role.memberOf where created.contains(role.name) || created.contains(membership.role) {
                    guard existing.contains(membership.role) || created.contains(membership.role) else { continue }
                    try connection.execute(
                        "GRANT \(SQLIdentifier.quote(membership.role)) TO \(SQLIdentifier.quote(role.name))\(membership.admin ? " WITH ADMIN OPTION" : "")",
                        during: "granting role \(DisplayName.role(membership.role)) to \(DisplayName.role(role.name))")
                }
            }
            try connection.execute("COMMIT", during: what)
        } catch {
            if connection.isAlive { _ = try? connection.execute("ROLLBACK") }
            throw RestoreError.step(what, error)
        }
        return outcome
    }

    /// Undoes `createRoles` after a failed restore (once the database the
    /// roles might own objects in is gone). Best effort, role by role.
    static func dropRoles(_ names: [String], target: ConnectionString) {
        guard !names.isEmpty,
              let connection = try? PostgresConnection(target.replacing(database: "postgres"), applicationName: "arca restore")
        else { return }
        for name in names.reversed() {
            _ = try? connection.execute("DROP ROLE IF EXISTS \(SQLIdentifier.quote(name))")
        }
    }

    // MARK: The database

    /// `CREATE DATABASE` with the source's encoding and locale (with only
    /// the encoding for an archive that does not record the locale). The
    /// locale provider is always named: otherwise the new database takes
    /// template0's, which need not be the source's.
    static func createStatement(_ name: String, encoding: String, database: Manifest.Database?, serverVersion: Int) -> String {
        var sql = "CREATE DATABASE \(SQLIdentifier.quote(name)) TEMPLATE template0 ENCODING \(SQLIdentifier.literal(encoding))"
        guard let database else { return sql }
        sql += " LC_COLLATE \(SQLIdentifier.literal(database.collate)) LC_CTYPE \(SQLIdentifier.literal(database.ctype))"
        guard serverVersion >= 150000 else { return sql }
        // Validated against a fixed list (FORMAT.md): a keyword, not text of the archive.
        sql += " LOCALE_PROVIDER \(database.localeProvider)"
        if let locale = database.locale {
            if database.localeProvider == "icu" { sql += " ICU_LOCALE \(SQLIdentifier.literal(locale))" }
            if database.localeProvider == "builtin" { sql += " BUILTIN_LOCALE \(SQLIdentifier.literal(locale))" }
        }
        if let rules = database.icuRules, database.localeProvider == "icu" { sql += " ICU_RULES \(SQLIdentifier.literal(rules))" }
        return sql
    }

    /// The statements that give database `name` the source's owner,
    /// comment, settings, privileges, connection limit and security labels.
    /// Built before anything is created, so a malformed value fails first.
    func propertyStatements(for name: String) throws -> [String] {
        guard let database else { return [] }
        let quoted = SQLIdentifier.quote(name)
        var statements: [String] = []
        if !choices.noOwner { statements.append("ALTER DATABASE \(quoted) OWNER TO \(SQLIdentifier.quote(database.owner))") }
        if let comment = database.comment { statements.append("COMMENT ON DATABASE \(quoted) IS \(SQLIdentifier.literal(comment))") }
        for setting in database.settings {
            let target = setting.role.map { "ALTER ROLE \(SQLIdentifier.quote($0)) IN DATABASE \(quoted)" } ?? "ALTER DATABASE \(quoted)"
            statements.append("\(target) SET \(try Self.settingAssignment(setting))")
        }
        if !choices.noPrivileges, let privileges = database.privileges {
            let owner = choices.noOwner ? "CURRENT_USER" : SQLIdentifier.quote(database.owner)
            statements.append("REVOKE ALL ON DATABASE \(quoted) FROM PUBLIC")
            statements.append("REVOKE ALL ON DATABASE \(quoted) FROM \(owner)")
            for privilege in privileges {
                let grantee = privilege.grantee.map { choices.noOwner && $0 == database.owner ? "CURRENT_USER" : SQLIdentifier.quote($0) } ?? "PUBLIC"
                // The privilege is one of three keywords (validated).
                statements.append("GRANT \(privilege.privilege) ON DATABASE \(quoted) TO \(grantee)\(privilege.grantable ? " WITH GRANT OPTION" : "")")
            }
        }
        if database.connectionLimit != -1 { statements.append("ALTER DATABASE \(quoted) CONNECTION LIMIT \(database.connectionLimit)") }
        for label in database.securityLabels {
            statements.append("SECURITY LABEL FOR \(SQLIdentifier.quote(label.provider)) ON DATABASE \(quoted) IS \(SQLIdentifier.literal(label.label))")
        }
        return statements
    }

    /// `ALLOW_CONNECTIONS` and `IS_TEMPLATE` as in the source: applied last.
    func finalStatements(for name: String) -> [String] {
        guard let database else { return [] }
        let quoted = SQLIdentifier.quote(name)
        var statements: [String] = []
        if !database.allowConnections { statements.append("ALTER DATABASE \(quoted) WITH ALLOW_CONNECTIONS false") }
        if database.isTemplate { statements.append("ALTER DATABASE \(quoted) WITH IS_TEMPLATE true") }
        return statements
    }

    /// Runs `statements` in one transaction on the server's maintenance database.
    static func apply(_ statements: [String], target: ConnectionString, during what: String) throws {
        guard !statements.isEmpty else { return }
        let connection = try PostgresConnection(target.replacing(database: "postgres"), applicationName: "arca restore")
        do {
            try connection.execute("BEGIN", during: what)
            for statement in statements { try connection.execute(statement, during: what) }
            try connection.execute("COMMIT", during: what)
        } catch {
            if connection.isAlive { _ = try? connection.execute("ROLLBACK") }
            throw RestoreError.step(what, error)
        }
    }

    /// Parameters whose stored value is a list of identifiers the server
    /// quoted (GUC_LIST_QUOTE): each element must be given as its own
    /// literal, or the server would take the whole list for one name. The
    /// same list pg_dump keeps.
    static let listQuotedParameters: Set<String> = [
        "local_preload_libraries", "search_path", "session_preload_libraries", "shared_preload_libraries",
        "temp_tablespaces", "unix_socket_directories",
    ]

    /// `"name" TO 'value'` (or `'a', 'b'` for a list) for `SET`.
    static func settingAssignment(_ setting: Manifest.Database.Setting) throws -> String {
        let name = setting.name.split(separator: ".", omittingEmptySubsequences: false).map { SQLIdentifier.quote(String($0)) }
            .joined(separator: ".")
        guard listQuotedParameters.contains(setting.name.lowercased()) else { return "\(name) TO \(SQLIdentifier.literal(setting.value))" }
        guard let elements = splitList(setting.value) else {
            throw RestoreError.invalidOptions("The archive's database setting \(setting.name) holds a malformed list, so it cannot be restored.")
        }
        return "\(name) TO " + (elements.isEmpty ? "DEFAULT" : elements.map(SQLIdentifier.literal).joined(separator: ", "))
    }

    /// Splits a stored list value the way the server does (SplitGUCList):
    /// elements separated by commas, double-quoted ones with `""` for a
    /// quote inside. nil when it is malformed.
    static func splitList(_ text: String) -> [String]? {
        var characters = Substring(text)
        func skipSpaces() { characters = characters.drop { $0.isWhitespace } }
        var elements: [String] = []
        skipSpaces()
        guard !characters.isEmpty else { return [] }
        while true {
            var element = ""
            if characters.first == "\"" {
                characters = characters.dropFirst()
                while true {
                    guard let next = characters.first else { return nil }
                    characters = characters.dropFirst()
                    if next == "\"" {
                        guard characters.first == "\"" else { break }
                        characters = characters.dropFirst()
                    }
                    element.append(next)
                }
            } else {
                element = String(characters.prefix { $0 != "," && !$0.isWhitespace })
                characters = characters.dropFirst(element.count)
                guard !element.isEmpty else { return nil }
            }
            elements.append(element)
            skipSpaces()
            guard let separator = characters.first else { return elements }
            guard separator == "," else { return nil }
            characters = characters.dropFirst()
            skipSpaces()
        }
    }
}

/// How messages and listings show a name read from an archive or a catalog.
public enum DisplayName {
    /// Quoted as an identifier, with control characters escaped, so that a
    /// hostile name (a newline, an escape sequence) cannot forge output lines.
    public static func role(_ name: String) -> String {
        var shown = ""
        for scalar in SQLIdentifier.quote(name).unicodeScalars {
            if scalar.properties.generalCategory == .control {
                shown += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                shown.unicodeScalars.append(scalar)
            }
        }
        return shown
    }

    /// `schema.name`, each part shown as `role` shows a name.
    public static func table(_ schema: String, _ name: String) -> String { role(schema) + "." + role(name) }
}
