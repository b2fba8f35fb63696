import ArcaTesting
import Foundation
import Testing

/// `arca` as a user runs it: exit statuses, JSON output, messages.
@Suite struct CLITests {
    struct Run {
        let output: Tool.Output
        var status: Int32 { output.status }
        var all: String { output.stdout + output.stderr }
        func json() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        }
    }

    func arca(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        Run(output: try Tool.capture(TestPaths.arca, arguments, environment: environment))
    }

    /// Roles through the CLI: the password flag refused without a key,
    /// `inspect` listing the recorded roles (a newline in a name escaped),
    /// `restore --create --create-roles` saying what it created.
    @Test func rolesAreListedAndCreated() throws {
        let role = "arca_cli_roles_\(getpid())\nowner"
        let quoted = "\"" + role.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        let source = try TestDatabase("cli_roles_src")
        let target = try TestDatabase("cli_roles_dst", creating: false)
        defer {
            source.drop()
            target.drop()
            try? TestServer.execute("DROP ROLE IF EXISTS \(quoted)")
        }
        try TestServer.execute("CREATE ROLE \(quoted) LOGIN")
        try source.execute("CREATE TABLE visit (id int); ALTER TABLE visit OWNER TO \(quoted); COMMENT ON DATABASE \(source.name) IS 'ward'")
        let repo = TestPaths.temporaryDirectory("cli_roles") + "/repo"
        let url = "dbname=\(source.name)"

        let refused = try arca(["backup", "--database-url", url, "--repo", repo, "--with-role-passwords"])
        #expect(refused.status == 2, "\(refused.all)")
        #expect(refused.output.stderr.contains("only go into an encrypted archive"), "\(refused.all)")

        let backup = try arca(["backup", "--database-url", url, "--repo", repo, "--json"])
        let id = try #require(try backup.json()["backupId"] as? String)
        let inspect = try arca(["inspect", id, "--repo", repo])
        let shown = "\"arca_cli_roles_\(getpid())\\u{a}owner\""
        #expect(inspect.output.stdout.contains(shown), "\(inspect.all)")
        #expect(inspect.output.stdout.contains("Database   encoding UTF8"), "\(inspect.all)")
        #expect(!inspect.output.stdout.contains(role))

        source.drop()
        // Under load the database's drop may finish on a thread of its own
        // (TestDatabase.drop): the role can go once nothing of it is left.
        #expect(Spawned.waitFor(seconds: 60) { (try? TestServer.execute("DROP ROLE \(quoted)")) != nil })
        let restore = try arca(["restore", id, "--repo", repo, "--target-url", "dbname=\(target.name)", "--create", "--create-roles", "--confirm"])
        #expect(restore.status == 0, "\(restore.all)")
        #expect(restore.output.stdout.contains("roles   1 created: \(shown)"), "\(restore.all)")
        #expect(try target.value("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'visit'") == role)
        #expect(try target.value("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()") == "ward")
    }

    /// Two databases backed up into one repository: each one's `list`
    /// shows its own backups, `--all-sources` both with their source, and
    /// restoring the other's backup needs `--allow-other-source` (exit 2,
    /// nothing created, before it).
    @Test func listAndRestoreKeepSourcesApart() throws {
        let first = try TestDatabase("cli_source_one")
        let second = try TestDatabase("cli_source_two")
        let target = try TestDatabase("cli_source_target", creating: false)
        defer { first.drop(); second.drop(); target.drop() }
        try first.execute("CREATE TABLE a AS SELECT g FROM generate_series(1, 5) g")
        try second.execute("CREATE TABLE b AS SELECT g FROM generate_series(1, 7) g")
        let repo = TestPaths.temporaryDirectory("cli_sources") + "/repo"
        let asFirst = ["DATABASE_URL": "dbname=\(first.name)"]
        let one = try #require(try arca(["backup", "--repo", repo, "--json"], environment: asFirst).json()["backupId"] as? String)
        let two = try #require(try arca(["backup", "--repo", repo, "--database-url", "dbname=\(second.name)", "--json"]).json()["backupId"] as? String)

        let own = try arca(["list", "--repo", repo], environment: asFirst)
        #expect(own.status == 0, "\(own.all)")
        #expect(own.output.stdout.contains(one) && !own.output.stdout.contains(two), "\(own.all)")
        let all = try arca(["list", "--repo", repo, "--all-sources"], environment: asFirst)
        #expect(all.output.stdout.contains(two) && all.output.stdout.contains("\(second.name)@"), "\(all.all)")

        let refused = try arca(["restore", two, "--repo", repo, "--target-url", "dbname=\(target.name)", "--create", "--confirm"], environment: asFirst)
        #expect(refused.status == 2, "\(refused.all)")
        #expect(refused.output.stderr.contains("database \"\(second.name)\"") && refused.output.stderr.contains("--allow-other-source"), "\(refused.all)")
        #expect(try first.value("SELECT count(*) FROM pg_database WHERE datname = '\(target.name)'") == "0")
        let allowed = try arca(
            ["restore", two, "--repo", repo, "--target-url", "dbname=\(target.name)", "--create", "--confirm", "--allow-other-source"],
            environment: asFirst)
        #expect(allowed.status == 0, "\(allowed.all)")
        #expect(try target.value("SELECT count(*) FROM b") == "7")
    }

    /// `--copy-format` and `ARCA_COPY_FORMAT`: a bad value is a usage error
    /// naming the setting; inspect shows each table's format.
    @Test func copyFormatFlagAndVariable() throws {
        let source = try TestDatabase("cli_fmt_src")
        defer { source.drop() }
        try source.execute("""
            CREATE TYPE mood AS ENUM ('ok', 'happy');
            CREATE TABLE plain (id int PRIMARY KEY, note text);
            INSERT INTO plain SELECT g, 'note ' || g FROM generate_series(1, 100) g;
            CREATE TABLE moods (id int, feeling mood);
            INSERT INTO moods VALUES (1, 'ok');
            """)
        let repo = TestPaths.temporaryDirectory("cli_fmt") + "/repo"
        let url = "dbname=\(source.name)"
        let bad = try arca(["backup", "--database-url", url, "--repo", repo, "--copy-format", "csv"])
        #expect(bad.status == 64 || bad.status == 2, "\(bad.all)")
        #expect(bad.output.stderr.contains("--copy-format must be auto, text or binary"), "\(bad.all)")
        let badVariable = try arca(["backup", "--database-url", url, "--repo", repo], environment: ["ARCA_COPY_FORMAT": "fast"])
        #expect(badVariable.status != 0 && badVariable.output.stderr.contains("ARCA_COPY_FORMAT must be auto, text or binary"), "\(badVariable.all)")

        let refused = try arca(["backup", "--database-url", url, "--repo", repo, "--copy-format", "binary"])
        #expect(refused.status != 0 && refused.output.stderr.contains("public.moods (column feeling of type public.mood)"), "\(refused.all)")

        let text = try arca(["backup", "--database-url", url, "--repo", repo, "--json"], environment: ["ARCA_COPY_FORMAT": "text"])
        #expect(text.status == 0, "\(text.all)")
        let textID = try #require(try text.json()["backupId"] as? String)
        let inspectText = try arca(["inspect", textID, "--repo", repo])
        #expect(!inspectText.output.stdout.contains("binary"), "\(inspectText.all)")

        let auto = try arca(["backup", "--database-url", url, "--repo", repo, "--json"])
        let autoID = try #require(try auto.json()["backupId"] as? String)
        let inspect = try arca(["inspect", autoID, "--repo", repo])
        #expect(inspect.status == 0, "\(inspect.all)")
        #expect(inspect.output.stdout.contains("1 table(s) binary (load into PostgreSQL 15 or later), 1 text"), "\(inspect.all)")
        let rows = inspect.output.stdout.split(separator: "\n")
        #expect(rows.contains { $0.hasPrefix("public.plain") && $0.contains(" binary ") }, "\(inspect.all)")
        #expect(rows.contains { $0.hasPrefix("public.moods") && $0.contains(" text ") }, "\(inspect.all)")
    }

    @Test func backupListVerifyInspectRestoreCompare() throws {
        let source = try TestDatabase("cli_src")
        let target = try TestDatabase("cli_dst")
        defer { source.drop(); target.drop() }
        try source.execute("""
            CREATE TABLE "Patient" (id serial PRIMARY KEY, name text);
            INSERT INTO "Patient" (name) SELECT 'patient ' || g FROM generate_series(1, 1000) g;
            """)
        let repo = TestPaths.temporaryDirectory("cli") + "/repo"
        // The password must never be printed, whatever the command does.
        let url = "postgresql://postgres:CliSecret99@/\(source.name)?host=\(ProcessInfo.processInfo.environment["PGHOST"] ?? "")"

        let backup = try arca(["backup", "--database-url", url, "--repo", repo, "--json"])
        #expect(backup.status == 0, "\(backup.all)")
        let result = try backup.json()
        let id = try #require(result["backupId"] as? String)
        #expect(result["tables"] as? Int == 1)
        #expect(result["rows"] as? Int == 1000)
        #expect((result["bytes"] as? Int ?? 0) > 0)
        #expect(result["durationSeconds"] is Double)
        #expect((result["path"] as? String)?.hasSuffix("/local/\(id).arca") == true)

        let human = try arca(["backup", "--repo", repo], environment: ["DATABASE_URL": url])
        #expect(human.status == 0)
        #expect(human.output.stdout.contains("complete"))

        let list = try arca(["list", "--repo", repo, "--json"])
        let backups = try #require(try list.json()["backups"] as? [[String: Any]])
        #expect(backups.count == 2)
        #expect(backups.last?["id"] as? String == id)

        let verify = try arca(["verify", id, "--repo", repo])
        #expect(verify.status == 0, "\(verify.all)")
        #expect(verify.output.stdout.contains("intact"))
        #expect(try arca(["list", "--repo", repo]).output.stdout.contains("verified"))

        let inspect = try arca(["inspect", id, "--repo", repo, "--json"])
        let tables = try #require(try inspect.json()["tables"] as? [[String: Any]])
        #expect(tables.first?["name"] as? String == "Patient")
        // Which pg_dump wrote the schema: the test server's own major version.
        let shown = try arca(["inspect", id, "--repo", repo])
        #expect(shown.output.stdout.contains("Schema     written by pg_dump 15."), "\(shown.all)")

        let refused = try arca(["restore", id, "--repo", repo, "--target-url", "dbname=\(target.name)"])
        #expect(refused.status == 2)
        #expect(refused.output.stderr.contains("--confirm"))
        #expect(try target.value("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") == "0")

        let restore = try arca(["restore", id, "--repo", repo, "--target-url", "dbname=\(target.name)", "--confirm", "--json"])
        #expect(restore.status == 0, "\(restore.all)")
        #expect(try restore.json()["restoredTables"] as? [String] == ["public.Patient"])

        // Into a database that is no longer empty: refused unless --clean or --data-only.
        let again = try arca(["restore", id, "--repo", repo, "--target-url", "dbname=\(target.name)", "--confirm"])
        #expect(again.status == 1)
        #expect(again.output.stderr.contains("not empty"))
        #expect(try arca(["restore", id, "--repo", repo, "--target-url", "dbname=\(target.name)", "--confirm", "--clean"]).status == 0)
        #expect(try arca(["restore", id, "--repo", repo, "--target-url", "dbname=\(target.name)", "--confirm", "--data-only"]).status == 0)
        let conflicting = try arca(["restore", id, "--repo", repo, "--target-url", "dbname=\(target.name)", "--confirm", "--data-only", "--clean"])
        #expect(conflicting.status == 2)

        // --create makes the database.
        let created = "\(target.name)_created"
        defer { try? TestServer.execute("DROP DATABASE IF EXISTS \(created) WITH (FORCE)") }
        let create = try arca(["restore", id, "--repo", repo, "--target-url", "dbname=\(created)", "--confirm", "--create"])
        #expect(create.status == 0, "\(create.all)")
        #expect(try arca(["compare", "dbname=\(source.name)", "dbname=\(created)"]).status == 0)

        let compare = try arca(["compare", "dbname=\(source.name)", "dbname=\(target.name)"])
        #expect(compare.status == 0, "\(compare.all)")
        #expect(compare.output.stdout.hasPrefix("equal"))
        try target.execute(#"DELETE FROM "Patient" WHERE id = 7"#)
        #expect(try arca(["compare", "dbname=\(source.name)", "dbname=\(target.name)"]).status == 3)

        for run in [backup, human, list, verify, inspect, refused, restore] {
            #expect(!run.all.contains("CliSecret99"))
        }
        let failed = try arca(["backup", "--repo", repo, "--database-url", "postgresql://postgres:CliSecret99@127.0.0.1:1/x"])
        #expect(failed.status == 1)
        #expect(failed.output.stderr.contains("Cannot connect"))
        #expect(!failed.all.contains("CliSecret99"))
    }

    @Test func encryptionKeysFromKeygenToRestore() throws {
        let source = try TestDatabase("cli_keys")
        let target = try TestDatabase("cli_keys_dst", creating: false)
        defer { source.drop(); target.drop() }
        try source.execute("CREATE TABLE patient (id int PRIMARY KEY, name text); INSERT INTO patient SELECT g, 'Name-' || g FROM generate_series(1, 500) g")
        let folder = TestPaths.temporaryDirectory("cli-keys")
        let repo = folder + "/repo", keyFile = folder + "/arca.key"

        let keygen = try arca(["keygen", "--output", keyFile])
        #expect(keygen.status == 0, "\(keygen.all)")
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int)
        #expect(mode == 0o600)
        #expect(try arca(["keygen", "--output", keyFile]).status == 1, "an existing key file was overwritten")
        let printed = try arca(["keygen"])
        #expect(printed.status == 0 && printed.output.stdout.trimmingCharacters(in: .whitespacesAndNewlines).count == 44)

        let backup = try arca(["backup", "--database-url", "dbname=\(source.name)", "--repo", repo, "--key-file", keyFile, "--json"])
        #expect(backup.status == 0, "\(backup.all)")
        let id = try #require(try backup.json()["backupId"] as? String)
        let list = try arca(["list", "--repo", repo, "--json"])
        let first = try #require((try list.json()["backups"] as? [[String: Any]])?.first)
        #expect(first["encrypted"] as? Bool == true)

        let noKey = try arca(["verify", id, "--repo", repo])
        #expect(noKey.status == 1 && noKey.output.stderr.contains("--key-file"), "\(noKey.all)")
        let stored = try arca(["verify", id, "--repo", repo, "--no-key"])
        #expect(stored.status == 0 && stored.output.stdout.contains("without the key"), "\(stored.all)")
        let full = try arca(["verify", id, "--repo", repo, "--key-file", keyFile])
        #expect(full.status == 0 && full.output.stdout.contains("AES-GCM"), "\(full.all)")

        let wrong = try arca(
            ["restore", id, "--repo", repo, "--target-url", "dbname=\(target.name)", "--create", "--confirm"],
            environment: ["ARCA_ENCRYPTION_KEY": printed.output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)])
        #expect(wrong.status == 1 && wrong.output.stderr.contains("Wrong key"), "\(wrong.all)")
        let restore = try arca(["restore", id, "--repo", repo, "--target-url", "dbname=\(target.name)", "--create", "--confirm", "--key-file", keyFile])
        #expect(restore.status == 0, "\(restore.all)")
        #expect(try arca(["compare", "dbname=\(source.name)", "dbname=\(target.name)"]).status == 0)

        // A key file others can read is refused; so are two key sources at once.
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyFile)
        let loose = try arca(["list", "--repo", repo, "--key-file", keyFile])
        #expect(loose.status == 2 && loose.output.stderr.contains("chmod 600"), "\(loose.all)")
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile)
        let both = try arca(["list", "--repo", repo, "--key-file", keyFile], environment: ["ARCA_PASSPHRASE": "a long passphrase"])
        #expect(both.status == 2 && both.output.stderr.contains("one key source"), "\(both.all)")

        let plain = try arca(["backup", "--database-url", "dbname=\(source.name)", "--repo", repo, "--key-file", keyFile, "--no-encrypt", "--json"])
        #expect(plain.status == 0, "\(plain.all)")
        let plainList = try arca(["list", "--repo", repo, "--json"])
        let encryptedFlags = (try plainList.json()["backups"] as? [[String: Any]])?.compactMap { $0["encrypted"] as? Bool }
        #expect(encryptedFlags?.filter { $0 }.count == 1 && encryptedFlags?.count == 2)
    }

    @Test func cloudBackupListVerifyRestoreAndSync() async throws {
        let moto = try await MotoServer.shared()
        let bucket = try await moto.createBucket("cli")
        let source = try TestDatabase("cli_cloud")
        let target = try TestDatabase("cli_cloud_dst", creating: false)
        defer { source.drop(); target.drop() }
        try source.execute("CREATE TABLE visit (id int PRIMARY KEY, note text); INSERT INTO visit SELECT g, 'visit ' || g FROM generate_series(1, 2000) g")
        let repo = TestPaths.temporaryDirectory("cli-cloud") + "/repo"
        let cloud = [
            "AWS_S3_BUCKET": bucket, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": moto.endpoint.absoluteString, "ARCA_S3_PREFIX": "cli", "ARCA_REPO": repo,
        ]

        let backup = try arca(["backup", "--database-url", "dbname=\(source.name)", "--json", "--progress", "json"], environment: cloud)
        #expect(backup.status == 0, "\(backup.all)")
        let id = try #require(try backup.json()["backupId"] as? String)
        #expect((try backup.json()["cloud"] as? String)?.hasPrefix("s3://\(bucket)/cli/") == true)
        // The upload is a phase of its own, counted in the archive's bytes sent.
        let reports = backup.output.stderr.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let uploading = reports.filter { ($0["phase"] as? String)?.hasPrefix("uploading to s3://\(bucket)/cli/") == true }
        #expect(uploading.last?["bytesDone"] as? Int == (try backup.json()["bytes"] as? Int), "\(backup.output.stderr)")
        let list = try arca(["list", "--json"], environment: cloud)
        let places = (try list.json()["backups"] as? [[String: Any]])?.compactMap { $0["location"] as? String }
        #expect(places?.sorted() == ["cloud", "local"], "\(list.all)")
        let verify = try arca(["verify", "--cloud", id], environment: cloud)
        #expect(verify.status == 0 && verify.output.stdout.contains("sidecar md5: match"), "\(verify.all)")

        // Without the local copy, the id is found in the bucket.
        for suffix in [".arca", ".arca.md5"] { try FileManager.default.removeItem(atPath: "\(repo)/local/\(id)\(suffix)") }
        let restore = try arca(["restore", id, "--target-url", "dbname=\(target.name)", "--create", "--confirm"], environment: cloud)
        #expect(restore.status == 0, "\(restore.all)")
        #expect(try arca(["compare", "dbname=\(source.name)", "dbname=\(target.name)"]).status == 0)
        let download = try arca(["sync", "--download", "--json"], environment: cloud)
        #expect((try download.json()["copied"] as? [String]) == [id], "\(download.all)")
        let upload = try arca(["sync"], environment: cloud)
        #expect(upload.status == 0 && upload.output.stdout.contains("Uploaded 0 backup(s)"), "\(upload.all)")

        // A bucket without credentials, and --upload-only without a bucket: usage errors.
        let noKeys = try arca(["list"], environment: ["AWS_S3_BUCKET": bucket, "ARCA_REPO": repo, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""])
        #expect(noKeys.status == 2 && noKeys.output.stderr.contains("AWS_ACCESS_KEY_ID"), "\(noKeys.all)")
        let noKeysVerify = try arca(["verify", "--cloud", id], environment: ["AWS_S3_BUCKET": bucket, "ARCA_REPO": repo, "AWS_ACCESS_KEY_ID": ""])
        #expect(noKeysVerify.status == 2 && noKeysVerify.output.stderr.contains("AWS_ACCESS_KEY_ID")
            && !noKeysVerify.output.stderr.contains("ExitCode"), "\(noKeysVerify.all)")
        let noBucket = try arca(["backup", "--database-url", "dbname=\(source.name)", "--upload-only"], environment: ["ARCA_REPO": repo, "AWS_S3_BUCKET": ""])
        #expect(noBucket.status == 2 && noBucket.output.stderr.contains("AWS_S3_BUCKET"), "\(noBucket.all)")
    }

    /// `backup --incremental` as a user sees it: the base and what it
    /// added, the chain in `inspect` and `verify`, `incr` in `list`, and a
    /// base that cleanup keeps, saying why.
    @Test func incrementalBackupInspectListVerifyCleanup() throws {
        let source = try TestDatabase("cli_incr_src")
        defer { source.drop() }
        try source.execute("""
            CREATE TABLE kept AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 20000) g;
            CREATE TABLE changed AS SELECT g AS id FROM generate_series(1, 100) g;
            """)
        let repo = TestPaths.temporaryDirectory("cli-incremental") + "/repo"
        let environment = ["DATABASE_URL": "dbname=\(source.name)"]
        let full = try arca(["backup", "--repo", repo, "--json"], environment: environment)
        #expect(full.status == 0, "\(full.all)")
        let base = try #require(try full.json()["backupId"] as? String)
        try source.execute("INSERT INTO changed VALUES (101)")
        let run = try arca(["backup", "--incremental", "--repo", repo, "--json"], environment: environment)
        #expect(run.status == 0, "\(run.all)")
        let result = try run.json()
        let id = try #require(result["backupId"] as? String)
        #expect(result["base"] as? String == base && result["referencedTables"] as? Int == 1)
        #expect((result["bytes"] as? Int ?? .max) < (try full.json()["bytes"] as? Int ?? 0))

        let inspect = try arca(["inspect", id, "--repo", repo])
        #expect(inspect.output.stdout.contains("Chain      incremental on \(base): tables 1 stored here, 1 in \(base)"), "\(inspect.all)")
        let list = try arca(["list", "--repo", repo])
        #expect(list.output.stdout.contains("incr") && list.output.stdout.contains("full"), "\(list.all)")
        let verify = try arca(["verify", id, "--repo", repo])
        #expect(verify.status == 0 && verify.output.stdout.contains("through the chain"), "\(verify.all)")
        let cleanup = try arca(["cleanup", "--repo", repo, "--retention-days", "0", "--keep-last", "1", "--dry-run", "--json"])
        #expect(cleanup.status == 0 && cleanup.output.stdout.contains("needed by incremental backup \(id)"), "\(cleanup.all)")
    }

    @Test func damagedArchiveFailsVerifyWithStatus3() throws {
        let source = try TestDatabase("cli_damaged")
        defer { source.drop() }
        try source.execute("CREATE TABLE notes AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 20000) g")
        let repo = TestPaths.temporaryDirectory("cli-damaged") + "/repo"
        let backup = try arca(["backup", "--database-url", "dbname=\(source.name)", "--repo", repo, "--json"])
        let path = try #require(try backup.json()["path"] as? String)
        let manifest = try arca(["inspect", path, "--json"]).json()
        let tables = try #require(manifest["tables"] as? [[String: Any]])
        let parts = try #require(tables.first?["parts"] as? [[String: Any]])
        let chunks = try #require(parts.first?["chunks"] as? [[String: Any]])
        let offset = try #require(chunks.first?["offset"] as? Int)
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: UInt64(offset + 40))
        try handle.write(contentsOf: [0xAA, 0xBB])
        try handle.close()

        let verify = try arca(["verify", path, "--repo", repo])
        #expect(verify.status == 3)
        #expect(verify.output.stderr.contains("table public.notes, chunk 0"), "\(verify.all)")
        let json = try arca(["verify", path, "--repo", repo, "--json"])
        #expect(json.status == 3)
        #expect(try json.json()["intact"] as? Bool == false)
    }

    /// A well-formed manifest whose row counts overflow when summed: every
    /// command that reads it says so and exits 3 (it used to trap); `list`
    /// shows it as unreadable.
    @Test func forgedManifestNumbersEndInStatus3() throws {
        let repo = TestPaths.temporaryDirectory("cli-forged") + "/repo"
        let path = try ForgedArchive.overflowingRowCounts(inRepository: repo)
        let id = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        for arguments in [["inspect", path], ["verify", path, "--repo", repo], ["inspect", id, "--repo", repo, "--json"],
                          ["restore", id, "--repo", repo, "--target-url", "dbname=cli_forged_never_created", "--confirm"]] {
            let run = try arca(arguments)
            // A damaged archive is status 3 for every command (ErrorKind.damaged).
            #expect(run.status == 3, "\(arguments): \(run.all)")
            #expect(run.all.contains("manifest is invalid") && run.all.contains("do not fit in 64 bits"), "\(arguments): \(run.all)")
        }
        let list = try arca(["list", "--repo", repo])
        #expect(list.status == 0 && list.output.stdout.contains("unreadable"), "\(list.all)")
        let status = try arca(["status", "--repo", repo])
        #expect(status.status != 3 && !status.all.contains("Fatal error"), "\(status.all)")
    }

    @Test func usageErrorsExitWith2() throws {
        let unknown = try arca(["backup", "--no-such-flag"])
        #expect(unknown.status == 2)
        #expect(unknown.output.stderr.contains("--no-such-flag"))

        let missingValue = try arca(["backup", "--level"])
        #expect(missingValue.status == 2)

        let badLevel = try arca(["backup", "--level", "99"], environment: ["DATABASE_URL": "dbname=x"])
        #expect(badLevel.status == 2)

        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = nil
        let noDatabase = Run(output: try Tool.capture("/usr/bin/env", ["-u", "DATABASE_URL", TestPaths.arca, "backup", "--repo", "/tmp/unused"]))
        #expect(noDatabase.status == 2)
        #expect(noDatabase.output.stderr.contains("DATABASE_URL"))

        let badURL = try arca(["backup", "--database-url", "postgresql://host/db?nosuchoption=1", "--repo", "/tmp/unused"])
        #expect(badURL.status == 2)
        #expect(badURL.output.stderr.contains("Invalid connection string"))
    }

    @Test func missingBackupsAndWrongPathsFailWithAHint() throws {
        let repo = TestPaths.temporaryDirectory("cli-missing") + "/repo"
        let missing = try arca(["verify", "backup_20200101_000000", "--repo", repo])
        #expect(missing.status == 1)
        #expect(missing.output.stderr.contains("arca list"))

        // Not a backup id, not an archive file: the argument is wrong (usage, 2).
        let invalid = try arca(["inspect", "%2e%2e", "--repo", repo])
        #expect(invalid.status == 2)
        #expect(invalid.output.stderr.contains("neither a backup id"))

        // A path is read as the user asked, and a file that is not an archive says so.
        let notArchive = try arca(["inspect", "/etc/passwd", "--repo", repo])
        #expect(notArchive.status == 3)
        #expect(notArchive.output.stderr.contains("not an Arca archive"))

        let directory = TestPaths.temporaryDirectory("cli-dir") + "/x.arca"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let notFile = try arca(["verify", directory, "--repo", repo])
        #expect(notFile.status == 2)
        #expect(notFile.output.stderr.contains("not a regular file"))
        let device = try arca(["restore", "/dev/null", "--repo", repo, "--target-url", "dbname=never_created", "--confirm"])
        #expect(device.status == 2 && device.output.stderr.contains("not a regular file"), "\(device.all)")

        let empty = try arca(["list", "--repo", repo])
        #expect(empty.status == 0)
        #expect(empty.output.stdout.contains("No backups"))
    }

    /// With a key configured, a plain archive is an integrity failure (exit 3)
    /// for restore and verify, and `list` notes it; --allow-unencrypted accepts it.
    @Test func plainArchiveInAnEncryptedRepository() throws {
        let source = try TestDatabase("cli_plain_src")
        let target = try TestDatabase("cli_plain_dst", creating: false)
        defer { source.drop(); target.drop() }
        try source.execute("CREATE TABLE note (id int PRIMARY KEY, body text); INSERT INTO note VALUES (1, 'a')")
        let repo = TestPaths.temporaryDirectory("cli-plain") + "/repo"
        let backup = try arca(["backup", "--database-url", "dbname=\(source.name)", "--repo", repo, "--json"])
        let id = try #require(try backup.json()["backupId"] as? String)
        let keyed = ["ARCA_ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]

        let restore = ["restore", id, "--repo", repo, "--target-url", "dbname=\(target.name)", "--create", "--confirm"]
        let refused = try arca(restore, environment: keyed)
        #expect(refused.status == 3, "\(refused.all)")
        #expect(refused.output.stderr.contains("is not encrypted, but an encryption key is configured"))
        #expect(refused.output.stderr.contains("--allow-unencrypted"))
        #expect(try arca(["verify", id, "--repo", repo], environment: keyed).status == 3)
        #expect(try arca(["list", "--repo", repo], environment: keyed).output.stdout.contains("Note: \(id) (local) is unencrypted in a repository with a key"))

        let allowed = try arca(restore + ["--allow-unencrypted"], environment: keyed)
        #expect(allowed.status == 0, "\(allowed.all)")
    }

    /// `--progress json`: one JSON object per line on stderr, from the first
    /// phase to 100 %; by default, with stderr not a terminal, nothing; on a
    /// terminal, one line rewritten in place.
    @Test func progressIsReportedAsJSONOrOnATerminalOnly() throws {
        let source = try TestDatabase("cli_progress")
        let target = try TestDatabase("cli_progress_dst", creating: false)
        defer { source.drop(); target.drop() }
        try source.execute("CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 4) AS body FROM generate_series(1, 100000) g")
        let repo = TestPaths.temporaryDirectory("cli-progress") + "/repo"
        let database = ["DATABASE_URL": "dbname=\(source.name)"]

        func reports(_ run: Run) throws -> [[String: Any]] {
            try run.output.stderr.split(separator: "\n").map { line in
                try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            }
        }
        let backup = try arca(["backup", "--repo", repo, "--json", "--progress", "json"], environment: database)
        #expect(backup.status == 0, "\(backup.all)")
        let id = try #require(try backup.json()["backupId"] as? String)
        let backupReports = try reports(backup)
        #expect(backupReports.first?["operation"] as? String == "backup")
        #expect(backupReports.contains { $0["phase"] as? String == "copying tables" })
        #expect(backupReports.last?["percent"] as? Double == 100)

        let restore = try arca(["restore", id, "--repo", repo, "--target-url", "dbname=\(target.name)", "--create", "--confirm", "--progress", "json"])
        #expect(restore.status == 0, "\(restore.all)")
        let restoreReports = try reports(restore)
        #expect(restoreReports.contains { $0["phase"] as? String == "loading tables" })
        #expect(restoreReports.last?["percent"] as? Double == 100)
        #expect(restoreReports.last?["bytesTotal"] as? Int == restoreReports.last?["bytesDone"] as? Int)

        let verify = try arca(["verify", id, "--repo", repo, "--progress", "json"])
        #expect(try reports(verify).last?["operation"] as? String == "verify")

        // Not a terminal, no --progress: nothing on stderr.
        let quiet = try arca(["verify", id, "--repo", repo])
        #expect(quiet.status == 0)
        #expect(quiet.output.stderr.isEmpty, "\(quiet.output.stderr)")

        // On a terminal (script(1) gives the command a pseudo-terminal): the line is redrawn in place.
        let terminal = try Tool.capture("script", ["-qefc", "\(TestPaths.arca) verify \(id) --repo \(repo)", "/dev/null"])
        #expect(terminal.status == 0, "\(terminal.stdout)")
        #expect(terminal.stdout.contains("\r\u{1B}[2Kverify  reading and checking every chunk"), "\(terminal.stdout.debugDescription)")
    }

}
