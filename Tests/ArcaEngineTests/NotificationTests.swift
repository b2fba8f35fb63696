@testable import ArcaEngine
@testable import ArcaOperations
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// Notifications through the operations, delivered to a real local HTTP
/// listener and SMTP server (Tests/Fixtures/notification_sink.py).
@Suite struct NotificationTests {
    static let password = "HUNTER2-PASSWORD"
    static let rowValue = "PATIENT-7731-SECRET"

    func configuration(_ sink: NotificationSink, database: String, _ label: String, _ extra: [String: String] = [:]) throws -> ServiceConfiguration {
        try ServiceConfiguration(environment: [
            "DATABASE_URL": database, "ARCA_REPO": TestPaths.temporaryDirectory(label) + "/repo", "ARCA_NOTIFY_URL": sink.webhookURL,
        ].merging(extra) { $1 })
    }

    /// The message's header lines and its body (aiosmtpd keeps CRLF).
    func split(_ mail: NotificationSink.Mail) -> (headers: [String], body: String) {
        let parts = mail.data.components(separatedBy: "\r\n\r\n")
        return (parts[0].components(separatedBy: "\r\n"), parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    @Test func failureReachesWebhookAndMailWithoutThePassword() async throws {
        let sink = try NotificationSink()
        defer { sink.stop() }
        let unreachable = "postgresql://arca:\(Self.password)@127.0.0.1:\(try freeLocalPort())/shop"
        let configuration = try configuration(sink, database: unreachable, "notify-failure", [
            "ARCA_SMTP_URL": sink.smtpURL, "ARCA_NOTIFY_EMAIL": "ops@example.com, dba@example.org", "ARCA_NOTIFY_FROM": "arca@db1.example.com",
        ])
        try await onThread {
            #expect(throws: (any Error).self) { try Operations(configuration: configuration, requester: .commandLine).backup() }
            sink.wait(requests: 1, mails: 1)
        }
        // One event: how it ended, not that it started.
        #expect(sink.requests.count == 1)
        let request = try #require(sink.requests.first)
        #expect(request.path == "/hooks/T000/SECRET-HOOK-TOKEN?sig=SECRET-SIG")
        #expect(request.headers.first { $0.key.lowercased() == "content-type" }?.value == "application/json")
        let event = try JSONDecoder().decode(NotificationEvent.self, from: Data(request.body.utf8))
        #expect(event.event == "operation" && event.action == "backup" && event.outcome == .failure)
        #expect(event.host == NotificationEvent.hostName)
        #expect(event.error?.isEmpty == false)
        #expect(event.durationSeconds != nil)
        #expect(Manifest.date(fromTimestamp: event.time) != nil)

        let mail = try #require(sink.mails.first)
        #expect(mail.from == "arca@db1.example.com")
        #expect(mail.to == ["ops@example.com", "dba@example.org"])
        let (headers, body) = split(mail)
        #expect(headers.contains("From: Arca <arca@db1.example.com>"))
        #expect(headers.contains("To: ops@example.com, dba@example.org"))
        #expect(headers.contains("Subject: [arca] backup failed on \(NotificationEvent.hostName)"))
        #expect(headers.contains("Content-Type: text/plain; charset=utf-8"))
        #expect(headers.contains { $0.hasPrefix("Date: ") } && headers.contains { $0.hasPrefix("Message-ID: <") })
        #expect(body.contains("action: backup\r\noutcome: failure\r\n"))
        // Long lines are broken for SMTP (at most 998 bytes).
        #expect(body.replacingOccurrences(of: "\r\n", with: "").contains("error: \(event.error ?? "?")"))
        for text in [request.body, mail.data] { #expect(!text.contains(Self.password), "\(text)") }
    }

    /// With ARCA_NOTIFY_ON=all a success is sent too; Slack's payload; a
    /// server error that quotes a row (a CHECK violation's "Failing row
    /// contains …") reaches the event redacted.
    @Test func successesWithAllInSlackFormatAndNoRowValue() async throws {
        let sink = try NotificationSink()
        defer { sink.stop() }
        let source = try TestDatabase("notify_source"), target = try TestDatabase("notify_target")
        defer { source.drop(); target.drop() }
        try source.execute("CREATE TABLE patient (id int PRIMARY KEY, identifier text); INSERT INTO patient VALUES (1, '\(Self.rowValue)');")
        try target.execute("CREATE TABLE patient (id int PRIMARY KEY, identifier text CONSTRAINT no_patients CHECK (identifier NOT LIKE 'PATIENT%'));")
        // Ignored by the socket's trust authentication, and must not leak either.
        let database = source.connectionString.setting("password", to: Self.password).conninfo
        let configuration = try configuration(sink, database: database, "notify-slack", ["ARCA_NOTIFY_ON": "all", "ARCA_NOTIFY_FORMAT": "slack"])
        let operations = Operations(configuration: configuration, requester: .commandLine)
        try await onThread {
            let backup = try operations.backup()
            var request = RestoreRequest(backup: backup.backupId)
            request.target = target.connectionString
            request.dataOnly = true
            request.confirmed = true
            #expect(throws: (any Error).self) { try operations.restore(request) }
            sink.wait(requests: 3)
        }
        let texts = sink.requests.map { request in
            ((try? JSONSerialization.jsonObject(with: Data(request.body.utf8))) as? [String: String])?["text"] ?? request.body
        }
        // The backup, its verification (ARCA_VERIFY_AFTER_BACKUP, on by default), the restore.
        #expect(texts.count == 3)
        #expect(texts.first?.hasPrefix("Arca: backup succeeded on \(NotificationEvent.hostName) (") == true, "\(texts)")
        #expect(texts.dropFirst().first?.hasPrefix("Arca: verify succeeded on \(NotificationEvent.hostName) (") == true, "\(texts)")
        #expect(texts.last?.hasPrefix("Arca: restore failed on \(NotificationEvent.hostName)") == true, "\(texts)")
        #expect(texts.last?.contains("no_patients") == true, "\(texts)")
        for request in sink.requests {
            #expect(!request.body.contains(Self.rowValue) && !request.body.contains("7731"), "\(request.body)")
            #expect(!request.body.contains(Self.password), "\(request.body)")
        }
    }

    @Test func retriesAfterServerErrors() async throws {
        let sink = try NotificationSink(failFirst: 2)
        defer { sink.stop() }
        var retry = Notifier.RetryPolicy()
        retry.firstDelay = 0.05
        let notifier = Notifier(settings: NotificationSettings(webhooks: [try #require(Webhook(sink.webhookURL))]), retry: retry)
        notifier.notify(NotificationEvent(action: "verify", outcome: .failure, target: "20241201T140518Z", error: "checksum mismatch"))
        let delivered = try await onThread { notifier.waitUntilDelivered(upTo: 30) }
        #expect(delivered)
        #expect(sink.requests.map(\.status) == [500, 500, 200])
        #expect(Set(sink.requests.map(\.body)).count == 1)
        // A success is not sent unless ARCA_NOTIFY_ON=all.
        notifier.notify(NotificationEvent(action: "verify", outcome: .success))
        _ = try await onThread { notifier.waitUntilDelivered(upTo: 30) }
        #expect(sink.requests.count == 3)
    }

    /// A flood while a webhook is down keeps only the newest events.
    @Test func fullQueueDropsTheOldest() async throws {
        var retry = Notifier.RetryPolicy()
        retry.firstDelay = 0.05
        let dead = try #require(Webhook("http://127.0.0.1:\(try freeLocalPort())/hook"))
        let notifier = Notifier(settings: NotificationSettings(webhooks: [dead]), retry: retry, capacity: 3)
        for number in 1...10 { notifier.notify(NotificationEvent(action: "backup", outcome: .failure, target: "b\(number)")) }
        #expect(notifier.queuedCount <= 3)
        let delivered = try await onThread { notifier.waitUntilDelivered(upTo: 30) }
        #expect(delivered && notifier.queuedCount == 0)
    }

    /// A webhook nobody answers: the backup neither waits for it nor fails.
    @Test func deadWebhookNeitherBlocksNorFailsTheBackup() async throws {
        let source = try TestDatabase("notify_dead")
        defer { source.drop() }
        try source.execute("CREATE TABLE item (id int PRIMARY KEY); INSERT INTO item VALUES (1);")
        let configured = try ServiceConfiguration(environment: [
            "DATABASE_URL": source.connectionString.conninfo, "ARCA_REPO": TestPaths.temporaryDirectory("notify-dead") + "/repo",
            "ARCA_NOTIFY_URL": "http://127.0.0.1:\(try freeLocalPort())/hook", "ARCA_NOTIFY_ON": "all",
        ])
        // Retries far apart: however slowly the machine runs the backup,
        // the event is still waiting for its second attempt when it returns.
        var configuration = configured
        var retry = Notifier.RetryPolicy()
        retry.firstDelay = 120
        let notifier = Notifier(settings: try #require(configuration.notifier).settings, retry: retry)
        configuration.notifier = notifier
        let result = try await onThread { [configuration] in try Operations(configuration: configuration, requester: .commandLine).backup() }
        #expect(result.rows == 1)
        #expect(!notifier.waitUntilDelivered(upTo: 0))
        let records = try configuration.repository.prepareAndReadAudit()
        #expect(records.last?.event.outcome == .success)
    }

    @Test func smtpKeepsLinesThatStartWithADot() async throws {
        let sink = try NotificationSink()
        defer { sink.stop() }
        let port = try #require(Int(sink.smtpURL.split(separator: ":").last ?? ""))
        let message = "Subject: dots\r\n\r\nfirst\r\n.\r\n..two\r\n.end\r\n"
        try await onThread {
            try SMTPClient(host: "127.0.0.1", port: port, timeoutSeconds: 10).send(from: "arca@example.com", to: ["ops@example.com"], message: message)
            sink.wait(mails: 1)
        }
        let mail = try #require(sink.mails.first)
        #expect(split(mail).body == "first\r\n.\r\n..two\r\n.end\r\n")
    }
}

extension Repository {
    func prepareAndReadAudit() throws -> [AuditRecord] {
        try AuditTrail(repository: self, action: "test").log.records()
    }
}
