import ArcaEngine
import ArcaFormat
import ArcaOperations
import ArcaPostgres
import Foundation
import Hummingbird
import HummingbirdCore
import ServiceLifecycle
import Logging
import NIOCore

/// Builds the router from its dependencies: every route behind the rate
/// limiter and the JSON error mapping; `/api` behind token authentication.
/// Tests drive exactly this router (HummingbirdTesting), the server serves it.
public func buildRouter(
    _ configuration: ServerConfiguration, authority: TokenAuthority, cancellation: Cancellation = Cancellation()
) -> Router<ArcaRequestContext> {
    buildRouter(configuration, authority: authority, cancellation: cancellation, jobs: BackupJobs())
}

/// The router over the given job table and blocking pool (tests look into
/// them).
func buildRouter(
    _ configuration: ServerConfiguration, authority: TokenAuthority, cancellation: Cancellation, jobs: BackupJobs,
    pool: BlockingPool? = nil
) -> Router<ArcaRequestContext> {
    let router = Router(context: ArcaRequestContext.self)
    let pool = pool ?? BlockingPool(threads: configuration.blockingThreads, queueLength: configuration.blockingQueue)
    let audit = AuditSink(repository: configuration.service.repository, mirror: configuration.service.auditMirror, pool: pool)
    router.add(middleware: RateLimitMiddleware(
        api: RateLimiter(limit: configuration.rateLimit, window: configuration.rateWindow, capacity: configuration.rateLimitClients),
        probes: RateLimiter(limit: configuration.probeRateLimit, window: configuration.probeRateWindow, capacity: configuration.rateLimitClients),
        resolver: ClientAddressResolver(trustedProxies: configuration.trustedProxies)))
    router.add(middleware: ErrorMiddleware())

    let health = HealthController(configuration: configuration, jobs: jobs, pool: pool)
    router.get("healthz", use: health.health)
    router.head("healthz", use: health.health)
    router.get("metrics", use: health.metrics)
    StatusPage().register(on: router)

    let api = router.group("api").add(middleware: AuthenticationMiddleware(
        authority: authority, audit: audit, failures: AuthenticationFailureThrottle(capacity: configuration.rateLimitClients)))
    BackupController(configuration: configuration, jobs: jobs, cancellation: cancellation, pool: pool).register(on: api)
    return router
}

/// The HTTP application, on `--host`/`--port`, with extra services (the
/// scheduler) run and shut down with it: SIGTERM/SIGINT stop both gracefully.
public func buildApplication(
    _ configuration: ServerConfiguration, services: [any Service] = [], logger: Logger
) async throws -> some ApplicationProtocol {
    try await buildApplication(configuration, services: services, logger: logger, onServerRunning: { _ in })
}

/// The application, telling `onServerRunning` its listening channel (tests
/// learn the ephemeral port from it).
func buildApplication(
    _ configuration: ServerConfiguration, services: [any Service] = [], logger: Logger,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void
) async throws -> some ApplicationProtocol {
    let authority = try await TokenAuthority(secret: configuration.jwtSecret)
    // On graceful shutdown, backups started through the API stop cleanly
    // (temp removed, lock released, failure audited) before the server ends.
    let cancellation = Cancellation()
    let jobs = BackupJobs()
    return Application(
        router: buildRouter(configuration, authority: authority, cancellation: cancellation, jobs: jobs),
        server: HTTPServerBuilder { responder in
            LimitedHTTP1Channel(
                responder: responder, limits: HTTPLimits(configuration),
                connections: ConnectionCounter(limit: configuration.maxConnections))
        },
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "arca"),
        services: services + [CancelOnShutdown(cancellation: cancellation, jobs: jobs)],
        onServerRunning: onServerRunning,
        logger: logger)
}

/// Waits for the graceful shutdown, cancels the backups the API started,
/// and waits until they have stopped (temp file removed, lock released,
/// failure audited): the process must not end under them.
struct CancelOnShutdown: Service {
    let cancellation: Cancellation
    let jobs: BackupJobs
    /// A cancelled backup stops at its next chunk; this is far beyond that.
    static let patience: Duration = .seconds(120)

