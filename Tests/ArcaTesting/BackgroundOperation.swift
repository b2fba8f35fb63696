import Foundation

/// Runs a blocking operation (a backup, a service job) on a thread of its
/// own, so that a test can break the world around it while it runs and then
/// collect how it ended, without waiting forever if it hangs.
public final class BackgroundOperation<Value: Sendable>: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var outcome: Result<Value, any Error>?

    public init(_ body: @escaping @Sendable () throws -> Value) {
        Thread { [self] in
            let result = Result { try body() }
            lock.withLock { outcome = result }
            finished.signal()
        }.start()
    }

    public var isFinished: Bool { lock.withLock { outcome != nil } }

    /// How the operation ended, or nil if it still runs after `seconds`.
    public func wait(seconds: Double) -> Result<Value, any Error>? {
        guard finished.wait(timeout: .now() + seconds) == .success else { return nil }
        finished.signal()  // later waits return at once
        return lock.withLock { outcome }
    }
}
