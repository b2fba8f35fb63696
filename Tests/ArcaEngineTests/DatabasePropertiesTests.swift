@testable import ArcaEngine
import ArcaFormat
import ArcaOperations
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// `restore --create` makes the database the source was (encoding, locale,
/// owner, comment, settings, privileges, options), and `--create-roles`
/// the roles it refers to, on a server that has neither; the pre-flight
/// names everything the target lacks before anything is created.
///
/// Roles are cluster-wide: each test names its own after itself and the
/// process, and drops them at the end.
@Suite struct DatabasePropertiesTests {
    static let quote = SQLIdentifier.quote

    /// A restore into `target` (which must not exist with `create`).
    @discardableResult
    static func restore(_ path: String, into target: TestDatabase, jobs: Int = 1, key: ArchiveKey? = nil,
                        _ configure: (inout RestoreOptions) -> Void) throws -> RestoreResult {
        try Steps.restore(path, into: target) {
            $0.jobs = jobs
            $0.key = key
            configure(&$0)
        }
    }

    static func dropRoles(_ names: [String]) {
        for name in names { try? TestServer.execute("DROP ROLE IF EXISTS \(quote(name))") }
    }

    /// Replaces the test database by one created with `options` (encoding, locale).
    static func recreate(_ database: TestDatabase, _ options: String) throws {
        try TestServer.execute("DROP DATABASE \(quote(database.name)) WITH (FORCE)")
        try TestServer.execute("CREATE DATABASE \(quote(database.name)) TEMPLATE template0 \(options)")
    }

    static func serverValues(_ sql: String, _ parameters: [String?] = []) throws -> [String] {
        let connection = try PostgresConnection(try TestServer.connectionString())
        return try connection.query(sql, parameters).rows.map { $0.map { $0 ?? "NULL" }.joined(separator: "|") }
    }

    static func json(_ names: [String]) -> String { String(decoding: try! JSONEncoder().encode(names), as: UTF8.self) }

    /// The roles' attributes, password hashes and memberships among them, one line each.
    static func roleState(_ names: [String]) throws -> [String] {
        try serverValues(
            """
            SELECT a.rolname, a.rolsuper, a.rolinherit, a.rolcreaterole, a.rolcreatedb, a.rolcanlogin, a.rolreplication,
                   a.rolbypassrls, a.rolconnlimit, a.rolvaliduntil, pg_catalog.md5(COALESCE(a.rolpassword, ''))
              FROM pg_authid a WHERE a.rolname IN (SELECT jsonb_array_elements_text($1::jsonb))
            UNION ALL
            SELECT r.rolname || ' member of ' || g.rolname || CASE WHEN m.admin_option THEN ' with admin' ELSE '' END,
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
              FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid
             WHERE r.rolname IN (SELECT jsonb_array_elements_text($1::jsonb))
            ORDER BY 1
            """, [json(names)])
    }

    static func databaseExists(_ name: String) throws -> Bool {
        try serverValues("SELECT 1 FROM pg_database WHERE datname = $1", [name]).count == 1
    }

    static func shared(_ tool: String, _ database: String) throws -> String? {
        guard let shared = TestPaths.shared else { return nil }
        return try Tool.run(shared + "/tools/" + tool, [database]).stdout
    }