    func run() async throws {
        try? await gracefulShutdown()
        cancellation.cancel()
        let deadline = ContinuousClock.now + Self.patience
        while !jobs.running.isEmpty, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// `/healthz` (liveness and database reachability, without
/// authentication) and `/metrics` (Prometheus text, behind
/// `ARCA_METRICS_TOKEN` when it is set).
struct HealthController: Sendable {
    let configuration: ServerConfiguration
    let jobs: BackupJobs
    let pool: BlockingPool
    let probe = DatabaseProbe()
    let stored: MetricsCache

    init(configuration: ServerConfiguration, jobs: BackupJobs, pool: BlockingPool) {
        self.configuration = configuration
        self.jobs = jobs
        self.pool = pool
        stored = MetricsCache(maxAge: configuration.metricsCacheSeconds)
    }

    /// Remembers the database's reachability for a second, so a monitor (or
    /// a load balancer) polling /healthz costs one connection a second.
    actor DatabaseProbe {
        private var last: (time: Date, reachable: Bool)?

        func reachable(_ database: ConnectionString?, pool: BlockingPool) async throws -> Bool {
            if let last, Date().timeIntervalSince(last.time) < 1 { return last.reachable }
            // A full pool is the pool's 503, not an unreachable database.
            let reachable: Bool = try await pool.run {
                guard let database else { return false }
                do {
                    let options = try ConnectionString(database.removing("connect_timeout").conninfo + " connect_timeout=3")
                    _ = try PostgresConnection(options, applicationName: "arca healthz").execute("SELECT 1")
                    return true
                } catch {
                    return false
                }
            }
            last = (Date(), reachable)
            return reachable
        }
    }

    @Sendable func health(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let reachable = try await probe.reachable(configuration.service.database, pool: pool)
        struct Body: Encodable { var status: String; var database: String }
        return JSONBody.response(
            Body(status: reachable ? "ok" : "degraded", database: reachable ? "reachable" : "unreachable"),
            status: reachable ? .ok : .serviceUnavailable)
    }

    @Sendable func metrics(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        if let token = configuration.metricsToken {
            let header = request.headers[.authorization] ?? ""
            let given = header.lowercased().hasPrefix("bearer ") ? String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces) : ""
            guard ConstantTime.equal(given, token) else {
                var error = APIError(.unauthorized, "unauthorized", "/metrics needs Authorization: Bearer <ARCA_METRICS_TOKEN>.")
                error.headers[.wwwAuthenticate] = #"Bearer realm="arca-metrics""#
                throw error
            }
        }
        let operations = Operations(configuration: configuration.service, requester: .api(subject: "metrics", clientIP: context.clientIP))
        let pool = self.pool
        // What reads the trail, every manifest and the bucket is computed at
        // most once per ARCA_METRICS_CACHE seconds; running jobs are live.
        let figures = try await stored.figures {
            try await pool.run { try StoredFigures(operations) }
        }
        let running = jobs.running
        var lines = [
            "# HELP arca_last_backup_success_timestamp_seconds When the last successful backup ended (Unix time).",
            "# TYPE arca_last_backup_success_timestamp_seconds gauge",
            "arca_last_backup_success_timestamp_seconds \(figures.lastSuccessTime)",
            "# HELP arca_last_backup_duration_seconds How long the last successful backup took.",
            "# TYPE arca_last_backup_duration_seconds gauge",
            "arca_last_backup_duration_seconds \(figures.lastDuration)",
            "# HELP arca_last_backup_bytes Size of the last successful backup's archive.",
            "# TYPE arca_last_backup_bytes gauge",
            "arca_last_backup_bytes \(figures.lastBytes)",
            "# HELP arca_backup_failures_total Backups that failed, from the audit trail.",
            "# TYPE arca_backup_failures_total counter",
            "arca_backup_failures_total \(figures.failures)",
            "# HELP arca_backups_in_progress Backups running in this server.",
            "# TYPE arca_backups_in_progress gauge",
            "arca_backups_in_progress \(running.count)",
            "# HELP arca_backup_progress_percent How far each running backup has come (estimated from the tables' size).",
            "# TYPE arca_backup_progress_percent gauge",
        ]
        lines += running.compactMap { job in job.progress?.percent.map { "arca_backup_progress_percent{backup_id=\"\(job.id)\"} \($0)" } }
        lines += [
            "# HELP arca_backup_progress_bytes COPY text read so far by each running backup.",
            "# TYPE arca_backup_progress_bytes gauge",
        ]
        lines += running.map { "arca_backup_progress_bytes{backup_id=\"\($0.id)\"} \($0.progress?.bytesDone ?? 0)" }
        lines += [
            "# HELP arca_last_backup_verified Whether the newest backup's last verification found it intact (1), failed (0), or it was never verified (-1).",
            "# TYPE arca_last_backup_verified gauge",
            "arca_last_backup_verified \(figures.lastVerified)",
            "# HELP arca_healthy Whether `arca status` finds the service healthy (1) or not (0).",
            "# TYPE arca_healthy gauge",
            "arca_healthy \(figures.healthy ? 1 : 0)",
            "# HELP arca_backups The configured database's backups in each store.",
            "# TYPE arca_backups gauge",
        ]
        lines += figures.storage.map { "arca_backups{location=\"\($0.location)\"} \($0.backups)" }
        lines += [
            "# HELP arca_backups_bytes Total size of each store's archives.",
            "# TYPE arca_backups_bytes gauge",
        ]
        lines += figures.storage.map { "arca_backups_bytes{location=\"\($0.location)\"} \($0.bytes)" }
        lines += Self.streamLines(figures.streams)
        lines.append("")
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: lines.joined(separator: "\n"))))
    }
}

