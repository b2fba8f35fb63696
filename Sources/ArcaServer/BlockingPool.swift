import Foundation
import HTTPTypes

/// The server's threads for blocking work (libpq, files, engine operations):
/// at most `threads` run at once and at most `queueLength` wait; more is
/// refused with 503 and `Retry-After` instead of starting a thread per
/// request. Threads start as work arrives and then stay for the server's life.
final class BlockingPool: @unchecked Sendable {
    let threads: Int
    let queueLength: Int
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    /// Work accepted and not yet finished: running plus waiting.
    private var admitted = 0
    private var started = 0

    static let retryAfterSeconds = 5

    init(threads: Int, queueLength: Int) {
        precondition(threads > 0 && queueLength >= 0)
        self.threads = threads
        self.queueLength = queueLength
    }

    /// The error a request gets when the pool is full.
    static var busy: APIError {
        var error = APIError(.serviceUnavailable, "busy", "The server is busy with other requests. Retry after \(retryAfterSeconds) seconds.")
        error.headers[.retryAfter] = String(retryAfterSeconds)
        return error
    }

    /// Runs `body` on one of the pool's threads and awaits its result;
    /// throws `busy` at once when the pool is full.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            do {
                try submit { continuation.resume(with: Result { try body() }) }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// Queues `work` without waiting for it (a backup answered with 202).
    func submit(_ work: @escaping @Sendable () -> Void) throws {
        condition.lock()
        defer { condition.unlock() }
        guard admitted < threads + queueLength else { throw Self.busy }
        admitted += 1
        queue.append(work)
        if started < threads, started < admitted {
            started += 1
            let worker = Thread { [self] in serve() }
            worker.name = "arca-blocking"
            worker.start()
        }
        condition.signal()
    }

    private func serve() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let next = queue.removeFirst()
            condition.unlock()
            next()
            condition.lock()
            admitted -= 1
            condition.unlock()
        }
    }
}
