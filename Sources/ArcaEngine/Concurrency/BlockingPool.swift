import Foundation

/// Threads for blocking work (libpq, files, engine operations) called from
/// asynchronous code, bounded: at most `threads` run at once and at most
/// `queueLength` wait; more is refused (`Full`) instead of starting a
/// thread per call. Threads start as work arrives and then stay for the
/// pool's life. The HTTP server answers `Full` with 503 and `Retry-After`.
public final class BlockingPool: @unchecked Sendable {
    public let threads: Int
    public let queueLength: Int
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    /// Work accepted and not yet finished: running plus waiting.
    private var admitted = 0
    private var started = 0

    /// How long a refused caller should wait before trying again.
    public static let retryAfterSeconds = 5

    /// Every thread is busy and the queue is full.
    public struct Full: Error, Sendable, CustomStringConvertible {
        public var description: String {
            "The server is busy with other requests. Retry after \(BlockingPool.retryAfterSeconds) seconds."
        }
    }

    public init(threads: Int, queueLength: Int) {
        precondition(threads > 0 && queueLength >= 0)
        self.threads = threads
        self.queueLength = queueLength
    }

    /// Runs `body` on one of the pool's threads and awaits its result;
    /// throws `Full` at once when the pool is full.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            do {
                try submit { continuation.resume(with: Result { try body() }) }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// Queues `work` without waiting for it (a backup answered with 202).
    public func submit(_ work: @escaping @Sendable () -> Void) throws {
        condition.lock()
        defer { condition.unlock() }
        guard admitted < threads + queueLength else { throw Full() }
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