extension HealthController {
    /// The change streams' gauges, one series per slot (slot names are
    /// lower-case letters, digits and underscores: nothing to escape).
    static func streamLines(_ streams: [StreamStatus]) -> [String] {
        func gauge(_ name: String, _ help: String, _ value: (StreamStatus) -> Double?) -> [String] {
            ["# HELP \(name) \(help)", "# TYPE \(name) gauge"]
                + streams.compactMap { stream in value(stream).map { "\(name){slot=\"\(stream.slot)\"} \($0)" } }
        }
        func epoch(_ text: String?) -> Double? { text.flatMap(Manifest.date(fromTimestamp:))?.timeIntervalSince1970 }
        return gauge("arca_stream_lag_bytes", "WAL written since the change stream's confirmed position.", { $0.lagBytes.map(Double.init) })
            + gauge("arca_stream_lag_seconds", "Seconds since the newest instant a point-in-time restore can reach.", { $0.lagSeconds })
            + gauge("arca_stream_retained_wal_bytes", "WAL the change stream's slot keeps the server from recycling.", { $0.retainedWALBytes.map(Double.init) })
            + gauge("arca_stream_oldest_restorable_timestamp_seconds", "The oldest instant a point-in-time restore can reach (Unix time).", { epoch($0.oldestRestorable) })
            + gauge("arca_stream_newest_restorable_timestamp_seconds", "The newest instant a point-in-time restore can reach (Unix time).", { epoch($0.newestRestorable) })
    }
}

/// The figures of `/metrics` that cost a read of the audit trail, every
/// manifest and the bucket listing.
struct StoredFigures: Sendable {
    var lastSuccessTime: Double
    var lastDuration: Double
    var lastBytes: String
    var failures: Int
    var healthy: Bool
    /// The newest backup's integrity: 1 verified, 0 failed, -1 not verified (or none).
    var lastVerified: Int
    var storage: [(location: String, backups: Int, bytes: UInt64)]
    var streams: [StreamStatus]

    init(_ operations: Operations) throws {
        let records = (try? operations.trail("metrics").log.records(action: "backup")) ?? []
        let last = records.last(where: { $0.event.outcome == .success })
        lastSuccessTime = last.flatMap { Manifest.date(fromTimestamp: $0.event.time) }?.timeIntervalSince1970 ?? 0
        lastDuration = last?.event.durationSeconds ?? 0
        lastBytes = last?.event.details?["bytes"] ?? "0"
        failures = records.filter { $0.event.outcome == .failure }.count
        // Every store, as `arca status` sees them.
        let status = try operations.status()
        healthy = status.healthy
        lastVerified = switch status.lastBackup?.integrity {
        case .verified: 1
        case .failed: 0
        default: -1
        }
        storage = status.storage.map { ($0.location.rawValue, $0.backups, $0.bytes) }
        streams = status.streams ?? []
    }
}

/// The last `StoredFigures`, served again for `maxAge` seconds; scrapes
/// that arrive while they are computed wait for the same computation.
actor MetricsCache {
    let maxAge: TimeInterval
    private var latest: (time: Date, figures: Task<StoredFigures, any Error>)?

    init(maxAge: TimeInterval) { self.maxAge = maxAge }

    func figures(_ compute: @escaping @Sendable () async throws -> StoredFigures) async throws -> StoredFigures {
        if let latest, Date().timeIntervalSince(latest.time) < maxAge { return try await latest.figures.value }
        let task = Task { try await compute() }
        latest = (Date(), task)
        do {
            return try await task.value
        } catch {
            // A failure is not remembered: the next scrape tries again.
            if latest?.figures == task { latest = nil }
            throw error
        }
    }
}

/// Comparing secrets without a timing side channel.
enum ConstantTime {
    /// Whether `a` equals `b`, in a time that depends on their lengths only.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference: UInt8 = x.count == y.count ? 0 : 1
        for index in 0..<max(x.count, y.count) {
            difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
        }
        return difference == 0
    }
}
