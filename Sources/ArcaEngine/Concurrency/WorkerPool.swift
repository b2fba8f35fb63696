import Foundation

/// Runs items on `jobs` threads, each thread with its own worker state (a
/// connection, a decoder), stopping at the first failure: the failing thread
/// records it, the others finish the item in hand and take no more. The
/// calling thread waits, calling `progress` about every 200 ms.
enum WorkerPool {
    static func run<Worker>(
        jobs: Int, items: Int,
        makeWorker: @escaping @Sendable () throws -> Worker,
        perform: @escaping @Sendable (Worker, Int) throws -> Void,
        finishWorker: @escaping @Sendable (Worker) -> Void = { _ in },
        progress: () -> Void = {}
    ) throws {
        let state = State(items: items)
        let group = DispatchGroup()
        for _ in 0..<max(1, min(jobs, items)) {
            group.enter()
            Thread {
                defer { group.leave() }
                let worker: Worker
                do {
                    worker = try makeWorker()
                } catch {
                    state.fail(error)
                    return
                }
                while let item = state.take() {
                    do {
                        try perform(worker, item)
                        state.done()
                    } catch {
                        state.fail(error)
                        break
                    }
                }
                finishWorker(worker)
            }.start()
        }
        while group.wait(timeout: .now() + .milliseconds(200)) == .timedOut { progress() }
        progress()
        if let failure = state.failure { throw failure }
    }

    final class State: @unchecked Sendable {
        private let lock = NSLock()
        private let items: Int
        private var next = 0
        private(set) var completed = 0
        private var error: (any Error)?

        init(items: Int) { self.items = items }

        var failure: (any Error)? {
            lock.lock()
            defer { lock.unlock() }
            return error
        }

        func take() -> Int? {
            lock.lock()
            defer { lock.unlock() }
            guard error == nil, next < items else { return nil }
            next += 1
            return next - 1
        }

        func done() {
            lock.lock()
            completed += 1
            lock.unlock()
        }

        func fail(_ failure: any Error) {
            lock.lock()
            if error == nil { error = failure }
            lock.unlock()
        }
    }
}

/// A throwing body run on its own thread, started at once; `wait` returns
/// its value or rethrows its error.
final class BackgroundWork<Value>: @unchecked Sendable {
    private var result: Result<Value, any Error>?
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () throws -> Value) {
        Thread { [self] in
            result = Result { try body() }
            done.signal()
        }.start()
    }

    /// Waits for the body; later calls return at once. Call from one thread.
    func wait() throws -> Value {
        if !waited {
            done.wait()
            waited = true
        }
        return try result!.get()
    }

    private var waited = false
}
