import ArcaEngine
import ArcaOperations
import ArcaPostgres
import Foundation

/// The HTTP server's settings, from the environment, validated at start-up.
public struct ServerConfiguration: Sendable {
    public var service: ServiceConfiguration
    public var host = "127.0.0.1"
    public var port = 3000
    public var jwtSecret: String
    public var rateLimit = 100
    public var rateWindow: TimeInterval = 900
    public var trustProxy = false
    /// Databases a restore may target besides DATABASE_URL (`ARCA_RESTORE_TARGETS`,
    /// comma-separated connection strings), compared by host, port and database.
    public var restoreTargets: [ConnectionString] = []

    public init(service: ServiceConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.service = service
        guard let secret = environment["JWT_SECRET"], !secret.isEmpty else {
            throw OperationError.invalidConfiguration("JWT_SECRET is not set: the API signs and checks tokens with it. Set it to at least 32 random bytes (openssl rand -base64 48).")
        }
        guard secret.utf8.count >= TokenAuthority.minimumSecretLength else {
            throw OperationError.invalidConfiguration("\(TokenAuthority.SecretError.tooShort(secret.utf8.count))")
        }
        jwtSecret = secret
        if let text = environment["ARCA_RATE_LIMIT"], !text.isEmpty {
            // "100/900": requests per window in seconds.
            let parts = text.split(separator: "/").compactMap { Int($0) }
            guard parts.count == 2, parts[0] > 0, parts[1] > 0 else {
                throw OperationError.invalidConfiguration("ARCA_RATE_LIMIT must look like 100/900 (requests per seconds), not \"\(text)\".")
            }
            rateLimit = parts[0]
            rateWindow = TimeInterval(parts[1])
        }
        trustProxy = ["1", "true", "yes"].contains(environment["ARCA_TRUST_PROXY"]?.lowercased() ?? "")
        restoreTargets = try (environment["ARCA_RESTORE_TARGETS"] ?? "").split(separator: ",").map { text in
            do { return try ConnectionString(String(text).trimmingCharacters(in: .whitespaces)) } catch {
                throw OperationError.invalidConfiguration("ARCA_RESTORE_TARGETS has an invalid connection string: \(error)")
            }
        }
    }

    /// Whether a restore may write to `target`.
    func allowsRestore(into target: ConnectionString) -> Bool {
        let allowed = (service.database.map { [$0] } ?? []) + restoreTargets
        return allowed.contains { Self.sameDatabase($0, target) }
    }

    static func sameDatabase(_ a: ConnectionString, _ b: ConnectionString) -> Bool {
        ["host", "hostaddr", "port", "dbname"].allSatisfy { a.value($0) == b.value($0) }
    }
}