    /// An extension, objects owned by and granted to several roles (one with quotes, a
    /// semicolon and a newline in its name), a membership with ADMIN
    /// OPTION, a member recorded only for that, a per-database role
    /// setting, database settings, a comment, database privileges and a
    /// connection limit: backed up, the database and the roles dropped (a
    /// new server), restored with --create --create-roles: the same
    /// owners, privileges, memberships, attributes (BYPASSRLS included:
    /// the restoring role is a superuser), settings and properties.
    @Test(arguments: [1, 2]) func newServerGetsTheRolesAndTheDatabase(jobs: Int) throws {
        let prefix = "arca_newsrv\(jobs)_\(getpid())"
        let owner = prefix + " \"own\";\nx"
        let (reader, group, member) = (prefix + "_reader", prefix + "_group", prefix + "_member")
        let roles = [owner, reader, group, member]
        let source = try TestDatabase("newsrv\(jobs)_src")
        let target = try TestDatabase("newsrv\(jobs)_dst", creating: false)
        defer {
            source.drop()
            target.drop()
            Self.dropRoles(roles)
        }
        let (o, r, g, m, db) = (Self.quote(owner), Self.quote(reader), Self.quote(group), Self.quote(member), Self.quote(source.name))
        try TestServer.execute("""
            CREATE ROLE \(o) LOGIN CREATEDB CONNECTION LIMIT 5 VALID UNTIL '2099-01-01 00:00:00+00';
            CREATE ROLE \(r) NOINHERIT;
            CREATE ROLE \(g) BYPASSRLS;
            CREATE ROLE \(m) LOGIN;
            GRANT \(g) TO \(r) WITH ADMIN OPTION;
            GRANT \(g) TO \(m);
            ALTER DATABASE \(db) OWNER TO \(o);
            COMMENT ON DATABASE \(db) IS 'ward records; it''s "quoted"';
            ALTER DATABASE \(db) SET search_path = app, "$user", public;
            ALTER DATABASE \(db) SET work_mem = '8MB';
            ALTER ROLE \(r) IN DATABASE \(db) SET statement_timeout = '5s';
            REVOKE ALL ON DATABASE \(db) FROM PUBLIC;
            GRANT CONNECT ON DATABASE \(db) TO \(r);
            GRANT CONNECT, TEMPORARY ON DATABASE \(db) TO \(g) WITH GRANT OPTION;
            ALTER DATABASE \(db) CONNECTION LIMIT 40;
            """)
        try source.execute("""
            CREATE EXTENSION pg_trgm;
            CREATE SCHEMA app AUTHORIZATION \(o);
            CREATE TABLE app.visit (id int PRIMARY KEY, note text);
            INSERT INTO app.visit SELECT n, 'visit ' || n FROM generate_series(1, 50) n;
            ALTER TABLE app.visit OWNER TO \(o);
            GRANT SELECT ON app.visit TO \(r);
            GRANT UPDATE (note) ON app.visit TO \(g);
            ALTER DEFAULT PRIVILEGES FOR ROLE \(o) IN SCHEMA app GRANT SELECT ON TABLES TO \(r);
            """)
        let backup = try Steps.backup(source, into: Steps.repository("newsrv\(jobs)"))
        let manifest = try ArchiveReader(source: try FileSource(path: backup.path)).manifest
        let recorded = try #require(manifest.roles)
        #expect(Set(roles).isSubset(of: Set(recorded.map(\.name))))
        #expect(recorded.first { $0.name == reader }?.memberOf == [Manifest.Role.Membership(role: group, admin: true)])
        #expect(recorded.first { $0.name == member }?.references == [])
        #expect(recorded.allSatisfy { $0.passwordHash == nil })
        #expect(manifest.database?.owner == owner)
        // The extension's objects are the restoring role's to create: their owner is not needed.
        #expect(!recorded.contains { $0.name == "postgres" })
        #expect(manifest.database?.extensions == ["pg_trgm", "plpgsql"])

        let expected = try DatabaseComparison.fingerprint(source.connectionString)
        let expectedRoles = try Self.roleState(roles)
        let expectedShared = try Self.shared("fingerprint.sh", source.name)
        // A new server: neither the database nor its roles exist.
        source.drop()
        Self.dropRoles(roles)

        // Without them, the pre-flight names every role needed, at once, and nothing is created.
        do {
            try Self.restore(backup.path, into: target, jobs: jobs) { $0.create = true }
            Issue.record("restored without the roles")
        } catch RestoreError.targetLacks(let missing) {
            #expect(missing.sorted() == [owner, reader, group].map { "role " + DisplayName.role($0) }.sorted())
            #expect("\(RestoreError.targetLacks(missing))".contains("--create-roles"))
        }
        #expect(try !Self.databaseExists(target.name))

        let result = try Self.restore(backup.path, into: target, jobs: jobs) {
            $0.create = true
            $0.createRoles = true
        }
        #expect(Set(result.createdRoles ?? []) == Set(roles))
        // A privileged attribute is given (the restoring role is a superuser), and said.
        #expect(result.roleNotices == ["role \(DisplayName.role(group)) was created with BYPASSRLS, as in the source"])
        let restored = try DatabaseComparison.fingerprint(target.connectionString)
        let differences = DatabaseComparison.differences(expected, restored)
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")
        #expect(expected["database owner"] == DisplayName.role(owner))
        #expect(expected["database setting of role \(DisplayName.role(reader)) statement_timeout"] == "5s")
        #expect(try Self.roleState(roles) == expectedRoles)
        #expect(try target.value("SELECT count(*) FROM app.visit") == "50")
        if let expectedShared {
            #expect(try Self.shared("fingerprint.sh", target.name) == expectedShared)
        }
    }

