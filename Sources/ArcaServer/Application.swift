import ArcaFormat
import ArcaEngine
import ArcaFormat
import ArcaOperations
import ArcaPostgres
import Foundation
import Hummingbird
import ServiceLifecycle
import Logging

/// Builds the router from its dependencies: every route behind the rate
/// limiter and the JSON error mapping; `/api` behind token authentication.
/// Tests drive exactly this router (HummingbirdTesting), the server serves it.
public func buildRouter(
    _ configuration: ServerConfiguration, authority: TokenAuthority, cancellation: Cancellation = Cancellation()
) -> Router<ArcaRequestContext> {
    buildRouter(configuration, authority: authority, cancellation: cancellation, jobs: BackupJobs())
}

/// The router over the given job table (tests look into it).
func buildRouter(
    _ configuration: ServerConfiguration, authority: TokenAuthority, cancellation: Cancellation, jobs: BackupJobs
) -> Router<ArcaRequestContext> {
    let router = Router(context: ArcaRequestContext.self)
    let audit = AuditSink(repository: configuration.service.repository, mirror: configuration.service.auditMirror)
    router.add(middleware: RateLimitMiddleware(limiter: RateLimiter(limit: configuration.rateLimit, window: configuration.rateWindow), trustProxy: configuration.trustProxy))
    router.add(middleware: ErrorMiddleware())

    let health = HealthController(configuration: configuration, jobs: jobs)
    router.get("healthz", use: health.health)
    router.head("healthz", use: health.health)
    router.get("metrics", use: health.metrics)

    let api = router.group("api").add(middleware: AuthenticationMiddleware(authority: authority, audit: audit))
    BackupController(configuration: configuration, jobs: jobs, cancellation: cancellation).register(on: api)
    return router
}

/// The HTTP application, on `--host`/`--port`, with extra services (the
/// scheduler) run and shut down with it: SIGTERM/SIGINT stop both gracefully.
public func buildApplication(
    _ configuration: ServerConfiguration, services: [any Service] = [], logger: Logger
) async throws -> some ApplicationProtocol {
    let authority = try await TokenAuthority(secret: configuration.jwtSecret)
    // On graceful shutdown, backups started through the API stop cleanly
    // (temp removed, lock released, failure audited) before the server ends.
    let cancellation = Cancellation()
    return Application(
        router: buildRouter(configuration, authority: authority, cancellation: cancellation),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "arca"),
        services: services + [CancelOnShutdown(cancellation: cancellation)],
        logger: logger)
}

/// Waits for the graceful shutdown, then cancels the work it watches.
struct CancelOnShutdown: Service {
    let cancellation: Cancellation

    func run() async throws {
        try? await gracefulShutdown()
        cancellation.cancel()
    }
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
            let reachable: Bool = (try? await onThread {
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
        let operations = Operations(configuration: configuration.service, requester: .api(subject: "metrics", clientIP: context.clientIP))
        let running = jobs.running
        let text = try await onThread {
            let records = (try? operations.trail("metrics").log.records(action: "backup")) ?? []
            let successes = records.filter { $0.event.outcome == .success }
            let failures = records.filter { $0.event.outcome == .failure }.count
            let last = successes.last
            let lastTime = last.flatMap { Manifest.date(fromTimestamp: $0.event.time) }?.timeIntervalSince1970 ?? 0
            // Every store, as `arca status` sees them.
            let status = try operations.status()
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
                "# HELP arca_healthy Whether `arca status` finds the service healthy (1) or not (0).",
                "# TYPE arca_healthy gauge",
                "arca_healthy \(status.healthy ? 1 : 0)",
                "# HELP arca_backups Backups in each store.",
                "# TYPE arca_backups gauge",
            ]
            lines += status.storage.map { "arca_backups{location=\"\($0.location.rawValue)\"} \($0.backups)" }
            lines += [
                "# HELP arca_backups_bytes Total size of each store's archives.",
                "# TYPE arca_backups_bytes gauge",
            ]
            lines += status.storage.map { "arca_backups_bytes{location=\"\($0.location.rawValue)\"} \($0.bytes)" }
            lines.append("")
            return lines.joined(separator: "\n")
        }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

