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
    /// `ARCA_PROBE_RATE_LIMIT`: the separate budget of `/healthz` and `/metrics`.
    public var probeRateLimit = 3600
    public var probeRateWindow: TimeInterval = 900
    /// `ARCA_RATE_LIMIT_CLIENTS`: how many client addresses the limiter remembers.
    public var rateLimitClients = ServerConfiguration.defaultRateLimitClients
    public static let defaultRateLimitClients = 10_000
    /// Proxies whose `X-Forwarded-For` is believed: `ARCA_TRUSTED_PROXIES`
    /// (CIDRs), plus loopback with `ARCA_TRUST_PROXY=1`.
    var trustedProxies: [CIDRNetwork] = []
    /// `ARCA_METRICS_TOKEN`: when set, `/metrics` needs `Authorization: Bearer <it>`.
    public var metricsToken: String?
    /// `ARCA_METRICS_CACHE`: seconds a computed `/metrics` page is served again.
    public var metricsCacheSeconds: TimeInterval = 15
    /// `ARCA_HTTP_IDLE_TIMEOUT`: seconds a connection may wait for its next request.
    public var idleTimeout: TimeInterval = 60
    /// `ARCA_HTTP_HEADER_TIMEOUT`: seconds from a request's first byte to its complete head.
    public var headerTimeout: TimeInterval = 10
    /// `ARCA_HTTP_BODY_TIMEOUT`: seconds from a request's head to the end of its body.
    public var bodyTimeout: TimeInterval = 30
    /// `ARCA_HTTP_MAX_CONNECTIONS`: open connections; more are answered 503 and closed.
    public var maxConnections = 256
    /// `ARCA_BLOCKING_THREADS`: threads for blocking work (database, files, backups).
    public var blockingThreads = 8
    /// `ARCA_BLOCKING_QUEUE`: blocking work that may wait for a thread; more is answered 503.
    public var blockingQueue = 64
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
        (rateLimit, rateWindow) = try Self.budget("ARCA_RATE_LIMIT", environment, default: (rateLimit, rateWindow))
        (probeRateLimit, probeRateWindow) = try Self.budget("ARCA_PROBE_RATE_LIMIT", environment, default: (probeRateLimit, probeRateWindow))
        rateLimitClients = try Self.positive("ARCA_RATE_LIMIT_CLIENTS", environment, default: rateLimitClients)
        if ["1", "true", "yes"].contains(environment["ARCA_TRUST_PROXY"]?.lowercased() ?? "") {
            trustedProxies = CIDRNetwork.loopback
        }
        for entry in (environment["ARCA_TRUSTED_PROXIES"] ?? "").split(separator: ",") {
            let text = entry.trimmingCharacters(in: .whitespaces)
            guard let network = CIDRNetwork(text) else {
                throw OperationError.invalidConfiguration("ARCA_TRUSTED_PROXIES has \"\(text.prefix(64))\", which is not an address or a CIDR network: write them comma-separated, like 10.0.0.0/8, fd00::/8, 192.0.2.7.")
            }
            trustedProxies.append(network)
        }
        if let token = environment["ARCA_METRICS_TOKEN"], !token.isEmpty {
            guard token.utf8.count >= 16 else {
                throw OperationError.invalidConfiguration("ARCA_METRICS_TOKEN has \(token.utf8.count) bytes; it must have at least 16. Generate one with: openssl rand -hex 24")
            }
            metricsToken = token
        }
        metricsCacheSeconds = try Self.seconds("ARCA_METRICS_CACHE", environment, default: metricsCacheSeconds, allowZero: true)
        idleTimeout = try Self.seconds("ARCA_HTTP_IDLE_TIMEOUT", environment, default: idleTimeout)
        headerTimeout = try Self.seconds("ARCA_HTTP_HEADER_TIMEOUT", environment, default: headerTimeout)
        bodyTimeout = try Self.seconds("ARCA_HTTP_BODY_TIMEOUT", environment, default: bodyTimeout)
        maxConnections = try Self.positive("ARCA_HTTP_MAX_CONNECTIONS", environment, default: maxConnections)
        blockingThreads = try Self.positive("ARCA_BLOCKING_THREADS", environment, default: blockingThreads)
        blockingQueue = try Self.positive("ARCA_BLOCKING_QUEUE", environment, default: blockingQueue, allowZero: true)
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

    /// "100/900": requests per window in seconds.
    private static func budget(_ name: String, _ environment: [String: String], default value: (Int, TimeInterval)) throws -> (Int, TimeInterval) {
        guard let text = environment[name], !text.isEmpty else { return value }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 2, let limit = parts[0], let window = parts[1], limit > 0, window > 0 else {
            throw OperationError.invalidConfiguration("\(name) must look like 100/900 (requests per seconds), not \"\(text.prefix(64))\".")
        }
        return (limit, TimeInterval(window))
    }

    private static func positive(_ name: String, _ environment: [String: String], default value: Int, allowZero: Bool = false) throws -> Int {
        try ServiceConfiguration.integer(environment, name, in: (allowZero ? 0 : 1)...1_000_000) ?? value
    }

    private static func seconds(_ name: String, _ environment: [String: String], default value: TimeInterval, allowZero: Bool = false) throws -> TimeInterval {
        guard let text = environment[name], !text.isEmpty else { return value }
        guard let number = Double(text), number.isFinite, number > 0 || (allowZero && number == 0), number <= 86_400 else {
            throw OperationError.invalidConfiguration("\(name) must be a number of seconds from \(allowZero ? 0 : 0.001) to 86400, not \"\(text.prefix(64))\".")
        }
        return number
    }
}