    /// A LATIN1 database with the C locale (which `--create` used to fail
    /// on) and an ICU one: restored with the same encoding, locale and
    /// sort order.
    @Test(arguments: [
        ("latin1", "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'", 1),
        ("latin1", "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'", 2),
        ("icu", "ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'de-DE'", 1),
        ("icu", "ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'de-DE'", 2),
    ])
    func localeRoundTrips(label: String, options: String, jobs: Int) throws {
        let source = try TestDatabase("\(label)\(jobs)_src")
        let target = try TestDatabase("\(label)\(jobs)_dst", creating: false)
        defer {
            source.drop()
            target.drop()
        }
        try Self.recreate(source, options)
        let connection = try source.connect()
        try connection.execute("SET client_encoding = 'UTF8'")
        try connection.execute("""
            CREATE TABLE word (w text PRIMARY KEY);
            INSERT INTO word VALUES ('café'), ('Zürich'), ('zebra'), ('Ägypten'), ('apfel'), ('Bär');
            """)
        let order = "SELECT string_agg(w, ',' ORDER BY w) FROM word"
        let backup = try Steps.backup(source, into: Steps.repository("\(label)\(jobs)"))
        try Self.restore(backup.path, into: target, jobs: jobs) { $0.create = true }
        let properties = "SELECT pg_encoding_to_char(encoding), datcollate, datctype, datlocprovider FROM pg_database WHERE datname = $1"
        #expect(try Self.serverValues(properties, [target.name]) == Self.serverValues(properties, [source.name]))
        #expect(try target.value(order) == source.value(order))
        try Steps.expectEqual(source, target)
    }

    /// A missing role, a missing ICU locale, a missing operating-system
    /// locale and an extension the server lacks: all named in one error,
    /// before anything is created. With --create-roles the roles are no
    /// longer missing, but the rest still is, and no role is created.
    @Test func preflightNamesEverythingMissingAtOnce() throws {
        let prefix = "arca_preflight_\(getpid())"
        let (owner, reader) = (prefix + "_owner", prefix + "_reader")
        let source = try TestDatabase("preflight_src")
        let target = try TestDatabase("preflight_dst", creating: false)
        defer {
            source.drop()
            target.drop()
            Self.dropRoles([owner, reader])
        }
        try TestServer.execute("CREATE ROLE \(Self.quote(owner)); CREATE ROLE \(Self.quote(reader))")
        try source.execute("""
            CREATE TABLE chart (id int PRIMARY KEY);
            ALTER TABLE chart OWNER TO \(Self.quote(owner));
            GRANT SELECT ON chart TO \(Self.quote(reader));
            """)
        let repository = Steps.repository("preflight")
        let backup = try Steps.backup(source, into: repository)
        let forged = try ForgedArchive.rewritten(backup.path, into: repository) { manifest in
            manifest.database?.extensions.append("arca_no_such_extension")
            manifest.database?.localeProvider = "icu"
            manifest.database?.locale = "zz-ZZ"
            manifest.database?.collate = "xx_YY.UTF-8"
        }
        source.drop()
        Self.dropRoles([owner, reader])

        do {
            try Self.restore(forged, into: target) { $0.create = true }
            Issue.record("restored although the server lacks what the archive needs")
        } catch RestoreError.targetLacks(let missing) {
            #expect(missing.count == 5, "\(missing)")
            for phrase in ["role \"\(owner)\"", "role \"\(reader)\"", "extension \"arca_no_such_extension\"", "ICU locale \"zz-ZZ\"",
                           "operating system locale \"xx_YY.UTF-8\" (LC_COLLATE)"] {
                #expect(missing.contains { $0.hasPrefix(phrase) }, "\(phrase) not in \(missing)")
            }
        }
        do {
            try Self.restore(forged, into: target) {
                $0.create = true
                $0.createRoles = true
            }
            Issue.record("restored although the server lacks what the archive needs")
        } catch RestoreError.targetLacks(let missing) {
            #expect(missing.count == 3, "\(missing)")
            #expect(!missing.contains { $0.hasPrefix("role ") })
        }
        #expect(try !Self.databaseExists(target.name))
        #expect(try Self.roleState([owner, reader]) == [])

        // A restore that fails after creating the roles drops them again.
        try TestServer.execute("CREATE DATABASE \(Self.quote(target.name))")
        do {
            try Self.restore(backup.path, into: target) {
                $0.create = true
                $0.createRoles = true
            }
            Issue.record("--create restored into an existing database")
        } catch RestoreError.databaseExists(let name) {
            #expect(name == target.name)
        }
        #expect(try Self.roleState([owner, reader]) == [])
    }

