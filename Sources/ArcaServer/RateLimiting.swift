import Foundation
import HTTPTypes
import Hummingbird

/// A fixed window per client: `limit` requests per `window`. Counts live in
/// memory, for at most `capacity` clients (the least recently seen are
/// forgotten first); the process is the unit of limiting.
actor RateLimiter {
    let limit: Int
    let window: TimeInterval
    private var windows: BoundedTable<String, (start: Date, count: Int)>

    init(limit: Int, window: TimeInterval, capacity: Int = ServerConfiguration.defaultRateLimitClients) {
        self.limit = limit
        self.window = window
        windows = BoundedTable(capacity: capacity)
    }

    /// Clients remembered now (never more than the capacity).
    var clients: Int { windows.count }

    /// Counts one request; returns what to tell the client.
    func take(_ client: String, now: Date = Date()) -> (allowed: Bool, remaining: Int, reset: Int) {
        let window = self.window
        let entry = windows.update(client) { entry -> (start: Date, count: Int) in
            var current = entry ?? (now, 0)
            if now.timeIntervalSince(current.start) >= window { current = (now, 0) }
            current.count += 1
            entry = current
            return current
        }
        let reset = max(1, Int((entry.start.addingTimeInterval(window).timeIntervalSince(now)).rounded(.up)))
        return (entry.count <= limit, max(0, limit - entry.count), reset)
    }
}

/// Finds the client address, applies the rate limit to every route, and
/// sets the `RateLimit-*` headers; beyond the limit, 429 with `Retry-After`.
/// Probes (`/healthz`, `/metrics`) count against a budget of their own, so
/// a load balancer polling every second never uses up the API's.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = ArcaRequestContext
    let api: RateLimiter
    let probes: RateLimiter
    let resolver: ClientAddressResolver

    static let probePaths: Set<String> = ["/healthz", "/metrics"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.clientIP = resolver.resolve(peer: context.remoteAddress, forwardedFor: request.headers[values: HTTPField.Name("X-Forwarded-For")!])
        let limiter = Self.probePaths.contains(request.uri.path) ? probes : api
        let decision = await limiter.take(context.clientIP)
        var response: Response
        if decision.allowed {
            response = try await next(request, context)
        } else {
            var error = APIError(.tooManyRequests, "rate_limited", "Too many requests: at most \(limiter.limit) per \(Int(limiter.window)) seconds. Retry after \(decision.reset) seconds.")
            error.headers[.retryAfter] = String(decision.reset)
            response = error.response()
        }
        response.headers[HTTPField.Name("RateLimit-Limit")!] = String(limiter.limit)
        response.headers[HTTPField.Name("RateLimit-Remaining")!] = String(decision.remaining)
        response.headers[HTTPField.Name("RateLimit-Reset")!] = String(decision.reset)
        return response
    }
}

/// Authentication failures reach the audit trail at a bounded rate: the
/// first from an address in each `interval`, carrying how many were left
/// out since the last one recorded. An attacker's flood of bad tokens then
/// costs one fsync-ed line per address per minute, in bounded memory.
actor AuthenticationFailureThrottle {
    let interval: TimeInterval
    private var addresses: BoundedTable<String, (since: Date, suppressed: Int)>

    init(interval: TimeInterval = 60, capacity: Int = ServerConfiguration.defaultRateLimitClients) {
        self.interval = interval
        addresses = BoundedTable(capacity: capacity)
    }

    /// nil when this failure is not to be recorded; otherwise the number of
    /// failures from the address that were not recorded before it.
    func admit(_ client: String, now: Date = Date()) -> Int? {
        let interval = self.interval
        return addresses.update(client) { entry -> Int? in
            if let current = entry, now.timeIntervalSince(current.since) < interval {
                entry = (current.since, current.suppressed + 1)
                return nil
            }
            let suppressed = entry?.suppressed ?? 0
            entry = (now, 0)
            return suppressed
        }
    }
}
