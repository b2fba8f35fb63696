import ArcaEngine
import ArcaPostgres
import Foundation

/// Runs blocking engine work (libpq, file I/O) on its own thread, so the
/// server's event loops and the cooperative pool never wait on it.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Audit records from request handlers.
struct AuditSink: Sendable {
    let repository: Repository
    let mirror: ConnectionString?

    func trail(_ action: String, actor: String, clientIP: String) -> AuditTrail {
        AuditTrail(repository: repository, action: action, actor: actor, clientIP: clientIP, mirror: mirror)
    }

    func record(action: String, actor: String, clientIP: String, target: String? = nil, outcome: String, error: String? = nil) async {
        let trail = trail(action, actor: actor, clientIP: clientIP)
        _ = try? await blocking { try trail.record(outcome: outcome, target: target, error: error) }
    }
}

/// The API's way of writing sizes: "2.5MB".
enum SizeText {
    static func format(_ bytes: UInt64) -> String { ByteCount.format(bytes, separator: "") }
}
