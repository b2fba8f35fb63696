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
    /// Databases a restore may target besides DATABASE_URL
    /// (`ARCA_RESTORE_TARGETS`, comma-separated connection strings), by
    /// name: each one's database name. A request names a target; the
    /// connection (host, user, password, options) is the server's.
    public var restoreTargets: [String: ConnectionString] = [:]

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
        for text in (environment["ARCA_RESTORE_TARGETS"] ?? "").split(separator: ",") {
            let target: ConnectionString
            do {
                target = try ConnectionString(String(text).trimmingCharacters(in: .whitespaces))
            } catch {
                throw OperationError.invalidConfiguration("ARCA_RESTORE_TARGETS has an invalid connection string: \(error)")
            }
            guard let name = target.value("dbname"), !name.isEmpty else {
                throw OperationError.invalidConfiguration("Every target in ARCA_RESTORE_TARGETS needs a database name (it is the name a restore request uses): \(target.redacted) has none.")
            }
            guard restoreTargets[name] == nil, name != service.database?.value("dbname") else {
                throw OperationError.invalidConfiguration("Two restore targets are named \(name) (ARCA_RESTORE_TARGETS and DATABASE_URL): a request could not tell them apart.")
            }
            restoreTargets[name] = target
        }
    }

    /// The database a restore request names: `DATABASE_URL` without a
    /// name (or by its own name), else a target of `ARCA_RESTORE_TARGETS`.
    func restoreTarget(named name: String?) -> ConnectionString? {
        guard let name, name != service.database?.value("dbname") else { return service.database }
        return restoreTargets[name]
    }
}
