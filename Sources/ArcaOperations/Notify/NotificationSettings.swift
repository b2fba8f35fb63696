import ArcaEngine
import Foundation

/// Where and when notifications go (`ARCA_NOTIFY_*`, `ARCA_SMTP_URL`),
/// validated at start-up. Webhook URLs are secrets (a Slack URL is its own
/// credential): no message, error or log line ever prints one whole.
public struct NotificationSettings: Sendable, Equatable {
    public enum Format: String, Sendable {
        /// The documented event (README, "Notifications").
        case json
        /// `{"text": "..."}`, which Slack's and compatible incoming webhooks accept.
        case slack
    }

    public var webhooks: [Webhook]
    public var format: Format
    /// `ARCA_NOTIFY_ON=all`: successes too, not only failures and refusals.
    public var includeSuccesses: Bool
    public var mail: MailSettings?

    public static let variables = [
        "ARCA_NOTIFY_URL", "ARCA_NOTIFY_FORMAT", "ARCA_NOTIFY_ON", "ARCA_SMTP_URL", "ARCA_NOTIFY_EMAIL", "ARCA_NOTIFY_FROM",
    ]

    public init(webhooks: [Webhook] = [], format: Format = .json, includeSuccesses: Bool = false, mail: MailSettings? = nil) {
        self.webhooks = webhooks
        self.format = format
        self.includeSuccesses = includeSuccesses
        self.mail = mail
    }

    /// nil when no destination is configured; a setting that is wrong
    /// throws, naming the variable (and never quoting a webhook URL).
    public static func fromEnvironment(_ environment: [String: String]) throws -> NotificationSettings? {
        func value(_ name: String) -> String? {
            environment[name].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0.trimmingCharacters(in: .whitespaces) }
        }
        var settings = NotificationSettings()
        if let text = value("ARCA_NOTIFY_URL") {
            let entries = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            for (index, entry) in entries.enumerated() {
                guard let webhook = Webhook(entry) else {
                    throw OperationError.invalidConfiguration(
                        "ARCA_NOTIFY_URL: entry \(index + 1) of \(entries.count) is not an http:// or https:// URL with a host (comma-separated URLs; the value is not shown: webhook URLs are secrets).")
                }
                settings.webhooks.append(webhook)
            }
        }
        if let text = value("ARCA_NOTIFY_FORMAT") {
            guard let format = Format(rawValue: text.lowercased()) else {
                throw OperationError.invalidConfiguration("ARCA_NOTIFY_FORMAT must be json or slack, not \"\(text.prefix(20))\".")
            }
            settings.format = format
        }
        if let text = value("ARCA_NOTIFY_ON") {
            switch text.lowercased() {
            case "failures": settings.includeSuccesses = false
            case "all": settings.includeSuccesses = true
            default: throw OperationError.invalidConfiguration("ARCA_NOTIFY_ON must be failures or all, not \"\(text.prefix(20))\".")
            }
        }
        settings.mail = try MailSettings.fromEnvironment(smtp: value("ARCA_SMTP_URL"), recipients: value("ARCA_NOTIFY_EMAIL"), sender: value("ARCA_NOTIFY_FROM"))
        guard !settings.webhooks.isEmpty || settings.mail != nil else {
            if value("ARCA_NOTIFY_FORMAT") != nil || value("ARCA_NOTIFY_ON") != nil {
                throw OperationError.invalidConfiguration("ARCA_NOTIFY_FORMAT and ARCA_NOTIFY_ON need a destination: set ARCA_NOTIFY_URL or ARCA_SMTP_URL with ARCA_NOTIFY_EMAIL.")
            }
            return nil
        }
        return settings
    }
}

/// One webhook. Its description shows the scheme and host only.
public struct Webhook: Sendable, Equatable, CustomStringConvertible {
    public let url: URL

