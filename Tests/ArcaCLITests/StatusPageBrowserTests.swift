import ArcaEngine
import ArcaTesting
import Foundation
import Testing

/// The status page in a real browser: `arca serve` on a free port, a
/// database with one backup, and Chromium driven by selenium
/// (Tests/Fixtures/status_page.py): refused sign-ins, a viewer without
/// buttons, an operator who starts a backup and sees it appear.
/// Screenshots go to a temporary folder, printed at the end.
@Suite struct StatusPageBrowserTests {
    @Test func signInListAndBackUpInChromium() async throws {
        for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            #expect(FileManager.default.isExecutableFile(atPath: program), "\(program) is missing: scripts/setup.sh installs chromium and chromium-driver")
        }
        let database = try TestDatabase("status_page")
        defer { database.drop() }
        try database.execute("CREATE TABLE visit (id int PRIMARY KEY, note text); INSERT INTO visit SELECT g, 'note ' || g FROM generate_series(1, 1000) g")
        let folder = TestPaths.temporaryDirectory("status-page")
        let repo = folder + "/repo", shots = folder + "/screenshots"
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
        let port = try freeLocalPort()
        let environment = [
            "DATABASE_URL": "dbname=\(database.name)", "JWT_SECRET": String(repeating: "p", count: 40), "ARCA_JOBS": "1",
        ]
        let arca = TestPaths.arca, name = database.name, fixtures = TestPaths.fixtures
        let output = try await onThread { () -> Tool.Output in
            let first = try Tool.capture(arca, ["backup", "--repo", repo, "--database-url", "dbname=\(name)"])
            guard first.status == 0 else { return first }
            let server = try Spawned(arca, ["serve", "--repo", repo, "--port", String(port)], environment: environment)
            defer {
                server.signal(SIGTERM)
                _ = server.wait()
            }
            let healthz = "http://127.0.0.1:\(port)/healthz"
            guard Spawned.waitFor(seconds: 30, { (try? Tool.capture("curl", ["-sf", healthz]).status) == 0 }) else {
                return Tool.Output(status: 1, stdout: "", stderr: "the server did not answer: \(server.wait().stderr)")
            }
            func token(_ role: String, secret: String = environment["JWT_SECRET"]!) throws -> String {
                try Tool.capture(arca, ["token", "--subject", "browser-\(role)", "--role", role], environment: ["JWT_SECRET": secret])
                    .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return try Tool.capture("python3", [
                fixtures + "/status_page.py", "http://127.0.0.1:\(port)/", try token("viewer"), try token("operator"),
                try token("operator", secret: String(repeating: "x", count: 40)), shots,
            ])
        }
        #expect(output.status == 0, "\(output.stdout)\n\(output.stderr)")
        print("status page screenshots: \(shots)")
    }
}
