import Foundation

/// Set from a signal handler (SIGTERM, SIGINT) or a shutting-down service;
/// long operations poll it and stop cleanly: temp files removed, locks
/// released, the failure audited.
public final class Cancellation: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false

    public init() {}

    public func cancel() {
        lock.lock()
        cancelled = true
        lock.unlock()
    }

    public var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }
}