    /// Password hashes go only into an encrypted archive, are never shown
    /// (`inspect`), and are restored with the role.
    @Test func rolePasswordsOnlyIntoAnEncryptedArchive() throws {
        let role = "arca_password_\(getpid())"
        let source = try TestDatabase("password_src")
        let target = try TestDatabase("password_dst", creating: false)
        defer {
            source.drop()
            target.drop()
            Self.dropRoles([role])
        }
        try TestServer.execute("CREATE ROLE \(Self.quote(role)) LOGIN PASSWORD 'not-a-real-secret'")
        try source.execute("CREATE TABLE note (id int); ALTER TABLE note OWNER TO \(Self.quote(role))")
        let repository = Steps.repository("password")
        var options = BackupOptions(source: source.connectionString, repository: repository)
        options.withRolePasswords = true
        do {
            try BackupRunner(options: options).run()
            Issue.record("password hashes went into an unencrypted archive")
        } catch BackupError.rolePasswordsNeedEncryption {
        }
        #expect(try repository.listings().isEmpty)

        let key = ArchiveKey.generate()
        options.encryptionKey = key
        let backup = try BackupRunner(options: options).run()
        let hash = try #require(try Self.serverValues("SELECT rolpassword FROM pg_authid WHERE rolname = $1", [role]).first)
        let manifest = try ArchiveReader(source: try FileSource(path: backup.path), key: key).manifest
        #expect(manifest.roles?.first { $0.name == role }?.passwordHash == hash)
        #expect(!String(decoding: manifest.withoutPasswords.encoded(), as: UTF8.self).contains(hash))
        let configuration = try ServiceConfiguration(environment: [
            "DATABASE_URL": source.connectionString.conninfo, "ARCA_REPO": repository.root, "ARCA_ENCRYPTION_KEY": try #require(key.base64),
        ])
        let inspection = try Operations(configuration: configuration, requester: .commandLine).inspect(backup.backupId)
        #expect(inspection.manifest.roles?.contains { $0.name == role && $0.passwordHash == nil } == true)

        source.drop()
        Self.dropRoles([role])
        try Self.restore(backup.path, into: target, key: key) {
            $0.create = true
            $0.createRoles = true
        }
        #expect(try Self.serverValues("SELECT rolpassword FROM pg_authid WHERE rolname = $1", [role]) == [hash])
    }

    /// Stored list settings are split the way the server splits them, so
    /// that `"$user", public` is two schemas again, not one.
    @Test func listSettingsAreSplitLikeTheServer() throws {
        #expect(DatabaseSetup.splitList(#"app, "$user", public"#) == ["app", "$user", "public"])
        #expect(DatabaseSetup.splitList(#""a ""b"", c",d"#) == [#"a "b", c"#, "d"])
        #expect(DatabaseSetup.splitList("") == [])
        #expect(DatabaseSetup.splitList(#""unterminated"#) == nil)
        #expect(DatabaseSetup.splitList("a,,b") == nil)
        #expect(DatabaseSetup.splitList("a b") == nil)
        let setting = Manifest.Database.Setting(role: nil, name: "search_path", value: #"app, "$user""#)
        #expect(try DatabaseSetup.settingAssignment(setting) == #""search_path" TO 'app', '$user'"#)
        let custom = Manifest.Database.Setting(role: nil, name: "app.tenant", value: "it's")
        #expect(try DatabaseSetup.settingAssignment(custom) == #""app"."tenant" TO 'it''s'"#)
    }
}
