import ArcaEngine
import ArcaTesting
import Foundation
import Testing

/// `arca backup` from cron: the process delivers its notifications before
/// it exits, and a dead webhook delays the exit by at most a few seconds.
@Suite struct NotificationCLITests {
    @Test func backupFromTheCommandLineNotifiesBeforeItExits() async throws {
        let sink = try NotificationSink()
        defer { sink.stop() }
        let source = try TestDatabase("cli_notify")
        defer { source.drop() }
        try source.execute("CREATE TABLE item (id int PRIMARY KEY); INSERT INTO item VALUES (1);")
        let repo = TestPaths.temporaryDirectory("cli_notify") + "/repo"
        let output = try await onThread {
            try Tool.capture(TestPaths.arca, ["backup", "--database-url", "dbname=\(source.name)", "--repo", repo], environment: [
                "ARCA_NOTIFY_URL": sink.webhookURL, "ARCA_NOTIFY_ON": "all",
            ])
        }
        #expect(output.status == 0, "\(output.stderr)")
        // No waiting here: it arrived before the process ended.
        let body = try #require(sink.requests.first?.body)
        #expect(body.contains("\"action\":\"backup\"") && body.contains("\"outcome\":\"success\""), "\(body)")
        #expect(sink.requests.count == 1)

        // A failure, to a dead webhook and the live one: reported, delivered, and the exit is bounded.
        let dead = "http://127.0.0.1:\(try freeLocalPort())/hook"
        let started = Date()
        let failed = try await onThread {
            try Tool.capture(TestPaths.arca, ["backup", "--database-url", "dbname=arca_no_such_database", "--repo", repo], environment: [
                "ARCA_NOTIFY_URL": dead + "," + sink.webhookURL,
            ])
        }
        #expect(failed.status != 0, "\(failed.stderr)")
        #expect(Date().timeIntervalSince(started) < 30)
        #expect(sink.requests.count == 2)
        #expect(sink.requests.last?.body.contains("\"outcome\":\"failure\"") == true)
        #expect(failed.stderr.contains("http://127.0.0.1:"), "\(failed.stderr)")
        #expect(!failed.stderr.contains("SECRET-HOOK-TOKEN"), "\(failed.stderr)")
    }
}
