import ArcaTesting
import Foundation
import Testing

/// Patient data and secrets stay out of everything `arca` prints and writes.
@Suite struct RedactionCLITests {
    static let secret = "PATIENT-7731-SECRET"

    func arca(_ arguments: [String], environment: [String: String] = [:]) throws -> Tool.Output {
        try Tool.capture(TestPaths.arca, arguments, environment: environment)
    }

    /// A data-only restore whose target's constraints reject the archive's
    /// rows: the rows' values reach neither the output, nor audit.log, nor
    /// the audit mirror; the constraint, the table and the SQLSTATE do.
    @Test func rejectedRowsAreNotPrintedOrAudited() throws {
        let source = try TestDatabase("redact_src")
        let checked = try TestDatabase("redact_check")
        let unique = try TestDatabase("redact_unique")
        let mirror = try TestDatabase("redact_mirror")
        defer { [source, checked, unique, mirror].forEach { $0.drop() } }
        try source.execute("""
            CREATE TABLE patient (id int PRIMARY KEY, identifier text, mrn text);
            INSERT INTO patient VALUES (1, '\(Self.secret)', 'MRN-\(Self.secret)'), (2, 'anonymous', 'MRN-\(Self.secret)');
            """)
        try source.copySchema(to: checked)
        try source.copySchema(to: unique)
        try checked.execute("ALTER TABLE patient ADD CONSTRAINT patient_identifier_check CHECK (identifier NOT LIKE 'PATIENT-%')")
        try unique.execute("ALTER TABLE patient ADD CONSTRAINT patient_mrn_unique UNIQUE (mrn)")
        let repo = TestPaths.temporaryDirectory("redact") + "/repo"
        let environment = ["ARCA_REPO": repo, "ARCA_AUDIT_DATABASE_URL": "dbname=\(mirror.name)"]
        let backup = try arca(["backup", "--database-url", "dbname=\(source.name)", "--json"], environment: environment)
        #expect(backup.status == 0, "\(backup.stderr)")
        let id = try #require(try FileManager.default.contentsOfDirectory(atPath: repo + "/local").first { $0.hasSuffix(".arca") }?.dropLast(5))

        var outputs: [Tool.Output] = []
        for (target, constraint, sqlState) in [(checked, "patient_identifier_check", "23514"), (unique, "patient_mrn_unique", "23505")] {
            for extra in [[], ["--verbose"], ["--json"]] {
                let restore = try arca(
                    ["restore", String(id), "--target-url", "dbname=\(target.name)", "--data-only", "--confirm"] + extra, environment: environment)
                #expect(restore.status == 1, "\(restore.stderr)")
                #expect(restore.stderr.contains("\"\(constraint)\""), "\(restore.stderr)")
                #expect(restore.stderr.contains(#"table "public"."patient""#), "\(restore.stderr)")
                #expect(restore.stderr.contains("SQLSTATE \(sqlState)"), "\(restore.stderr)")
                outputs.append(restore)
            }
        }
        // --verbose shows the full report to a person at a terminal, and only there.
        let command = ([TestPaths.arca, "restore", String(id), "--target-url", "dbname=\(checked.name)", "--data-only", "--confirm", "--verbose"])
            .joined(separator: " ")
        let terminal = try Tool.capture("script", ["-qefc", command, "/dev/null"], environment: environment)
        #expect(terminal.stdout.contains("Failing row contains (1, \(Self.secret)"), "\(terminal.stdout)")
        #expect(outputs[1].stderr.contains("shown on a terminal only"), "\(outputs[1].stderr)")

        let audit = try String(contentsOfFile: repo + "/audit.log", encoding: .utf8)
        #expect(audit.contains("patient_identifier_check") && audit.contains("patient_mrn_unique"), "\(audit)")
        let mirrored = try #require(try mirror.value("SELECT string_agg(concat_ws(' ', error, details::text), E'\\n') FROM arca_audit"))
        #expect(mirrored.contains("patient_identifier_check") && mirrored.contains("SQLSTATE 23505"), "\(mirrored)")
        for haystack in outputs.map({ $0.stdout + $0.stderr }) + [audit, mirrored] {
            #expect(!haystack.contains(Self.secret), "\(haystack)")
        }
    }

    /// libpq's parse errors quote the token they stumble on, which can be the
    /// password; an endpoint URL can carry credentials.
    @Test func malformedURLsAreNotEchoed() throws {
        let repo = TestPaths.temporaryDirectory("redact_urls") + "/repo"
        let database = try arca(["status"], environment: ["ARCA_REPO": repo, "DATABASE_URL": "postgresql://u:50%off-Pw-Secret@h/db"])
        #expect(database.status == 2, "\(database.stderr)")
        #expect(database.stderr.contains("DATABASE_URL"), "\(database.stderr)")
        #expect(!database.stderr.contains("50%off") && !database.stderr.contains("Pw-Secret"), "\(database.stderr)")
        let option = try arca(["compare", "postgresql://u:50%off-Pw-Secret@h/db", "dbname=postgres"])
        #expect(option.status == 2, "\(option.stderr)")
        #expect(!option.stderr.contains("Pw-Secret"), "\(option.stderr)")
        let endpoint = try arca(["status"], environment: [
            "ARCA_REPO": repo, "AWS_S3_BUCKET": "redaction", "AWS_ACCESS_KEY_ID": "AKIAREDACTION", "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_ENDPOINT_URL": "http://minio:Endpoint-Pw-Secret@127.0.0.1:9000",
        ])
        #expect(endpoint.status == 2, "\(endpoint.stderr)")
        #expect(endpoint.stderr.contains("AWS_ENDPOINT_URL"), "\(endpoint.stderr)")
        #expect(!endpoint.stderr.contains("Endpoint-Pw-Secret"), "\(endpoint.stderr)")
    }