    public init?(_ text: String) {
        guard text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }),
              let components = URLComponents(string: text),
              let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = components.host, !host.isEmpty,
              let url = components.url
        else { return nil }
        self.url = url
    }

    /// `https://hooks.slack.com/…`: the path, query and user info of a
    /// webhook are its credential.
    public var description: String {
        let components = URLComponents(url: url, resolvingAgainstBaseURL: false)
        let port = components?.port.map { ":\($0)" } ?? ""
        return "\(url.scheme ?? "http")://\(components?.host ?? "?")\(port)/…"
    }
}

/// Mail through a plain SMTP relay (`ARCA_SMTP_URL=smtp://host:port`).
/// Arca has no TLS library of its own (only swift-nio without NIOSSL is
/// allowed), so it neither sends a password nor speaks TLS: point it at a
/// local MTA (postfix, msmtpd, a sidecar) that relays onward securely.
public struct MailSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var recipients: [String]
    public var sender: String

    public init(host: String, port: Int = 25, recipients: [String], sender: String) {
        self.host = host
        self.port = port
        self.recipients = recipients
        self.sender = sender
    }

    static func fromEnvironment(smtp: String?, recipients: String?, sender: String?) throws -> MailSettings? {
        guard let smtp else {
            if recipients != nil { throw OperationError.invalidConfiguration("ARCA_NOTIFY_EMAIL needs ARCA_SMTP_URL (smtp://host:port of a mail relay).") }
            return nil
        }
        guard let components = URLComponents(string: smtp), let scheme = components.scheme?.lowercased() else {
            throw OperationError.invalidConfiguration("ARCA_SMTP_URL must look like smtp://host:port.")
        }
        guard scheme == "smtp" else {
            throw OperationError.invalidConfiguration(
                "ARCA_SMTP_URL: only smtp:// (plain, to a relay you trust, usually on this machine) is supported, not \(scheme.prefix(10))://: Arca has no TLS for mail. Relay through a local MTA.")
        }
        guard components.user == nil, components.password == nil else {
            throw OperationError.invalidConfiguration(
                "ARCA_SMTP_URL must not carry a user or password: plain SMTP would send it unencrypted. Use a local relay that needs no login from this machine.")
        }
        guard let host = components.host, !host.isEmpty, components.query == nil, components.path.isEmpty || components.path == "/" else {
            throw OperationError.invalidConfiguration("ARCA_SMTP_URL must look like smtp://host:port, with nothing after the port.")
        }
        let port = components.port ?? 25
        guard (1...65535).contains(port) else { throw OperationError.invalidConfiguration("ARCA_SMTP_URL: the port must be 1 to 65535.") }
        guard let recipients else {
            throw OperationError.invalidConfiguration("ARCA_SMTP_URL needs ARCA_NOTIFY_EMAIL: the comma-separated addresses to notify.")
        }
        let addresses = recipients.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !addresses.isEmpty, addresses.count <= 50 else {
            throw OperationError.invalidConfiguration("ARCA_NOTIFY_EMAIL must list 1 to 50 comma-separated addresses.")
        }
        for (index, address) in addresses.enumerated() where !Self.isPlainAddress(address) {
            throw OperationError.invalidConfiguration("ARCA_NOTIFY_EMAIL: address \(index + 1) is not a plain address like ops@example.com.")
        }
        let from = sender ?? "arca@" + (Self.isPlainAddress("arca@" + NotificationEvent.hostName) ? NotificationEvent.hostName : "localhost")
        guard Self.isPlainAddress(from) else {
            throw OperationError.invalidConfiguration("ARCA_NOTIFY_FROM is not a plain address like arca@example.com.")
        }
        return MailSettings(host: host, port: port, recipients: addresses, sender: from)
    }

    /// `local@domain` in printable ASCII without spaces, angle brackets or
    /// anything else that could end an SMTP command or a header early.
    static func isPlainAddress(_ text: String) -> Bool {
        let forbidden = Set("<>()[]\\,;:\"@ ")
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard text.utf8.count <= 254, parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
              text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f })
        else { return false }
        return parts.allSatisfy { part in !part.contains(where: forbidden.contains) }
            && (parts[1].contains(".") || parts[1] == "localhost")
    }
}
