import Foundation

// The bridges between Arca's two worlds: the engine is synchronous (threads,
// libpq, files), the S3 client and the HTTP server are asynchronous. Every
// crossing goes through one of these two functions.

/// Runs blocking work (libpq, file I/O, an engine operation) on a thread of
/// its own and awaits it, so that neither the server's event loops nor
/// Swift's cooperative pool ever wait on it.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Runs async work from a synchronous engine thread and waits for it.
///
/// The work runs on `StorageExecutor`, not on Swift's cooperative pool: a
/// caller that blocks one of the pool's few threads (a test, a scheduler
/// running inside a task) can then never starve the work it waits for.
public func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task.detached(executorPreference: StorageExecutor.shared) {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

/// Carries a result from the task to the waiting thread; the semaphore
/// orders the write before the read.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// A task executor over a concurrent dispatch queue, whose threads are not
/// the cooperative pool's. Child tasks (parallel upload parts) inherit it.
final class StorageExecutor: TaskExecutor {
    static let shared = StorageExecutor()
    private let queue = DispatchQueue(label: "arca.storage", attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}
