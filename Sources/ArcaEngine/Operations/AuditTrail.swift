import ArcaFormat
import Foundation

/// Records one operation in the repository's audit log: who, from where,
/// what, on which backup, how it ended, how long it took. Secrets and row
/// data never go in: errors are recorded by their description, which never
/// holds a password.
public struct AuditTrail: Sendable {
    public let repository: Repository
    public let action: String
    public let actor: String
    public let clientIP: String?
    private let started = ContinuousClock.now

    public init(repository: Repository, action: String, actor: String = AuditTrail.cliActor, clientIP: String? = nil) {
        self.repository = repository
        self.action = action
        self.actor = actor
        self.clientIP = clientIP
    }

    /// `cli:<user>` for commands run by a person or cron.
    public static var cliActor: String {
        if let user = ProcessInfo.processInfo.environment["USER"], !user.isEmpty { return "cli:\(user)" }
        if let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name { return "cli:" + String(cString: name) }
        return "cli:uid \(geteuid())"
    }

    public var log: AuditLog {
        AuditLog(path: repository.root + "/audit.log", sha256: { Digest.hash(.sha256, $0) })
    }

    /// Appends the event; throws when it cannot be written (an operation
    /// whose audit record is lost must fail).
    public func record(outcome: String, target: String? = nil, error: String? = nil, details: [String: String]? = nil) throws {
        try repository.prepare()
        let duration = ContinuousClock.now - started
        try log.append(AuditEvent(
            time: Manifest.timestamp(Date()), actor: actor, clientIP: clientIP, action: action, target: target,
            outcome: outcome,
            durationSeconds: Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18,
            error: error, details: details))
    }

    /// Records a failure; a failure to record it is swallowed, because the
    /// operation's own error is what the caller must report.
    public func recordFailure(_ error: any Error, target: String? = nil, details: [String: String]? = nil) {
        let refused: Bool
        switch error {
        case OperationError.alreadyRunning: refused = true
        case RestoreError.notConfirmed, RestoreError.targetNotEmpty, RestoreError.databaseExists: refused = true
        default: refused = false
        }
        try? record(outcome: refused ? "refused" : "failure", target: target, error: "\(error)", details: details)
    }
}