    /// pg_dump and pg_restore get libpq's variables and the system's, never
    /// Arca's secrets: wrappers in ARCA_PG_BINDIR record the environment
    /// they were given and run the real tools.
    @Test func childProcessesGetAMinimalEnvironment() throws {
        let source = try TestDatabase("childenv_src")
        let target = try TestDatabase("childenv_dst", creating: false)
        defer { source.drop(); target.drop() }
        try source.execute("CREATE TABLE patient (id int PRIMARY KEY, name text); INSERT INTO patient VALUES (1, 'Ada')")
        let folder = TestPaths.temporaryDirectory("childenv")
        let bin = folder + "/bin", recorded = folder + "/environments"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: recorded, withIntermediateDirectories: true)
        for tool in ["pg_dump", "pg_restore"] {
            let script = "#!/bin/sh\nenv > \(recorded)/\(tool).$$.env\necho \"$*\" > \(recorded)/\(tool).$$.args\n"
                + "exec /usr/lib/postgresql/15/bin/\(tool) \"$@\"\n"
            try script.write(toFile: bin + "/" + tool, atomically: true, encoding: .utf8)
            chmod(bin + "/" + tool, 0o755)
        }
        let password = "Pw-Child-Secret-5d2e"
        let secrets = [
            "JWT_SECRET": String(repeating: "j", count: 16) + "-child-jwt-secret-0a1b2c3d",
            "AWS_SECRET_ACCESS_KEY": "ChildAwsSecret/1f2e3d4c5b6a", "AWS_SESSION_TOKEN": "ChildSessionToken-9f8e7d",
            "ARCA_METRICS_TOKEN": "ChildMetricsToken-4c3b2a", "PGBACKREST_REPO1_CIPHER_PASS": "ChildOtherToolSecret-77aa",
        ]
        let host = ProcessInfo.processInfo.environment["PGHOST"] ?? ""
        let repo = folder + "/repo"
        let common = secrets.merging([
            "ARCA_REPO": repo, "ARCA_PG_BINDIR": bin, "PGSSLMODE": "prefer", "LC_MESSAGES": "C",
            "DATABASE_URL": "postgresql://postgres:\(password)@/\(source.name)?host=\(host)",
        ]) { $1 }
        // At most one key source may be set: one backup with each.
        let key = "c2VjcmV0LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGVzISE="
        let passphrase = "Child passphrase secret 6e5d"
        let withKey = common.merging(["ARCA_ENCRYPTION_KEY": key]) { $1 }
        let first = try arca(["backup", "--json"], environment: withKey)
        #expect(first.status == 0, "\(first.stderr)")
        let id = try #require(try FileManager.default.contentsOfDirectory(atPath: repo + "/local").first { $0.hasSuffix(".arca") }?.dropLast(5))
        let restore = try arca(["restore", String(id), "--target-url", "dbname=\(target.name)", "--create", "--confirm"], environment: withKey)
        #expect(restore.status == 0, "\(restore.stderr)")
        let second = try arca(["backup", "--json"], environment: common.merging(["ARCA_PASSPHRASE": passphrase, "ARCA_PASSPHRASE_COST": "10"]) { $1 })
        #expect(second.status == 0, "\(second.stderr)")

        let files = try FileManager.default.contentsOfDirectory(atPath: recorded).filter { $0.hasSuffix(".env") }.map { String($0.dropLast(4)) }
        func read(_ path: String) throws -> String { try String(contentsOfFile: recorded + "/" + path, encoding: .utf8) }
        let dumps = try files.filter { $0.hasPrefix("pg_dump.") }.map { (environment: try read($0 + ".env"), arguments: try read($0 + ".args")) }
        let restores = try files.filter { $0.hasPrefix("pg_restore.") }.map { try read($0 + ".env") }
        #expect(dumps.count >= 2 && !restores.isEmpty, "\(files)")
        for environment in dumps.map(\.environment) + restores {
            for secret in Array(secrets.values) + [key, passphrase] {
                #expect(!environment.contains(secret), "\(environment)")
            }
            let names = Set(environment.split(separator: "\n").compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) })
            #expect(names.contains("PATH") && names.contains("PGSSLMODE") && names.contains("LC_MESSAGES"), "\(names.sorted())")
            #expect(!names.contains { $0.hasPrefix("ARCA_") || $0.hasPrefix("AWS_") || $0 == "JWT_SECRET" }, "\(names.sorted())")
        }
        // pg_dump connects: it gets the URL's password, in PGPASSWORD only.
        let connecting = dumps.filter { $0.arguments.contains("--dbname") }
        #expect(connecting.count == 2)
        for dump in connecting {
            #expect(dump.environment.contains("PGPASSWORD=\(password)\n"), "\(dump.environment)")
            #expect(!dump.arguments.contains(password))
        }
    }
}
