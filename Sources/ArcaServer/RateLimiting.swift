import Foundation
import HTTPTypes
import Hummingbird

/// A fixed window per client: `limit` requests per `window`. Counts live in
/// memory; the process is the unit of limiting.
actor RateLimiter {
    let limit: Int
    let window: TimeInterval
    private var windows: [String: (start: Date, count: Int)] = [:]

    init(limit: Int, window: TimeInterval) {
        self.limit = limit
        self.window = window
    }

    /// Counts one request; returns what to tell the client.
    func take(_ client: String, now: Date = Date()) -> (allowed: Bool, remaining: Int, reset: Int) {
        var entry = windows[client] ?? (now, 0)
        if now.timeIntervalSince(entry.start) >= window { entry = (now, 0) }
        entry.count += 1
        windows[client] = entry
        if windows.count > 10_000 { windows = windows.filter { now.timeIntervalSince($0.value.start) < window } }
        let reset = max(1, Int((entry.start.addingTimeInterval(window).timeIntervalSince(now)).rounded(.up)))
        return (entry.count <= limit, max(0, limit - entry.count), reset)
    }
}

/// Finds the client address (X-Forwarded-For only when the proxy is
/// trusted), applies the rate limit to every route, and sets the
/// `RateLimit-*` headers; beyond the limit, 429 with `Retry-After`.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = ArcaRequestContext
    let limiter: RateLimiter
    let trustProxy: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.clientIP = clientIP(request, context)
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

    private func clientIP(_ request: Request, _ context: Context) -> String {
        if trustProxy, let forwarded = request.headers[HTTPField.Name("X-Forwarded-For")!] {
            if let first = forwarded.split(separator: ",").first?.trimmingCharacters(in: .whitespaces), !first.isEmpty { return first }
        }
        return context.remoteAddress?.ipAddress ?? "unknown"
    }
}
