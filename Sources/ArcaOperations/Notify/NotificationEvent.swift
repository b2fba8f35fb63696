import ArcaEngine
import ArcaFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a notification says: the audit event's own fields, nothing more.
/// The audit trail already keeps secrets and row values out of them (errors
/// are recorded by their redacted description), so a notification cannot
/// carry what the audit log would not. The JSON form is documented in README
/// ("Notifications") and sent as is with `ARCA_NOTIFY_FORMAT=json`.
public struct NotificationEvent: Codable, Sendable, Equatable {
    /// `operation`: an audited operation ended; `stream_lag`: the change
    /// stream fell behind `ARCA_MAX_LAG_SECONDS` (failure) or caught up (success).
    public var event: String
    public var action: String
    public var outcome: AuditOutcome
    public var target: String?
    public var time: String
    public var host: String
    public var error: String?
    public var durationSeconds: Double?

    public init(
        event: String = "operation", action: String, outcome: AuditOutcome, target: String? = nil,
        time: String = Manifest.timestamp(Date()), host: String = NotificationEvent.hostName, error: String? = nil,
        durationSeconds: Double? = nil
    ) {
        self.event = event
        self.action = action
        self.outcome = outcome
        self.target = target
        self.time = time
        self.host = host
        self.error = error
        self.durationSeconds = durationSeconds
    }

    public init(_ audit: AuditEvent) {
        self.init(
            action: audit.action, outcome: audit.outcome, target: audit.target, time: audit.time, error: audit.error,
            durationSeconds: audit.durationSeconds)
    }

    /// This machine's name, to tell several Arca hosts apart in one channel.
    public static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        let name = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "unknown" : name
    }()

    public var isFailure: Bool { outcome == .failure || outcome == .refused }

    /// What happened, where, to what: `backup failed on db1 (20241201T140518Z)`.
    public var headline: String {
        var text: String
        switch (event, outcome) {
        case ("stream_lag", .success): text = "The change stream caught up on \(host)"
        case ("stream_lag", _): text = "The change stream is behind on \(host)"
        case (_, .success): text = "\(action) succeeded on \(host)"
        case (_, .refused): text = "\(action) was refused on \(host)"
        default: text = "\(action) failed on \(host)"
        }
        if let target { text += " (\(target))" }
        return text
    }

    /// The headline with the duration and the error: one line for people.
    public var summary: String {
        var text = headline
        if let durationSeconds, event == "operation" { text += " after \(durationSeconds) s" }
        if let error { text += ": \(error)" }
        return text
    }

    /// The HTTP body for `format`.
    public func payload(_ format: NotificationSettings.Format) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        switch format {
        case .json:
            return (try? encoder.encode(self)) ?? Data()
        case .slack:
            // Slack reads &, < and > as markup (links, mentions): escaped, an
            // error text cannot ping a channel or forge a link.
            let text = "Arca: " + summary
                .replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;")
            return (try? encoder.encode(["text": text])) ?? Data()
        }
    }
}
