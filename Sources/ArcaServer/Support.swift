import ArcaEngine
import ArcaOperations
import ArcaPostgres
import Foundation

/// Audit records from request handlers.
struct AuditSink: Sendable {
    let repository: Repository
    let mirror: ConnectionString?
    let pool: BlockingPool

    func trail(_ action: String, actor: String, clientIP: String) -> AuditTrail {
        AuditTrail(repository: repository, action: action, actor: actor, clientIP: clientIP, mirror: mirror)
    }

    func record(action: String, actor: String, clientIP: String, target: String? = nil, outcome: AuditOutcome, error: String? = nil) async {
        let trail = trail(action, actor: actor, clientIP: clientIP)
        // Best effort, as before: a full pool drops the line rather than
        // start a thread per refused request.
        _ = try? await pool.run { try trail.record(outcome: outcome, target: target, error: error) }
    }
}

/// The API's way of writing sizes: "2.5MB".
enum SizeText {
    static func format(_ bytes: UInt64) -> String { ByteCount.format(bytes, separator: "") }
}
