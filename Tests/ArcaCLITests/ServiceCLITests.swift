import ArcaEngine
import ArcaTesting
import Foundation
import Testing

/// The service commands as an operator (or cron, or systemd) runs them.
@Suite struct ServiceCLITests {
    func arca(_ arguments: [String], environment: [String: String] = [:]) throws -> Tool.Output {
        try Tool.capture(TestPaths.arca, arguments, environment: environment)
    }

    /// A database whose backup takes long enough to race and signal.
    func slowDatabase(_ label: String) throws -> TestDatabase {
        let database = try TestDatabase(label)
        try database.execute("CREATE TABLE records AS SELECT g AS id, repeat(md5(g::text), 20) AS body FROM generate_series(1, 300000) g")
        return database
    }

    func files(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    func auditLines(_ repo: String) -> [String] {
        ((try? String(contentsOfFile: repo + "/audit.log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func secondBackupIsRefusedWhileOneRuns() throws {
        let database = try slowDatabase("race")
        defer { database.drop() }
        let repo = TestPaths.temporaryDirectory("race") + "/repo"
        let first = try Spawned(TestPaths.arca, ["backup", "--repo", repo, "--database-url", "dbname=\(database.name)", "--jobs", "1"])
        #expect(Spawned.waitFor(seconds: 20) { !files(repo + "/temp").isEmpty })
        let second = try arca(["backup", "--repo", repo, "--database-url", "dbname=\(database.name)"])
        #expect(second.status == 1)
        #expect(second.stderr.contains("already running"), "\(second.stderr)")
        #expect(second.stderr.contains("pid \(first.pid)"))
        let done = first.wait()
        #expect(done.status == 0, "\(done.stderr)")
        #expect(files(repo + "/local").filter { $0.hasSuffix(".arca") }.count == 1)
        #expect(auditLines(repo).contains { $0.contains(#""outcome":"refused""#) })
    }

    @Test func sigtermDuringABackupLeavesNothingAndIsAudited() throws {
        let database = try slowDatabase("sigterm")
        defer { database.drop() }
        let repo = TestPaths.temporaryDirectory("sigterm") + "/repo"
        let backup = try Spawned(TestPaths.arca, ["backup", "--repo", repo, "--database-url", "dbname=\(database.name)", "--jobs", "1"])
        #expect(Spawned.waitFor(seconds: 20) { !files(repo + "/temp").isEmpty })
        backup.signal(SIGTERM)
        let output = backup.wait()
        #expect(output.status == 1)
        #expect(output.stderr.contains("cancelled"), "\(output.stderr)")
        #expect(files(repo + "/temp").isEmpty)
        #expect(files(repo + "/local").isEmpty)
        let last = try #require(auditLines(repo).last)
        #expect(last.contains(#""action":"backup""#) && last.contains(#""outcome":"failure""#) && last.contains("cancelled"))
        // The lock was released: the next backup runs.
        #expect(try arca(["backup", "--repo", repo, "--database-url", "dbname=\(database.name)"]).status == 0)
    }

    /// A backup started through the API stops cleanly when the server is
    /// told to stop: temp file removed, lock released, failure audited.
    @Test func sigtermDuringAnAPIBackupStopsItCleanly() throws {
        let database = try slowDatabase("api_sigterm")
        defer { database.drop() }
        let repo = TestPaths.temporaryDirectory("api-sigterm") + "/repo"
        let port = try freeLocalPort()
        let environment = [
            "DATABASE_URL": "dbname=\(database.name)", "JWT_SECRET": String(repeating: "s", count: 40), "ARCA_JOBS": "1",
        ]
        let server = try Spawned(TestPaths.arca, ["serve", "--repo", repo, "--port", String(port)], environment: environment)
        let healthz = "http://127.0.0.1:\(port)/healthz"
        #expect(Spawned.waitFor(seconds: 30) { (try? Tool.capture("curl", ["-sf", healthz]).status) == 0 }, "the server did not answer")
        let token = try arca(["token", "--subject", "shutdown-test", "--role", "operator"], environment: environment).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let accepted = try Tool.capture("curl", [
            "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Authorization: Bearer \(token)",
            "http://127.0.0.1:\(port)/api/backup?wait=false",
        ])
        #expect(accepted.stdout == "202", "\(accepted.stdout) \(accepted.stderr)")
        #expect(Spawned.waitFor(seconds: 20) { !files(repo + "/temp").isEmpty })
        server.signal(SIGTERM)
        _ = server.wait()
        #expect(files(repo + "/temp").isEmpty)
        #expect(files(repo + "/local").filter { $0.hasSuffix(".arca") }.isEmpty)
        let last = try #require(auditLines(repo).last { $0.contains(#""action":"backup""#) })
        #expect(last.contains(#""outcome":"failure""#) && last.contains("cancelled") && last.contains("shutdown-test"), "\(last)")
        // The lock was released: the next backup runs.
        #expect(try arca(["backup", "--repo", repo, "--database-url", "dbname=\(database.name)"]).status == 0)
    }

    @Test func sigkillLeavesAStaleTempFileTheNextRunRemoves() throws {
        let database = try slowDatabase("sigkill")
        defer { database.drop() }
        let repo = TestPaths.temporaryDirectory("sigkill") + "/repo"
        let backup = try Spawned(TestPaths.arca, ["backup", "--repo", repo, "--database-url", "dbname=\(database.name)", "--jobs", "1"])
        #expect(Spawned.waitFor(seconds: 20) { !files(repo + "/temp").isEmpty })
        backup.signal(SIGKILL)
        _ = backup.wait()
        #expect(!files(repo + "/temp").isEmpty)
        let list = try arca(["list", "--repo", repo, "--json"])
        #expect(list.stdout.contains(#""backups" : ["#) && !list.stdout.contains("backup_2"), "\(list.stdout)")
        #expect(try arca(["backup", "--repo", repo, "--database-url", "dbname=\(database.name)"]).status == 0)
        #expect(files(repo + "/temp").isEmpty)
    }

    @Test func statusExitCodes() throws {
        let database = try TestDatabase("status")
        defer { database.drop() }
        try database.execute("CREATE TABLE t AS SELECT 1 AS id")
        let repo = TestPaths.temporaryDirectory("status") + "/repo"
        let environment = ["DATABASE_URL": "dbname=\(database.name)", "ARCA_TIMEZONE": "UTC"]
        let empty = try arca(["status", "--repo", repo], environment: environment)
        #expect(empty.status == 1)
        #expect(empty.stdout.contains("no backup"), "\(empty.stdout)")
        #expect(try arca(["backup", "--repo", repo], environment: environment).status == 0)
        let healthy = try arca(["status", "--repo", repo, "--json"], environment: environment)
        #expect(healthy.status == 0, "\(healthy.stdout)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(healthy.stdout.utf8)) as? [String: Any])
        #expect(json["healthy"] as? Bool == true)
        #expect((json["scheduler"] as? [String: Any])?["running"] as? Bool == false)
        #expect((json["lastBackup"] as? [String: Any])?["integrity"] as? String == "unverified")
        // An hourly schedule makes a backup from 2020 late. Backups are
        // dated by their manifests, so this one is really taken "in 2020".
        for name in files(repo + "/local") { try FileManager.default.removeItem(atPath: repo + "/local/" + name) }
        _ = try BackupRunner(options: BackupOptions(source: database.connectionString, repository: Repository(root: repo)))
            .run(now: { Date(timeIntervalSince1970: 1_577_836_800) })
        let late = try arca(["status", "--repo", repo], environment: environment.merging(["ARCA_BACKUP_SCHEDULE": "0 * * * *"]) { $1 })
        #expect(late.status == 1)
        #expect(late.stdout.contains("older than the backup schedule"), "\(late.stdout)")
        let badSchedule = try arca(["status", "--repo", repo], environment: ["ARCA_BACKUP_SCHEDULE": "0 2 * *"])
        #expect(badSchedule.status == 2)
        #expect(badSchedule.stderr.contains("ARCA_BACKUP_SCHEDULE"))
    }

    @Test func initReportsWhatToFix() throws {
        let repo = TestPaths.temporaryDirectory("init") + "/repo"
        let missing = try Tool.capture("/usr/bin/env", ["-u", "DATABASE_URL", TestPaths.arca, "init", "--repo", repo], environment: ["JWT_SECRET": "short"])
        #expect(missing.status == 1)
        #expect(missing.stdout.contains("DATABASE_URL is not set"))
        #expect(missing.stdout.contains("fix: export DATABASE_URL="))
        #expect(missing.stdout.contains("needs at least 32"))
        #expect(!missing.stdout.contains("short"))

        let database = try TestDatabase("init")
        defer { database.drop() }
        let secret = String(repeating: "s", count: 40)
        let good = try arca(["init", "--repo", repo], environment: ["DATABASE_URL": "dbname=\(database.name)", "JWT_SECRET": secret])
        #expect(good.status == 0, "\(good.stdout)")
        #expect(good.stdout.contains("PostgreSQL 15"))
        #expect(!good.stdout.contains(secret))
        let again = try arca(["init", "--repo", repo, "--json"], environment: ["DATABASE_URL": "dbname=\(database.name)", "JWT_SECRET": secret])
        #expect(again.status == 0)
        let attributes = try FileManager.default.attributesOfItem(atPath: repo + "/local")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o700)
        #expect(!(try String(contentsOfFile: repo + "/audit.log", encoding: .utf8)).contains(secret))
    }

    @Test func auditTrailListsAndDetectsTampering() throws {
        let database = try TestDatabase("audit")
        defer { database.drop() }
        try database.execute("CREATE TABLE t AS SELECT 1 AS id")
        let repo = TestPaths.temporaryDirectory("audit") + "/repo"
        for _ in 0..<3 { #expect(try arca(["backup", "--repo", repo, "--database-url", "dbname=\(database.name)"]).status == 0) }
        let listing = try arca(["audit", "--repo", repo, "--action", "backup"])
        // Each backup records its start, then how it ended.
        #expect(listing.stdout.split(separator: "\n").count == 6)
        #expect(try arca(["audit", "--repo", repo, "--verify"]).status == 0)
        var lines = auditLines(repo)
        lines[1] = lines[1].replacingOccurrences(of: #""outcome":"success""#, with: #""outcome":"failure""#)
        try (lines.joined(separator: "\n") + "\n").write(toFile: repo + "/audit.log", atomically: false, encoding: .utf8)
        let tampered = try arca(["audit", "--repo", repo, "--verify"])
        #expect(tampered.status == 3)
        #expect(tampered.stderr.contains("line 2"), "\(tampered.stderr)")
    }

    /// The CLI's audit actor is the real user, whatever `$USER` says.
    @Test func theAuditActorIsTheRealUser() throws {
        let database = try TestDatabase("audit_actor")
        defer { database.drop() }
        try database.execute("CREATE TABLE t AS SELECT 1 AS id")
        let repo = TestPaths.temporaryDirectory("audit-actor") + "/repo"
        let backup = try arca(["backup", "--repo", repo, "--database-url", "dbname=\(database.name)"], environment: ["USER": "mallory"])
        #expect(backup.status == 0, "\(backup.stderr)")
        let real = String(cString: getpwuid(getuid()).pointee.pw_name)
        #expect(auditLines(repo).allSatisfy { $0.contains(#""actor":"cli:\#(real)""#) }, "\(auditLines(repo))")
        #expect(!auditLines(repo).contains { $0.contains("mallory") })
    }

    @Test func auditEventsAreMirroredToPostgreSQLBestEffort() throws {
        let database = try TestDatabase("mirror_src")
        let auditDatabase = try TestDatabase("mirror_audit")
        defer { database.drop(); auditDatabase.drop() }
        try database.execute("CREATE TABLE t AS SELECT 1 AS id")
        let repo = TestPaths.temporaryDirectory("mirror") + "/repo"
        let mirrored = try arca(["backup", "--repo", repo, "--database-url", "dbname=\(database.name)"],
                                environment: ["ARCA_AUDIT_DATABASE_URL": "dbname=\(auditDatabase.name)"])
        #expect(mirrored.status == 0)
        #expect(try auditDatabase.value("SELECT count(*) FROM arca_audit WHERE resource = 'Backup' AND action = 'backup' AND outcome = 'success'") == "1")
        // The mirror is unreachable: the backup still succeeds, with a warning.
        let unreachable = try arca(["backup", "--repo", repo, "--database-url", "dbname=\(database.name)"],
                                   environment: ["ARCA_AUDIT_DATABASE_URL": "host=127.0.0.1 port=1 dbname=x connect_timeout=2"])
        #expect(unreachable.status == 0)
        #expect(unreachable.stderr.contains("warning: the audit event was not copied"))
        #expect(auditLines(repo).count == 4)  // two backups, each with its start and its end
    }

    @Test func schedulerRunsAMissedBackupAndStopsOnSigterm() throws {
        let database = try TestDatabase("scheduler")
        defer { database.drop() }
        try database.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        let repo = TestPaths.temporaryDirectory("scheduler") + "/repo"
        let environment = ["DATABASE_URL": "dbname=\(database.name)", "ARCA_BACKUP_SCHEDULE": "0 2 1 1 *", "ARCA_TIMEZONE": "UTC"]
        let service = try Spawned(TestPaths.arca, ["start", "--repo", repo], environment: environment)
        // No backup yet: the missed run happens at start-up.
        #expect(Spawned.waitFor(seconds: 30) { files(repo + "/local").contains { $0.hasSuffix(".arca") } })
        let status = try arca(["status", "--repo", repo, "--json"], environment: environment)
        #expect(status.stdout.contains(#""running" : true"#), "\(status.stdout)")
        let second = try arca(["start", "--repo", repo], environment: environment)
        #expect(second.status == 1)
        #expect(second.stderr.contains("already running"))
        service.signal(SIGTERM)
        let output = service.wait()
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stderr.contains("scheduler stopped"))
        #expect(auditLines(repo).contains { $0.contains(#""trigger":"missed""#) })
        let after = try arca(["status", "--repo", repo, "--json"], environment: environment)
        #expect(after.stdout.contains(#""running" : false"#))
    }
}

/// Secrets never leave the environment they were given in.
@Suite struct SecretsTests {
    @Test func noSecretAppearsInOutputLogsAuditOrArchives() async throws {
        // A real bucket, so the AWS secret is used for every upload and listing.
        let moto = try await MotoServer.shared()
        let bucket = try await moto.createBucket("secrets")
        let source = try TestDatabase("secrets_src")
        let target = try TestDatabase("secrets_dst", creating: false)
        defer { source.drop(); target.drop() }
        try source.execute("CREATE TABLE patient (id int PRIMARY KEY, name text); INSERT INTO patient VALUES (1, 'Ada')")
        let repo = TestPaths.temporaryDirectory("secrets") + "/repo"
        let secrets = [
            "password": "Pw-Secret-4f1c9a", "jwt": String(repeating: "J", count: 12) + "-jwt-secret-77e2a1b0c3d4e5f6",
            "aws": "AwsSecretKey/9b8c7d6e5f4a3b2c1d0e", "key": "c2VjcmV0LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGVzISE=",
        ]
        let host = ProcessInfo.processInfo.environment["PGHOST"] ?? ""
        let environment = [
            "DATABASE_URL": "postgresql://postgres:\(secrets["password"]!)@/\(source.name)?host=\(host)",
            "JWT_SECRET": secrets["jwt"]!, "AWS_SECRET_ACCESS_KEY": secrets["aws"]!, "ARCA_ENCRYPTION_KEY": secrets["key"]!,
            "ARCA_REPO": repo, "AWS_S3_BUCKET": bucket, "AWS_ACCESS_KEY_ID": "AKIASECRETSTEST", "AWS_ENDPOINT_URL": moto.endpoint.absoluteString,
        ]
        var outputs: [Tool.Output] = []
        func run(_ arguments: [String]) throws { outputs.append(try Tool.capture(TestPaths.arca, arguments, environment: environment)) }
        try run(["init"])
        try run(["backup", "--json"])
        try run(["list"])
        try run(["status", "--json"])
        let id = try #require(try FileManager.default.contentsOfDirectory(atPath: repo + "/local").first { $0.hasSuffix(".arca") }?.dropLast(5))
        try run(["verify", String(id)])
        try run(["inspect", String(id), "--json"])
        try run(["restore", String(id), "--target-url", "postgresql://postgres:\(secrets["password"]!)@/\(target.name)?host=\(host)", "--create", "--confirm"])
        try run(["restore", String(id), "--target-url", "postgresql://postgres:\(secrets["password"]!)@127.0.0.1:1/x", "--confirm"])
        try run(["drill"])
        try run(["cleanup", "--dry-run"])
        try run(["sync"])
        try run(["verify", "--cloud", String(id)])
        try run(["audit"])
        #expect(outputs.filter { $0.status == 0 }.count == outputs.count - 1, "\(outputs.map(\.stderr))")

        var haystacks = outputs.map { $0.stdout + $0.stderr }
        for file in FileManager.default.subpaths(atPath: repo) ?? [] {
            if let data = FileManager.default.contents(atPath: repo + "/" + file) {
                haystacks.append(String(decoding: data, as: UTF8.self))
            }
        }
        for (name, secret) in secrets {
            for haystack in haystacks {
                #expect(!haystack.contains(secret), "the \(name) secret leaked")
            }
        }
    }
}
