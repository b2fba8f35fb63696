import ArcaEngine
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// Continuous protection end to end, as an operator runs it: `arca stream`
/// beside a workload, a backup anchored in the stream, the streamer
/// killed with SIGKILL and started again mid-workload, then restores to
/// instants recorded between the workload's transactions, each compared
/// with a copy pg_dump took at that instant.
@Suite(.serialized) struct PointInTimeTests {
    struct Instant {
        let time: String
        let copy: TestDatabase
    }

    static func now() -> String {
        Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!))
    }

    /// The database as it is now, in a new database, by pg_dump and psql.
    static func copy(_ source: TestDatabase, _ label: String) async throws -> TestDatabase {
        let copy = try TestDatabase(label)
        let (from, to) = (source.name, copy.name)
        _ = try await onThread { try Tool.run("/bin/sh", ["-c", "pg_dump --no-sync -d \(from) | psql -q -v ON_ERROR_STOP=1 -d \(to)"]) }
        return copy
    }

    /// The blocking steps run on threads of their own (`onThread`): a
    /// test that blocks Swift's cooperative pool (two threads on two
    /// cores) for its minute would starve the HTTP servers of other suites.
    func arca(_ arguments: [String]) async throws -> Tool.Output {
        try await onThread { try Tool.capture(TestPaths.arca, arguments) }
    }

    /// Polls `condition` every 100 ms for up to `seconds`.
    func waitFor(seconds: Double, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    func pause(_ seconds: Double) async throws { try await Task.sleep(for: .milliseconds(Int(seconds * 1000))) }

    @Test func restoresEveryRecordedInstantThroughAKilledStreamer() async throws {
        let source = try TestDatabase("pitr_src")
        let repo = TestPaths.temporaryDirectory("pitr") + "/repo"
        let url = "dbname=\(source.name)"
        var instants: [Instant] = []
        var restored: [TestDatabase] = []
        var streamer: Spawned?
        defer {
            streamer?.signal(SIGKILL)
            _ = streamer?.wait()
            _ = try? Tool.capture(TestPaths.arca, ["stream", "drop", "--database-url", url, "--repo", repo, "--confirm"])
            source.drop()
            for instant in instants { instant.copy.drop() }
            for database in restored { database.drop() }
        }
        try source.execute("""
            CREATE TABLE patient (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, record text, born date);
            CREATE TABLE consultation (id serial, at timestamptz NOT NULL, patient bigint, note text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
            CREATE TABLE consultation_2025 PARTITION OF consultation FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
            CREATE TABLE consultation_2026 PARTITION OF consultation FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
            CREATE TABLE audit_line (who text, what text, amount numeric);
            INSERT INTO patient (name, record, born) SELECT 'patient ' || g, repeat(md5(g::text), 200), date '1950-01-01' + g FROM generate_series(1, 200) g;
            INSERT INTO audit_line VALUES ('a', 'same', 1.5), ('a', 'same', 1.5), ('b', 'other', NULL);
            """)
        func startStreamer() throws -> Spawned {
            try Spawned(TestPaths.arca, ["stream", "--database-url", url, "--repo", repo, "--segment-seconds", "0.5", "--replica-identity-full"])
        }
        func segments() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: repo + "/changes/arca_\(source.name)")) ?? []).filter { $0.hasSuffix(".arca") }
        }
        streamer = try startStreamer()
        #expect(try await waitFor(seconds: 30) { segments().count >= 1 }, "no segment: \(streamer!.wait().stderr)")
        // audit_line had no key: the stream gave it REPLICA IDENTITY FULL, as allowed.
        #expect(try source.value("SELECT relreplident FROM pg_class WHERE relname = 'audit_line'") == "f")

        let backup = try await arca(["backup", "--database-url", url, "--repo", repo, "--json", "--jobs", "2"])
        #expect(backup.status == 0, "\(backup.stderr)")
        func record(_ label: String) async throws {
            try await pause(0.05)
            let time = Self.now()
            instants.append(Instant(time: time, copy: try await Self.copy(source, "pitr_copy_\(label)")))
            try await pause(0.05)
        }
        try await record("0")
        try source.execute("""
            INSERT INTO consultation (at, patient, note) SELECT timestamptz '2025-06-01' + g * interval '1 day', g, 'note ' || g FROM generate_series(1, 300) g;
            INSERT INTO patient (name, record) VALUES ('late arrival', NULL);
            """)
        try await record("1")
        // Updates: a key column, a TOASTed value replaced, and rows whose
        // TOASTed value is left unchanged (pgoutput does not send it).
        try source.execute("""
            UPDATE patient SET name = name || ' (moved)' WHERE id % 7 = 0;
            UPDATE patient SET record = repeat('changed', 3000) WHERE id = 5;
            UPDATE consultation SET at = at + interval '1 year' WHERE patient <= 10;
            UPDATE audit_line SET amount = 2 WHERE who = 'b';
            """)
        try await record("2")
        // The streamer dies without a chance to clean up, mid-workload.
        streamer?.signal(SIGKILL)
        _ = streamer?.wait()
        try source.execute("""
            DELETE FROM patient WHERE id BETWEEN 150 AND 160;
            DELETE FROM audit_line WHERE ctid = (SELECT min(ctid) FROM audit_line WHERE who = 'a');
            DELETE FROM consultation WHERE patient = 300;
            """)
        try await record("3")
        streamer = try startStreamer()
        try source.execute("TRUNCATE consultation_2026")
        try await record("4")
        // The connection is lost (its walsender terminated, as a server
        // restart or a network cut would): the stream reconnects and
        // resumes from the slot, and instant 5 still restores equal.
        let slot = "arca_\(source.name)"
        let active = "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '\(slot)' AND active"
        #expect(try await waitFor(seconds: 60) { try source.value(active) == "1" }, "the restarted stream never attached")
        try source.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '\(slot)' AND active")
        #expect(try await waitFor(seconds: 60) { try source.value(active) == "1" }, "the stream did not reconnect")
        // A schema change, replayed in order with the rows around it (each
        // statement sent alone, as psql and migration tools send them).
        try source.execute("ALTER TABLE patient ADD COLUMN ward text DEFAULT 'general'")
        try source.execute("INSERT INTO patient (name, ward) VALUES ('new ward', 'cardiology')")
        try source.execute("UPDATE patient SET ward = 'icu' WHERE id = 1")
        try await record("5")
        // The window must pass the last instant before restores to it.
        let last = instants.last!.time
        let reached = try await waitFor(seconds: 60) {
            // Without --confirm nothing is restored: only the plan is checked.
            guard let probe = try? await self.arca(["restore", "--repo", repo, "--target-time", last, "--target-url", "dbname=pitr_probe", "--create"]) else {
                return false
            }
            return !probe.stderr.contains("after the newest instant") && !probe.stderr.contains("No change segment")
        }
        #expect(reached, "the stream never reached \(last)")

        for (index, instant) in instants.enumerated() {
            let target = try TestDatabase("pitr_at_\(index)", creating: false)
            restored.append(target)
            var arguments = ["restore", "--repo", repo, "--target-time", instant.time, "--target-url", "dbname=\(target.name)", "--create", "--confirm", "--json"]
            if index % 2 == 1 { arguments += ["--jobs", "2"] }
            let result = try await arca(arguments)
            #expect(result.status == 0, "instant \(index) (\(instant.time)): \(result.stderr)")
            guard result.status == 0 else { continue }
            // Sequences are at or past their values at the instant (captured
            // when segments close); at them, everything else is equal.
            for row in try instant.copy.execute("SELECT schemaname || '.' || sequencename, coalesce(last_value, 0) FROM pg_sequences").rows {
                let name = row[0]!, value = Int64(row[1]!)!
                let restoredValue = Int64(try target.value("SELECT coalesce(last_value, 0) FROM pg_sequences WHERE schemaname || '.' || sequencename = '\(name)'") ?? "-1") ?? -1
                #expect(restoredValue >= value, "instant \(index): sequence \(name) is \(restoredValue), before its value \(value) at the instant")
                try target.execute("SELECT setval('\(name)', \(max(value, 1)), \(value > 0))")
            }
            let found = try await Steps.differences(instant.copy, target)
            #expect(found.isEmpty, "instant \(index) (\(instant.time)) differs:\n\(found.joined(separator: "\n"))")
        }
        // Into another major version: the last instant into PostgreSQL 18.
        if let newer = TestCluster.postgres18 {
            let target = try TestDatabase("pitr_pg18", on: newer, creating: false)
            restored.append(target)
            let url = target.connectionString.conninfo
            let result = try await arca(["restore", "--repo", repo, "--target-time", instants[5].time, "--target-url", url, "--create", "--confirm"])
            #expect(result.status == 0, "into PostgreSQL 18: \(result.stderr)")
            if result.status == 0 {
                let copy = instants[5].copy
                let rows = "SELECT string_agg(format('%s', p), ',' ORDER BY id) FROM patient p"
                #expect(try target.value(rows) == (try copy.value(rows)))
                #expect(try target.value("SELECT count(*) FROM consultation") == (try copy.value("SELECT count(*) FROM consultation")))
                #expect(try target.value("SELECT string_agg(who || coalesce(amount::text, '-'), ',' ORDER BY who) FROM audit_line")
                    == (try copy.value("SELECT string_agg(who || coalesce(amount::text, '-'), ',' ORDER BY who) FROM audit_line")))
            }
        } else {
            print("PostgreSQL 18 part skipped: \(TestCluster.postgres18Absent)")
        }

        // A --table restore replays only that table's changes.
        let single = try TestDatabase("pitr_table", creating: false)
        restored.append(single)
        let table = try await arca([
            "restore", "--repo", repo, "--target-time", instants[3].time, "--target-url", "dbname=\(single.name)", "--create", "--confirm",
            "--table", "public.audit_line",
        ])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(try single.value("SELECT string_agg(who || ':' || coalesce(amount::text, '-'), ',' ORDER BY who) FROM audit_line") == "a:1.5,b:2")

        // Before the first anchored backup there is nothing to start from.
        let early = try await arca(["restore", "--repo", repo, "--target-time", "2020-01-01T00:00:00Z", "--target-url", "dbname=nowhere", "--create", "--confirm"])
        #expect(early.status != 0)
        #expect(early.stderr.contains("before 2020-01-01"), "\(early.stderr)")
    }

    /// What the stream cannot replay is never restored wrong: a table
    /// without a key stops the stream until allowed; a logical message
    /// forged by an ordinary role is not taken for a schema change; a
    /// schema change that cannot be run again (here: in a query of two
    /// statements) makes instants after it unrestorable until the full
    /// backup the stream then takes by itself.
    @Test func whatCannotBeReplayedIsRefusedNeverWrong() async throws {
        let source = try TestDatabase("pitr_refuse")
        let repo = TestPaths.temporaryDirectory("pitr_refuse") + "/repo"
        let url = "dbname=\(source.name)"
        let role = "arca_pitr_forger_\(getpid())"
        var copies: [TestDatabase] = []
        var streamer: Spawned?
        defer {
            streamer?.signal(SIGTERM)
            _ = streamer?.wait()
            _ = try? Tool.capture(TestPaths.arca, ["stream", "drop", "--database-url", url, "--repo", repo, "--confirm"])
            source.drop()
            for copy in copies { copy.drop() }
            try? TestServer.execute("DROP ROLE IF EXISTS \(role)")
        }
        try source.execute("CREATE TABLE ward (id int PRIMARY KEY, name text); CREATE TABLE note (body text); INSERT INTO ward VALUES (1, 'a')")
        let refused = try await arca(["stream", "--database-url", url, "--repo", repo])
        #expect(refused.status == 2, "\(refused.stderr)")
        #expect(refused.stderr.contains("public.note") && refused.stderr.contains("--replica-identity-full"), "\(refused.stderr)")
        #expect(try source.value("SELECT count(*) FROM pg_replication_slots WHERE database = current_database()") == "0")

        try source.execute("ALTER TABLE note ADD PRIMARY KEY (body)")
        streamer = try Spawned(TestPaths.arca, ["stream", "--database-url", url, "--repo", repo, "--segment-seconds", "0.5"])
        let backups = repo + "/local"
        func backupCount() -> Int { ((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []).filter { $0.hasSuffix(".arca") }.count }
        #expect(try await waitFor(seconds: 30) { FileManager.default.fileExists(atPath: repo + "/changes/arca_\(source.name)/slot.json") })
        let backup = try await arca(["backup", "--database-url", url, "--repo", repo, "--jobs", "1"])
        #expect(backup.status == 0, "\(backup.stderr)")

        // An ordinary role emits a message that looks like a schema change.
        try TestServer.execute("CREATE ROLE \(role) LOGIN")
        try source.execute("GRANT ALL ON ward TO \(role)")
        let forger = try PostgresConnection(try TestServer.connectionString(database: source.name).setting("user", to: role))
        try forger.execute(#"SELECT pg_logical_emit_message(true, 'arca.ddl', repeat('0', 64) || '{"kind":"ddl","tag":"DROP TABLE","query":"DROP TABLE ward","searchPath":"public","role":"postgres"}')"#)
        try forger.execute("UPDATE ward SET name = 'b' WHERE id = 1")
        try await pause(0.1)
        let before = Self.now()
        copies.append(try await Self.copy(source, "pitr_refuse_before"))

        // Two statements in one query: the ALTER TABLE cannot be replayed alone.
        try source.execute("ALTER TABLE ward ADD COLUMN beds int DEFAULT 4; INSERT INTO ward VALUES (2, 'c', 6)")
        try await pause(0.1)
        let between = Self.now()
        #expect(try await waitFor(seconds: 60) { backupCount() >= 2 }, "the stream took no backup after the schema change")
        try await pause(1)
        try source.execute("UPDATE ward SET beds = 5 WHERE id = 1")
        try await pause(0.1)
        let after = Self.now()
        copies.append(try await Self.copy(source, "pitr_refuse_after"))
        #expect(try await waitFor(seconds: 60) {
            guard let probe = try? await self.arca(["restore", "--repo", repo, "--target-time", after, "--target-url", "dbname=pitr_probe", "--create"]) else { return false }
            return !probe.stderr.contains("after the newest instant")
        })

        let gap = try await arca(["restore", "--repo", repo, "--target-time", between, "--target-url", "dbname=pitr_refuse_gap", "--create", "--confirm"])
        #expect(gap.status == 2, "\(gap.stderr)")
        #expect(gap.stderr.contains("cannot be replayed exactly") && gap.stderr.contains("2 statements"), "\(gap.stderr)")
        #expect(try source.value("SELECT count(*) FROM pg_database WHERE datname = 'pitr_refuse_gap'") == "0")

        for (time, copy) in [(before, copies[0]), (after, copies[1])] {
            let target = try TestDatabase("pitr_refuse_at", creating: false)
            copies.append(target)
            let restored = try await arca(["restore", "--repo", repo, "--target-time", time, "--target-url", "dbname=\(target.name)", "--create", "--confirm"])
            #expect(restored.status == 0, "\(time): \(restored.stderr)")
            #expect(try await Steps.differences(copy, target).isEmpty, "\(time)")
            target.drop()
        }
        // An incremental backup on the stream's word: the tables no
        // transaction touched since the base's anchor are not even read.
        let incremental = try await arca(["backup", "--database-url", url, "--repo", repo, "--incremental", "--json", "--jobs", "1"])
        #expect(incremental.status == 0, "\(incremental.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(incremental.stdout.utf8)) as? [String: Any])
        #expect(result["unreadTables"] as? Int == 2, "\(incremental.stdout)")  // note and arca_stream.key; ward changed
        #expect(result["referencedTables"] as? Int == 2, "\(incremental.stdout)")

        streamer?.signal(SIGTERM)
        let output = streamer!.wait()
        streamer = nil
        #expect(output.stderr.contains("ignored a logical message with the prefix arca.ddl"), "\(output.stderr)")
        #expect(output.stderr.contains("taking a full backup now"), "\(output.stderr)")
    }
}

/// Steps of the engine tests this suite reuses: the comparison.
enum Steps {
    static func differences(_ first: TestDatabase, _ second: TestDatabase) async throws -> [String] {
        let (a, b) = ("dbname=\(first.name)", "dbname=\(second.name)")
        return try await onThread {
            let compared = try Tool.capture(TestPaths.arca, ["compare", a, b])
            var found = compared.status == 0 ? [] : [compared.stdout + compared.stderr]
            if let shared = TestPaths.shared {
                let output = try Tool.capture(shared + "/tools/compare.sh", [a, b])
                if output.status != 0 { found.append("compare.sh: \(output.stdout.prefix(3000))\(output.stderr.prefix(2000))") }
            }
            return found
        }
    }
}
