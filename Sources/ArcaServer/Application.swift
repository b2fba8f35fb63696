import ArcaFormat
import ArcaEngine
import ArcaPostgres
import Foundation
import Hummingbird
import ServiceLifecycle
import Logging

/// Builds the router from its dependencies: every route behind the rate
/// limiter and the JSON error mapping; `/api` behind token authentication.
/// Tests drive exactly this router (HummingbirdTesting), the server serves it.
public func buildRouter(_ configuration: ServerConfiguration, authority: TokenAuthority) -> Router<ArcaRequestContext> {
    let router = Router(context: ArcaRequestContext.self)
    let audit = AuditSink(repository: configuration.service.repository, mirror: configuration.service.auditMirror)
    let jobs = BackupJobs()
    router.add(middleware: RateLimitMiddleware(limiter: RateLimiter(limit: configuration.rateLimit, window: configuration.rateWindow), trustProxy: configuration.trustProxy))
    router.add(middleware: ErrorMiddleware())

    let health = HealthController(configuration: configuration, jobs: jobs)
    router.get("healthz", use: health.health)
    router.head("healthz", use: health.health)
    router.get("metrics", use: health.metrics)

    let api = router.group("api").add(middleware: AuthenticationMiddleware(authority: authority, audit: audit))
    BackupController(configuration: configuration, jobs: jobs, audit: audit).register(on: api)
    return router
}

/// The HTTP application, on `--host`/`--port`, with extra services (the
/// scheduler) run and shut down with it: SIGTERM/SIGINT stop both gracefully.
public func buildApplication(
    _ configuration: ServerConfiguration, services: [any Service] = [], logger: Logger
) async throws -> some ApplicationProtocol {
    let authority = try await TokenAuthority(secret: configuration.jwtSecret)
    return Application(
        router: buildRouter(configuration, authority: authority),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "arca"),
        services: services,
        logger: logger)
}

/// `/healthz` (liveness and database reachability) and `/metrics`
/// (Prometheus text), both without authentication.
struct HealthController: Sendable {
    let configuration: ServerConfiguration
    let jobs: BackupJobs
    let probe = DatabaseProbe()

    /// Remembers the database's reachability for a second, so a monitor (or
    /// a load balancer) polling /healthz costs one connection a second.
    actor DatabaseProbe {
        private var last: (time: Date, reachable: Bool)?

        func reachable(_ database: ConnectionString?) async -> Bool {
            if let last, Date().timeIntervalSince(last.time) < 1 { return last.reachable }
            let reachable: Bool = (try? await blocking {
                guard let database else { return false }
                let options = try ConnectionString(database.removing("connect_timeout").conninfo + " connect_timeout=3")
                _ = try PostgresConnection(options, applicationName: "arca healthz").execute("SELECT 1")
                return true
            }) ?? false
            last = (Date(), reachable)
            return reachable
        }
    }

    @Sendable func health(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let reachable = await probe.reachable(configuration.service.database)
        struct Body: Encodable { var status: String; var database: String }
        return JSONBody.response(
            Body(status: reachable ? "ok" : "degraded", database: reachable ? "reachable" : "unreachable"),
            status: reachable ? .ok : .serviceUnavailable)
    }

    @Sendable func metrics(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let repository = configuration.service.repository
        let running = await jobs.running
        let text = try await blocking {
            let records = (try? AuditTrail(repository: repository, action: "metrics").log.records(action: "backup")) ?? []
            let successes = records.filter { $0.event.outcome == "success" }
            let failures = records.filter { $0.event.outcome == "failure" }.count
            let last = successes.last
            let lastTime = last.flatMap { try? Date($0.event.time, strategy: .iso8601) }?.timeIntervalSince1970 ?? 0
            let listings = try repository.listings()
            var lines = [
                "# HELP arca_last_backup_success_timestamp_seconds When the last successful backup ended (Unix time).",
                "# TYPE arca_last_backup_success_timestamp_seconds gauge",
                "arca_last_backup_success_timestamp_seconds \(lastTime)",
                "# HELP arca_last_backup_duration_seconds How long the last successful backup took.",
                "# TYPE arca_last_backup_duration_seconds gauge",
                "arca_last_backup_duration_seconds \(last?.event.durationSeconds ?? 0)",
                "# HELP arca_last_backup_bytes Size of the last successful backup's archive.",
                "# TYPE arca_last_backup_bytes gauge",
                "arca_last_backup_bytes \(last?.event.details?["bytes"] ?? "0")",
                "# HELP arca_backup_failures_total Backups that failed, from the audit trail.",
                "# TYPE arca_backup_failures_total counter",
                "arca_backup_failures_total \(failures)",
                "# HELP arca_backups_in_progress Backups running in this server.",
                "# TYPE arca_backups_in_progress gauge",
                "arca_backups_in_progress \(running)",
                "# HELP arca_backups Backups in the local repository.",
                "# TYPE arca_backups gauge",
                "arca_backups \(listings.count)",
                "# HELP arca_backups_bytes Total size of the local repository's archives.",
                "# TYPE arca_backups_bytes gauge",
                "arca_backups_bytes \(listings.lazy.map(\.bytes).checkedSum ?? .max)",
            ]
            lines.append("")
            return lines.joined(separator: "\n")
        }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// The scheduler as a service of the application: it runs on its own thread
/// and is cancelled on graceful shutdown (a running backup stops cleanly).
public struct SchedulerService: Service {
    let service: BackupService

    public init(_ service: BackupService) { self.service = service }

    public func run() async throws {
        let service = self.service
        try await withGracefulShutdownHandler {
            try await blocking { try service.run() }
        } onGracefulShutdown: {
            service.cancellation.cancel()
        }
    }
}
