@testable import ArcaEngine
import ArcaOperations
import ArcaFormat
@testable import ArcaServer
import ArcaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The REST API through the real router and middleware (HummingbirdTesting).
@Suite struct APITests {
    static let secret = String(repeating: "k", count: 24) + "-api-test-secret-0123456789"

    struct Fixture {
        var database: TestDatabase
        var repository: Repository
        var configuration: ServerConfiguration
        var authority: TokenAuthority

        func token(_ role: Role, subject: String = "tester", expires: TimeInterval = 3600) async throws -> String {
            try await authority.sign(ArcaClaims(subject: subject, role: role, expires: Date().addingTimeInterval(expires)))
        }

        func app() -> some ApplicationProtocol {
            Application(router: buildRouter(configuration, authority: authority))
        }
    }

    func fixture(_ label: String, environment: [String: String] = [:]) async throws -> Fixture {
        let database = try TestDatabase(label)
        try database.execute("""
            CREATE TABLE "User" (id serial PRIMARY KEY, name text);
            CREATE TABLE "Patient" (id serial PRIMARY KEY, user_id int REFERENCES "User", note text);
            INSERT INTO "User" (name) SELECT 'user ' || g FROM generate_series(1, 50) g;
            INSERT INTO "Patient" (user_id, note) SELECT g, 'note ' || g FROM generate_series(1, 50) g;
            """)
        let repository = Repository(root: TestPaths.temporaryDirectory(label) + "/repo")
        let service = try ServiceConfiguration(environment: ["DATABASE_URL": "dbname=\(database.name)"], repository: repository.root)
        let configuration = try ServerConfiguration(
            service: service, environment: ["JWT_SECRET": Self.secret, "ARCA_RATE_LIMIT": "1000/60"].merging(environment) { $1 })
        return Fixture(database: database, repository: repository, configuration: configuration, authority: try await TokenAuthority(secret: Self.secret))
    }

