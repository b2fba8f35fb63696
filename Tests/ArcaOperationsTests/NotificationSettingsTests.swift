import ArcaEngine
@testable import ArcaOperations
import Foundation
import Testing

@Suite struct NotificationSettingsTests {
    func settings(_ environment: [String: String]) throws -> NotificationSettings? {
        try NotificationSettings.fromEnvironment(environment)
    }

    func refusal(_ environment: [String: String]) -> String {
        do {
            _ = try settings(environment)
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    @Test func nothingConfiguredIsNoNotifier() throws {
        #expect(try settings([:]) == nil)
        #expect(try ServiceConfiguration(environment: ["ARCA_REPO": "/tmp/x"]).notifier == nil)
    }

    @Test func webhooksFormatAndWhen() throws {
        let parsed = try #require(try settings([
            "ARCA_NOTIFY_URL": "https://hooks.example.com/a/SECRET1, http://127.0.0.1:9000/b?token=SECRET2",
            "ARCA_NOTIFY_FORMAT": "slack", "ARCA_NOTIFY_ON": "all",
        ]))
        #expect(parsed.webhooks.count == 2)
        #expect(parsed.format == .slack)
        #expect(parsed.includeSuccesses)
        // A webhook's path, query and user info are its credential: never shown.
        #expect(parsed.webhooks.map(\.description) == ["https://hooks.example.com/…", "http://127.0.0.1:9000/…"])
        #expect(!"\(parsed)".contains("SECRET"))
        #expect(try settings(["ARCA_NOTIFY_URL": "https://h.example.com/x"])?.includeSuccesses == false)
    }

    @Test func badSettingsNameTheVariableAndNeverQuoteAURL() {
        let secret = "ftp://user:SECRET@hooks.example.com/T1/SECRET"
        let text = refusal(["ARCA_NOTIFY_URL": "https://ok.example.com/x," + secret])
        #expect(text.contains("ARCA_NOTIFY_URL") && text.contains("entry 2 of 2"))
        #expect(!text.contains("SECRET"))
        #expect(refusal(["ARCA_NOTIFY_URL": "https:///no-host"]).contains("ARCA_NOTIFY_URL"))
        #expect(refusal(["ARCA_NOTIFY_URL": "https://h.example.com/a b"]).contains("ARCA_NOTIFY_URL"))
        #expect(refusal(["ARCA_NOTIFY_URL": "https://h.example.com/x", "ARCA_NOTIFY_FORMAT": "xml"]).contains("ARCA_NOTIFY_FORMAT"))
        #expect(refusal(["ARCA_NOTIFY_URL": "https://h.example.com/x", "ARCA_NOTIFY_ON": "sometimes"]).contains("ARCA_NOTIFY_ON"))
        #expect(refusal(["ARCA_NOTIFY_ON": "all"]).contains("need a destination"))
        #expect(refusal(["ARCA_SMTP_URL": "smtp://relay.example.com"]).contains("ARCA_NOTIFY_EMAIL"))
        #expect(refusal(["ARCA_NOTIFY_EMAIL": "ops@example.com"]).contains("ARCA_SMTP_URL"))
        #expect(refusal(["ARCA_SMTP_URL": "smtps://relay.example.com", "ARCA_NOTIFY_EMAIL": "ops@example.com"]).contains("only smtp://"))
        let login = refusal(["ARCA_SMTP_URL": "smtp://me:PASSWORD@relay.example.com", "ARCA_NOTIFY_EMAIL": "ops@example.com"])
        #expect(login.contains("must not carry a user or password") && !login.contains("PASSWORD@"))
        for address in ["ops", "ops@example.com>\r\nRCPT TO:<evil@example.com", "a b@example.com", "<ops@example.com>", "ops@@example.com"] {
            #expect(refusal(["ARCA_SMTP_URL": "smtp://relay.example.com", "ARCA_NOTIFY_EMAIL": address]).contains("ARCA_NOTIFY_EMAIL"), "\(address)")
        }
        #expect(refusal(["ARCA_SMTP_URL": "smtp://r.example.com", "ARCA_NOTIFY_EMAIL": "a@example.com", "ARCA_NOTIFY_FROM": "x\n@y.com"]).contains("ARCA_NOTIFY_FROM"))
        // Through the service configuration too: `arca start` fails at once.
        #expect(throws: (any Error).self) { try ServiceConfiguration(environment: ["ARCA_NOTIFY_URL": "gopher://x"]) }
    }

    @Test func mailSettings() throws {
        let mail = try #require(try settings([
            "ARCA_SMTP_URL": "smtp://relay.example.com:2525", "ARCA_NOTIFY_EMAIL": "ops@example.com, dba@example.org",
            "ARCA_NOTIFY_FROM": "arca@db1.example.com",
        ])?.mail)
        #expect(mail == MailSettings(host: "relay.example.com", port: 2525, recipients: ["ops@example.com", "dba@example.org"], sender: "arca@db1.example.com"))
        #expect(try settings(["ARCA_SMTP_URL": "smtp://localhost", "ARCA_NOTIFY_EMAIL": "root@localhost"])?.mail?.port == 25)
    }

    @Test func eventPayloads() throws {
        let event = NotificationEvent(
            action: "backup", outcome: .failure, target: "20241201T140518Z", time: "2024-12-01T14:05:30.123Z", host: "db1",
            error: "connection refused <@channel> & co", durationSeconds: 1.5)
        let json = try JSONSerialization.jsonObject(with: event.payload(.json)) as? [String: Any]
        #expect(json?["event"] as? String == "operation")
        #expect(json?["action"] as? String == "backup")
        #expect(json?["outcome"] as? String == "failure")
        #expect(json?["target"] as? String == "20241201T140518Z")
        #expect(json?["host"] as? String == "db1")
        #expect(json?["durationSeconds"] as? Double == 1.5)
        #expect(json?["error"] as? String == "connection refused <@channel> & co")
        let slack = try JSONSerialization.jsonObject(with: event.payload(.slack)) as? [String: String]
        // Slack markup is escaped: an error text cannot mention a channel or forge a link.
        #expect(slack == ["text": "Arca: backup failed on db1 (20241201T140518Z) after 1.5 s: connection refused &lt;@channel&gt; &amp; co"])
    }

    @Test func mailHeadersCannotBeInjected() {
        let event = NotificationEvent(
            action: "backup", outcome: .failure, target: "x\r\nBcc: evil@example.com\r\n\r\nforgéd", host: "db1", error: "é\nline")
        let text = MailMessage(event, from: "arca@example.com", to: ["ops@example.com"]).text
        let headers = text.components(separatedBy: "\r\n\r\n")[0]
        #expect(!headers.contains("\r\nBcc:"))
        #expect(headers.components(separatedBy: "\r\n").allSatisfy { line in
            line.hasPrefix(" ") || ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"]
                .contains { line.hasPrefix($0 + ": ") }
        })
        // Non-ASCII in the subject is an RFC 2047 encoded word.
        #expect(headers.contains("Subject: =?utf-8?B?"))
    }

    @Test func dataIsDotStuffedWithCRLF() {
        #expect(SMTPClient.dataSection("a\n.b\n..c\r\n.\nend") == "a\r\n..b\r\n...c\r\n..\r\nend\r\n.")
        #expect(SMTPClient.dataSection("a\r\n") == "a\r\n.")
        #expect(MailMessage.wrapped(String(repeating: "x", count: 500)).split(separator: "\n").map(\.count) == [240, 240, 20])
    }

    @Test func streamLagIsNotifiedOncePerCrossing() {
        let watch = StreamLagWatch()
        func status(_ lag: Double?) -> StreamStatus {
            StreamStatus(slot: "arca_shop", lagSeconds: lag, newestRestorable: "2024-12-01T14:00:00.000Z", segments: 3)
        }
        let now = Date()
        #expect(watch.changes([status(10)], maxLagSeconds: 300, now: now).isEmpty)
        let behind = watch.changes([status(400)], maxLagSeconds: 300, now: now)
        #expect(behind.map(\.outcome) == [.failure])
        #expect(behind.first?.event == "stream_lag" && behind.first?.target == "arca_shop")
        #expect(behind.first?.error?.contains("400 s behind") == true)
        #expect(watch.changes([status(460)], maxLagSeconds: 300, now: now).isEmpty)
        #expect(watch.changes([status(nil)], maxLagSeconds: 300, now: now).isEmpty)
        #expect(watch.changes([status(5)], maxLagSeconds: 300, now: now).map(\.outcome) == [.success])
        #expect(watch.changes([status(5)], maxLagSeconds: 300, now: now).isEmpty)
    }
}
