import ArcaEngine
import ArcaFormat
import Foundation

/// Backups started through the API: their state while they run and after,
/// for `GET /api/backup/{id}` and the metrics. Bounded to the last 100.
///
/// A lock, not an actor: the backup's own thread reports to it as it goes,
/// and must not wait on the server's tasks to do so.
final class BackupJobs: @unchecked Sendable {
    enum Status: String, Codable, Sendable {
        case running
        case completed
        case failed
    }

    struct Job: Sendable {
        var id: String
        var status: Status
        var startedAt: String
        /// The latest report of the running backup.
        var progress: OperationProgress?
        var result: BackupResult?
        var error: String?
    }

    private struct State {
        var jobs: [String: Job] = [:]
        var order: [String] = []
    }

    private let lock = NSLock()
    private var current = State()

    private func withState<T>(_ body: (inout State) -> T) -> T {
        lock.withLock { body(&current) }
    }

    func started(_ id: String) {
        withState { state in
            state.jobs[id] = Job(id: id, status: .running, startedAt: Manifest.timestamp(Date()))
            state.order.append(id)
            if state.order.count > 100 { state.jobs[state.order.removeFirst()] = nil }
        }
    }

    func progress(_ id: String, _ progress: OperationProgress) {
        withState { $0.jobs[id]?.progress = progress }
    }

    func finished(_ id: String, _ result: Result<BackupResult, any Error>) {
        withState { state in
            switch result {
            case .success(let value):
                state.jobs[id]?.status = .completed
                state.jobs[id]?.result = value
            case .failure(let error):
                state.jobs[id]?.status = .failed
                state.jobs[id]?.error = "\(error)"
            }
        }
    }

    func job(_ id: String) -> Job? { withState { $0.jobs[id] } }
    var running: [Job] { withState { $0.jobs.values.filter { $0.status == .running }.sorted { $0.startedAt < $1.startedAt } } }
}