    func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any])
    }

    func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

    @Test func authenticationFailuresAre401AndRolesAre403() async throws {
        let f = try await fixture("api_auth")
        defer { f.database.drop() }
        let viewer = try await f.token(.viewer)
        let expired = try await f.token(.admin, expires: -60)
        let other = try await TokenAuthority(secret: String(repeating: "x", count: 40)).sign(
            ArcaClaims(subject: "mallory", role: .admin, expires: Date().addingTimeInterval(600)))
        // alg: none, with a payload that would otherwise be valid.
        func base64url(_ text: String) -> String {
            Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let none = base64url(#"{"alg":"none","typ":"JWT"}"#) + "." + base64url(#"{"sub":"mallory","role":"admin","exp":\#(Int(Date().timeIntervalSince1970) + 600)}"#) + "."
        try await f.app().test(.router) { client in
            for headers: HTTPFields in [[:], [.authorization: "Basic abc"], bearer("not.a.jwt"), bearer(expired), bearer(other), bearer(none)] {
                try await client.execute(uri: "/api/backup", method: .get, headers: headers) { (response) async throws in
                    #expect(response.status == .unauthorized, "\(headers)")
                    let body = try json(response.body)
                    #expect(body["success"] as? Bool == false)
                    #expect(body["code"] as? String == "unauthorized")
                }
            }
            try await client.execute(uri: "/api/backup", method: .get, headers: bearer(viewer)) { (response) async throws in
                #expect(response.status == .ok)
                #expect(try json(response.body)["backups"] as? [Any] != nil)
            }
            try await client.execute(uri: "/api/backup", method: .post, headers: bearer(viewer)) { (response) async throws in
                #expect(response.status == .forbidden)
                #expect(try json(response.body)["code"] as? String == "forbidden")
            }
            try await client.execute(uri: "/api/backup", method: .delete, headers: bearer(try await f.token(.operator))) { (response) async throws in
                #expect(response.status == .forbidden)
            }
        }
        // Six failures from one address within a minute: one audit line.
        let audit = try AuditTrail(repository: f.repository, action: "test").log.records(action: "login_failed")
        #expect(audit.count == 1)
    }

    /// `{"incremental": true}` asks for an incremental backup; a base that
    /// an incremental backup needs cannot be deleted; a body with other
    /// fields is refused.
    @Test func incrementalBackupThroughTheAPI() async throws {
        let f = try await fixture("api_incremental")
        defer { f.database.drop() }
        let operatorToken = try await f.token(.operator)
        let admin = try await f.token(.admin)
        try await f.app().test(.router) { client in
            var full = ""
            try await client.execute(uri: "/api/backup", method: .post, headers: bearer(operatorToken)) { (response) async throws in
                #expect(response.status == .ok)
                let body = try json(response.body)
                full = try #require(body["backupId"] as? String)
                #expect(body["base"] == nil)
            }
            try await client.execute(
                uri: "/api/backup", method: .post, headers: bearer(operatorToken), body: ByteBuffer(string: #"{"incremental":true}"#)
            ) { (response) async throws in
                #expect(response.status == .ok)
                let body = try json(response.body)
                #expect(body["base"] as? String == full)
                #expect(body["referencedTables"] as? Int == 2)
            }
            try await client.execute(
                uri: "/api/backup", method: .post, headers: bearer(operatorToken), body: ByteBuffer(string: #"{"incremental":true,"level":19}"#)
            ) { (response) async throws in
                #expect(response.status == .badRequest)
            }
            // `copyFormat` as `--copy-format`: a bad value is refused before any backup.
            try await client.execute(
                uri: "/api/backup", method: .post, headers: bearer(operatorToken), body: ByteBuffer(string: #"{"copyFormat":"csv"}"#)
            ) { (response) async throws in
                #expect(response.status == .badRequest)
                let body = try json(response.body)
                #expect(body["code"] as? String == "invalid_body" && (body["error"] as? String ?? "\(body)").contains("copyFormat"), "\(body)")
            }
            var text = ""
            try await client.execute(
                uri: "/api/backup", method: .post, headers: bearer(operatorToken), body: ByteBuffer(string: #"{"copyFormat":"text","incremental":false}"#)
            ) { (response) async throws in
                #expect(response.status == .ok)
                text = try #require(try json(response.body)["backupId"] as? String)
            }
            try await client.execute(uri: "/api/backup/\(text)", method: .get, headers: bearer(operatorToken)) { (response) async throws in
                let tables = try #require(try json(response.body)["tables"] as? [[String: Any]])
                #expect(!tables.isEmpty && tables.allSatisfy { $0["copyFormat"] as? String == "text" }, "\(tables)")
            }
            try await client.execute(uri: "/api/backup/\(full)", method: .delete, headers: bearer(admin)) { (response) async throws in
                #expect(response.status == .conflict)
                #expect(try json(response.body)["code"] as? String == "backup_needed")
            }
        }
    }

    @Test func backupListShowVerifyDeleteAndCleanup() async throws {
        let f = try await fixture("api_backup")
        defer { f.database.drop() }
        let operatorToken = try await f.token(.operator, subject: "admin-screen")
        let admin = try await f.token(.admin)
        try await f.app().test(.router) { client in
            var id = ""
            try await client.execute(uri: "/api/backup", method: .post, headers: bearer(operatorToken)) { (response) async throws in
                #expect(response.status == .ok)
                let body = try json(response.body)
                #expect(body["success"] as? Bool == true)
                id = try #require(body["backupId"] as? String)
                #expect(BackupID(id) != nil)
                #expect((body["size"] as? String)?.hasSuffix("KB") == true || (body["size"] as? String)?.hasSuffix("B") == true)
                #expect((body["timestamp"] as? String)?.hasSuffix("Z") == true)
            }
            try await client.execute(uri: "/api/backup", method: .get, headers: bearer(operatorToken)) { (response) async throws in
                let backups = try #require(try json(response.body)["backups"] as? [[String: Any]])
                #expect(backups.first?["id"] as? String == id)
                #expect(backups.first?["type"] as? String == "manual")
                // Read back and verified once published (ARCA_VERIFY_AFTER_BACKUP).
                #expect(backups.first?["integrity"] as? String == "verified")
                #expect(backups.first?["rows"] as? Int == 100)
                #expect(backups.first?["location"] as? String == "local")
            }
            try await client.execute(uri: "/api/backup/\(id)/verify", method: .post, headers: bearer(operatorToken)) { (response) async throws in
                #expect(response.status == .ok)
                #expect(try json(response.body)["integrity"] as? String == "verified")
            }
            try await client.execute(uri: "/api/backup/\(id)", method: .get, headers: bearer(operatorToken)) { (response) async throws in
                let body = try json(response.body)
                #expect(body["status"] as? String == "completed")
                #expect(body["integrity"] as? String == "verified")
                #expect((body["tables"] as? [[String: Any]])?.count == 2)
            }
            try await client.execute(uri: "/api/backup/backup_20000101_000000", method: .get, headers: bearer(operatorToken)) { (response) async throws in
                #expect(response.status == .notFound)
                #expect(try json(response.body)["code"] as? String == "backup_not_found")
            }
            try await client.execute(uri: "/api/backup", method: .delete, headers: bearer(admin)) { (response) async throws in
                #expect(response.status == .ok)
                let body = try json(response.body)
                #expect(body["deletedCount"] as? Int == 0)
                #expect(body["message"] as? String == "0 old backups removed")
            }
            try await client.execute(uri: "/api/backup/\(id)", method: .delete, headers: bearer(admin)) { (response) async throws in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/api/backup/\(id)", method: .get, headers: bearer(admin)) { (response) async throws in
                #expect(response.status == .notFound)
            }
        }
        let actors = try AuditTrail(repository: f.repository, action: "test").log.records(action: "backup").map(\.event.actor)
        #expect(actors == ["admin-screen", "admin-screen"])  // its start, then its end
    }

    /// Another database's backup in the same repository (a service sharing
    /// it): left out of the list unless `allSources=true`; restoring or
    /// deleting it is 400 `other_source` until `allowOtherSource`.
    @Test func anotherSourcesBackupsAreListedOnRequestAndGuarded() async throws {
        let f = try await fixture("api_sources")
        let other = try TestDatabase("api_sources_other")
        defer { f.database.drop(); other.drop() }
        try other.execute("CREATE TABLE visit AS SELECT g AS id FROM generate_series(1, 3) g")
        let repository = f.repository
        let foreign = try await onThread {
            try BackupRunner(options: BackupOptions(source: other.connectionString, repository: repository)).run().backupId
        }
        let own = try await onThread {
            try BackupRunner(options: BackupOptions(source: f.database.connectionString, repository: repository)).run().backupId
        }
        let admin = try await f.token(.admin)
        try await f.app().test(.router) { client in
            try await client.execute(uri: "/api/backup", method: .get, headers: bearer(admin)) { (response) async throws in
                let backups = try #require(try json(response.body)["backups"] as? [[String: Any]])
                #expect(backups.map { $0["id"] as? String } == [own])
                #expect((backups.first?["source"] as? [String: Any])?["database"] as? String == f.database.name)
            }
            try await client.execute(uri: "/api/backup?allSources=true", method: .get, headers: bearer(admin)) { (response) async throws in
                let backups = try #require(try json(response.body)["backups"] as? [[String: Any]])
                #expect(Set(backups.compactMap { $0["id"] as? String }) == [own, foreign])
                let listed = try #require(backups.first { $0["id"] as? String == foreign })
                #expect((listed["source"] as? [String: Any])?["database"] as? String == other.name)
            }
            try await client.execute(uri: "/api/backup?allSources=maybe", method: .get, headers: bearer(admin)) { (response) async throws in
                #expect(response.status == .badRequest)
            }
            let restore = #"{"backupId":"\#(foreign)","confirmRestore":true}"#
            try await client.execute(uri: "/api/backup/restore", method: .post, headers: bearer(admin), body: ByteBuffer(string: restore)) { (response) async throws in
                #expect(response.status == .badRequest)
                let body = try json(response.body)
                #expect(body["code"] as? String == "other_source")
                #expect((body["error"] as? String ?? body["message"] as? String ?? "").contains(other.name), "\(body)")
            }
            #expect(try f.database.value("SELECT count(*) FROM \"User\"") == "50", "the refused restore changed nothing")
            try await client.execute(uri: "/api/backup/\(foreign)", method: .delete, headers: bearer(admin)) { (response) async throws in
                #expect(response.status == .badRequest)
                #expect(try json(response.body)["code"] as? String == "other_source")
            }
            try await client.execute(uri: "/api/backup/\(foreign)?allowOtherSource=true", method: .delete, headers: bearer(admin)) { (response) async throws in
                #expect(response.status == .ok)
            }
        }
        #expect(try repository.backupIDs().map(\.rawValue) == [own])
    }

    @Test func asynchronousBackupAndConflicts() async throws {
        let f = try await fixture("api_async")
        defer { f.database.drop() }
        let token = try await f.token(.operator)
        try await f.app().test(.router) { client in
            var statusURL = ""
            try await client.execute(uri: "/api/backup?wait=false", method: .post, headers: bearer(token)) { (response) async throws in
                #expect(response.status == .accepted)
                let body = try json(response.body)
                statusURL = try #require(body["statusUrl"] as? String)
                #expect(body["status"] as? String == "running")
            }
            var status = "running"
            for _ in 0..<100 where status == "running" {
                try await client.execute(uri: statusURL, method: .get, headers: bearer(token)) { (response) async throws in
                    status = try json(response.body)["status"] as? String ?? "?"
                }
                if status == "running" { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(status == "completed")

            // A backup while another holds the repository: 409.
            let lock = try f.repository.lockForWriting("backup")
            try await client.execute(uri: "/api/backup", method: .post, headers: bearer(token)) { (response) async throws in
                #expect(response.status == .conflict)
                #expect(try json(response.body)["code"] as? String == "already_running")
            }
            try await client.execute(uri: "/api/backup", method: .post, headers: [.authorization: "Bearer \(token)", HTTPField.Name("Prefer")!: "respond-async"]) { (response) async throws in
                #expect(response.status == .conflict)
            }
            lock.release()
        }
    }

    @Test func restoreNeedsConfirmationAndAnAllowedTarget() async throws {
        let f = try await fixture("api_restore")
        defer { f.database.drop() }
        let admin = try await f.token(.admin)
        let backup = try BackupRunner(options: BackupOptions(source: f.database.connectionString, repository: f.repository)).run()
        try f.database.execute(#"DELETE FROM "Patient" WHERE id > 10; UPDATE "User" SET name = 'changed'"#)
        @Sendable func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }
        try await f.app().test(.router) { client in
            for (text, code) in [
                (#"{"backupId":"\#(backup.backupId)"}"#, "confirmation_required"),
                (#"{"backupId":"\#(backup.backupId)","confirmRestore":false}"#, "confirmation_required"),
                (#"{"backupId":"\#(backup.backupId)","confirmRestore":"yes"}"#, "invalid_body"),
                (#"{"backupId":"../../etc/passwd","confirmRestore":true}"#, "invalid_backup_id"),
                (#"{"backupId":"\#(backup.backupId)","confirmRestore":true,"dropEverything":true}"#, "unknown_field"),
                ("{not json", "invalid_body"),
            ] {
                try await client.execute(uri: "/api/backup/restore", method: .post, headers: bearer(admin), body: body(text)) { (response) async throws in
                    #expect(response.status == .badRequest, "\(text)")
                    #expect(try json(response.body)["code"] as? String == code, "\(text)")
                }
            }
            try await client.execute(
                uri: "/api/backup/restore", method: .post, headers: bearer(admin),
                body: body(#"{"backupId":"\#(backup.backupId)","confirmRestore":true,"target":"postgres"}"#)
            ) { (response) async throws in
                #expect(response.status == .forbidden)
            }
            // A connection string is never taken from a request, whatever it points at.
            try await client.execute(
                uri: "/api/backup/restore", method: .post, headers: bearer(admin),
                body: body(#"{"backupId":"\#(backup.backupId)","confirmRestore":true,"targetUrl":"dbname=\#(f.database.name) user=intruder"}"#)
            ) { (response) async throws in
                #expect(response.status == .badRequest)
                #expect(try json(response.body)["code"] as? String == "invalid_target")
            }
            #expect(try f.database.value(#"SELECT count(*) FROM "Patient""#) == "10")
            try await client.execute(
                uri: "/api/backup/restore", method: .post, headers: bearer(admin),
                body: body(#"{"backupId":"\#(backup.backupId)","confirmRestore":true}"#)
            ) { (response) async throws in
                #expect(response.status == .ok)
                let json = try json(response.body)
                #expect(json["message"] as? String == "Backup restored successfully")
                #expect(json["restoredTables"] as? [String] == ["Patient", "User"])
            }
            #expect(try f.database.value(#"SELECT count(*) FROM "Patient""#) == "50")
            #expect(try f.database.value(#"SELECT count(*) FROM "User" WHERE name = 'changed'"#) == "0")
        }
    }

    /// A request names a configured target; the server's connection is used.
    @Test func restoreIntoANamedTarget() async throws {
        let copy = try TestDatabase("api_restore_named_copy")
        defer { copy.drop() }
        let f = try await fixture("api_restore_named", environment: ["ARCA_RESTORE_TARGETS": copy.connectionString.conninfo])
        defer { f.database.drop() }
        let admin = try await f.token(.admin)
        let backup = try BackupRunner(options: BackupOptions(source: f.database.connectionString, repository: f.repository)).run()
        try await f.app().test(.router) { client in
            try await client.execute(
                uri: "/api/backup/restore", method: .post, headers: bearer(admin),
                body: ByteBuffer(string: #"{"backupId":"\#(backup.backupId)","confirmRestore":true,"target":"\#(copy.name)"}"#)
            ) { (response) async throws in
                #expect(response.status == .ok, "\(String(buffer: response.body))")
            }
        }
        #expect(try copy.value(#"SELECT count(*) FROM "Patient""#) == "50")
    }

    /// A restore rejected by a CHECK constraint: the rejected row's values
    /// are in none of the error JSON, /api/status, /metrics or audit.log;
    /// the constraint, the table and the SQLSTATE are in the error.
    @Test func rejectedRowsStayOutOfResponsesMetricsAndAudit() async throws {
        let f = try await fixture("api_redaction")
        defer { f.database.drop() }
        let secret = "PATIENT-7731-SECRET"
        let admin = try await f.token(.admin)
        try f.database.execute(#"INSERT INTO "Patient" (user_id, note) VALUES (1, '\#(secret)')"#)
        let backup = try BackupRunner(options: BackupOptions(source: f.database.connectionString, repository: f.repository)).run()
        try f.database.execute(#"""
            DELETE FROM "Patient" WHERE note = '\#(secret)';
            ALTER TABLE "Patient" ADD CONSTRAINT patient_note_check CHECK (note NOT LIKE 'PATIENT-%')
            """#)
        let haystacks: [String] = try await f.app().test(.router) { (client) async throws -> [String] in
            var bodies = [try await client.execute(
                uri: "/api/backup/restore", method: .post, headers: bearer(admin),
                body: ByteBuffer(string: #"{"backupId":"\#(backup.backupId)","confirmRestore":true,"tables":["Patient"]}"#)
            ) { (response) async throws -> String in
                #expect(response.status == .internalServerError)
                let error = try #require(try json(response.body)["error"] as? String)
                #expect(error.contains(#""patient_note_check""#) && error.contains(#"table "public"."Patient""#), "\(error)")
                #expect(error.contains("SQLSTATE 23514"), "\(error)")
                return String(buffer: response.body)
            }]
            for uri in ["/api/status", "/metrics", "/api/backup"] {
                bodies.append(try await client.execute(uri: uri, method: .get, headers: bearer(admin)) { (response) async throws -> String in
                    #expect(response.status == .ok, "\(uri)")
                    return String(buffer: response.body)
                })
            }
            return bodies
        }
        let audit = try String(contentsOfFile: f.repository.root + "/audit.log", encoding: .utf8)
        #expect(audit.contains("patient_note_check"), "\(audit)")
        for haystack in haystacks + [audit] {
            #expect(!haystack.contains(secret), "\(haystack)")
        }
    }

    /// An operation that cannot record its start is refused before it acts:
    /// 503, and no archive.
    @Test func operationsAreRefusedWhileTheAuditTrailCannotBeWritten() async throws {
        let f = try await fixture("api_audit_closed")
        defer { f.database.drop() }
        let token = try await f.token(.operator)
        try f.repository.prepare()
        // A folder where the log should be: nothing can be appended (root ignores file modes).
        try FileManager.default.createDirectory(atPath: f.repository.root + "/audit.log", withIntermediateDirectories: false)
        try await f.app().test(.router) { client in
            try await client.execute(uri: "/api/backup", method: .post, headers: bearer(token)) { (response) async throws in
                #expect(response.status == .serviceUnavailable)
                #expect(try json(response.body)["code"] as? String == "audit_unavailable")
            }
        }
        #expect(try f.repository.backupIDs().isEmpty)
    }

    @Test func badRequestsAndLimits() async throws {
        let f = try await fixture("api_limits", environment: ["ARCA_RATE_LIMIT": "5/60"])
        defer { f.database.drop() }
        let admin = try await f.token(.admin)
        try await f.app().test(.router) { client in
            for path in ["/api/backup/..%2F..%2Fetc%2Fpasswd", "/api/backup/%2e%2e", "/api/backup/backup_1%00"] {
                try await client.execute(uri: path, method: .get, headers: bearer(admin)) { (response) async throws in
                    #expect(response.status == .badRequest, "\(path)")
                }
            }
            let big = ByteBuffer(string: #"{"backupId":""# + String(repeating: "a", count: 20_000) + #"","confirmRestore":true}"#)
            try await client.execute(uri: "/api/backup/restore", method: .post, headers: bearer(admin), body: big) { (response) async throws in
                #expect(response.status == .contentTooLarge)
                #expect(try json(response.body)["code"] as? String == "body_too_large")
            }
            // Five requests per window: the sixth is refused with Retry-After.
            try await client.execute(uri: "/api/backup", method: .get, headers: bearer(admin)) { (response) async throws in
                #expect(response.status == .ok)
                #expect(response.headers[HTTPField.Name("RateLimit-Remaining")!] == "0")
            }
            try await client.execute(uri: "/api/backup", method: .get, headers: bearer(admin)) { (response) async throws in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter] != nil)
                #expect(response.headers[HTTPField.Name("RateLimit-Remaining")!] == "0")
                #expect(try json(response.body)["code"] as? String == "rate_limited")
            }
        }
    }

    @Test func healthStatusAndMetrics() async throws {
        let f = try await fixture("api_health")
        defer { f.database.drop() }
        let viewer = try await f.token(.viewer)
        _ = try BackupRunner(options: BackupOptions(source: f.database.connectionString, repository: f.repository)).run()
        try await f.app().test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { (response) async throws in
                #expect(response.status == .ok)
                #expect(try json(response.body)["database"] as? String == "reachable")
                // Probes count against their own budget (ARCA_PROBE_RATE_LIMIT).
                #expect(response.headers[HTTPField.Name("RateLimit-Limit")!] == "3600")
            }
            try await client.execute(uri: "/healthz", method: .head) { (response) async throws in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/api/status", method: .get, headers: bearer(viewer)) { (response) async throws in
                #expect(response.status == .ok)
                let body = try json(response.body)
                #expect(body["success"] as? Bool == true)
                #expect(body["scheduler"] != nil)
            }
            try await client.execute(uri: "/metrics", method: .get) { (response) async throws in
                let text = String(buffer: response.body)
                #expect(text.contains("arca_backups{location=\"local\"} 1"), "\(text)")
                #expect(text.contains("arca_healthy 1"), "\(text)")
                // Made by the engine directly, not by the service: never verified.
                #expect(text.contains("arca_last_backup_verified -1"), "\(text)")
                #expect(text.contains("# TYPE arca_backup_failures_total counter"))
            }
        }
    }

    /// A running backup's status and /metrics carry the figures
    /// `arca backup --progress json` prints (the job is the server's own
    /// record, as a backup thread reports into it).
    @Test func runningJobsShowTheirProgress() async throws {
        let f = try await fixture("api_progress")
        defer { f.database.drop() }
        let token = try await f.token(.viewer)
        let jobs = BackupJobs()
        let id = "backup_20261130_101500"
        jobs.started(id)
        jobs.progress(id, OperationProgress(
            operation: .backup, phase: "copying tables", tablesDone: 3, tablesTotal: 8, current: "clinic.Patient",
            bytesDone: 1 << 30, bytesTotal: 4 << 30, elapsedSeconds: 10))
        let app = Application(router: buildRouter(f.configuration, authority: f.authority, cancellation: Cancellation(), jobs: jobs))
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/backup/\(id)", method: .get, headers: bearer(token)) { (response) async throws in
                let body = try json(response.body)
                #expect(body["status"] as? String == "running")
                let progress = try #require(body["progress"] as? [String: Any])
                #expect(progress["phase"] as? String == "copying tables")
                #expect(progress["percent"] as? Double == 25)
                #expect(progress["tablesDone"] as? Int == 3 && progress["tablesTotal"] as? Int == 8)
                #expect(progress["current"] as? String == "clinic.Patient")
                #expect((progress["secondsLeft"] as? Double).map { abs($0 - 30) < 0.01 } == true)
            }
            try await client.execute(uri: "/metrics", method: .get) { (response) async throws in
                let text = String(buffer: response.body)
                #expect(text.contains("arca_backups_in_progress 1"), "\(text)")
                #expect(text.contains("arca_backup_progress_percent{backup_id=\"\(id)\"} 25"), "\(text)")
                #expect(text.contains("arca_backup_progress_bytes{backup_id=\"\(id)\"} \(1 << 30)"), "\(text)")
            }
        }
    }


    /// An unauthenticated GET /metrics used to abort the whole server (and
    /// its scheduler) on an archive whose row counts overflow when summed.
    @Test func forgedArchiveDoesNotStopTheServer() async throws {
        let f = try await fixture("forged_metrics")
        defer { f.database.drop() }
        let viewer = try await f.token(.viewer)
        _ = try ForgedArchive.overflowingRowCounts(inRepository: f.repository.root)
        try await f.app().test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { (response) async throws in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("arca_backups{location=\"local\"} 1"))
            }
            try await client.execute(uri: "/api/backup", method: .get, headers: bearer(viewer)) { (response) async throws in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/api/status", method: .get, headers: bearer(viewer)) { (response) async throws in
                #expect(response.status == .ok)
            }
        }
    }
}
