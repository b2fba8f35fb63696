import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix

/// How often and how patiently a failed request is sent again.
/// Retried: no answer (connection refused/reset/closed, timeouts), HTTP 500/502/503/504, 429,
/// and the S3 codes SlowDown, InternalError, RequestTimeout, ServiceUnavailable.
/// Never retried: other 4xx answers (403, 404, …), which another attempt cannot fix.
/// A server that says how long to wait (`Retry-After`) is waited for, up to `maxDelay`.
public struct RetryPolicy: Sendable {
    /// Total sends, the first included; 1 disables retries.
    public var maxAttempts: Int
    /// Delay before the second attempt; it doubles with every further attempt.
    public var baseDelay: Duration
    /// Upper bound of a single delay.
    public var maxDelay: Duration

    public init(maxAttempts: Int = 5, baseDelay: Duration = .milliseconds(200), maxDelay: Duration = .seconds(5)) {
        precondition(maxAttempts >= 1, "RetryPolicy.maxAttempts must be at least 1")
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    public static let `default` = RetryPolicy()

    /// The pause after failed attempt `attempt` (1-based): exponential, capped, with "equal
    /// jitter" (a random half) so that many clients failing together do not retry in lockstep;
    /// at least what the server asked for (`serverAsked`), but never more than `maxDelay`, so
    /// that a far-off Retry-After cannot stall a backup beyond the policy's bounds.
    public func delay(afterAttempt attempt: Int, serverAsked: Duration? = nil) -> Duration {
        let exponential = baseDelay * (1 << min(attempt - 1, 20))
        let capped = min(exponential, maxDelay)
        let backoff = capped / 2 + capped / 2 * Double.random(in: 0...1)
        guard let serverAsked else { return backoff }
        return max(backoff, min(serverAsked, maxDelay))
    }

    /// A `Retry-After` value (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date from which
    /// the wait is counted from `now`. Nil when absent or unreadable.
    static func retryAfter(_ value: String?, now: Date = Date()) -> Duration? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Int(value) { return seconds >= 0 ? .seconds(seconds) : nil }
        guard let date = S3Date.parseRFC1123(value) else { return nil }
        return .seconds(max(0, date.timeIntervalSince(now)))
    }

    static let retryableStatuses: Set<Int> = [429, 500, 502, 503, 504]
    static let retryableCodes: Set<String> = [
        "SlowDown", "InternalError", "RequestTimeout", "ServiceUnavailable",
        // 409 to a conditional write racing another one: S3 asks for a retry.
        "ConditionalRequestConflict",
    ]

    static func isRetryable(status: Int, code: String?) -> Bool {
        retryableStatuses.contains(status) || code.map(retryableCodes.contains) == true
    }
}

/// A failure to get any HTTP answer, classified for retrying and for the error message.
struct TransportFailure {
    let reason: String
    let isRetryable: Bool

    init(_ error: any Error) {
        switch error {
        case let error as HTTPClientError:
            switch error {
            case .connectTimeout, .socksHandshakeTimeout, .tlsHandshakeTimeout:
                self.init(reason: "connection timed out", isRetryable: true)
            case .readTimeout, .writeTimeout, .deadlineExceeded:
                self.init(reason: "request timed out", isRetryable: true)
            case .remoteConnectionClosed, .getConnectionFromPoolTimeout:
                self.init(reason: "connection closed", isRetryable: true)
            default:
                self.init(reason: "\(error)", isRetryable: false)
            }
        case let error as IOError:
            self.init(errno: error.errnoCode)
        case let error as ChannelError:
            switch error {
            case .connectTimeout: self.init(reason: "connection timed out", isRetryable: true)
            case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed, .inputClosed:
                self.init(reason: "connection closed", isRetryable: true)
            default: self.init(reason: "\(error)", isRetryable: false)
            }
        case let error as NIOConnectionError:
            // One failure per address tried; the first connect failure says the most.
            if let failure = error.connectionErrors.first {
                self.init(failure.error)
            } else {
                self.init(reason: "host name not found", isRetryable: true)
            }
        default:
            self.init(reason: String(describing: error), isRetryable: false)
        }
    }

    private init(reason: String, isRetryable: Bool) {
        self.reason = reason
        self.isRetryable = isRetryable
    }

    private init(errno: Int32) {
        if let known = Self.knownErrnos[errno] {
            self.init(reason: known, isRetryable: true)
        } else {
            self.init(reason: "I/O error \(errno)", isRetryable: false)
        }
    }

    private static let knownErrnos: [Int32: String] = [
        ECONNREFUSED: "connection refused",
        ECONNRESET: "connection reset",
        ECONNABORTED: "connection aborted",
        EPIPE: "connection closed",
        ETIMEDOUT: "connection timed out",
        EHOSTUNREACH: "host unreachable",
        ENETUNREACH: "network unreachable",
        ENETDOWN: "network down",
    ]
}
