import ArcaEngine
import ArcaFormat
import Foundation

/// Backups started through the API: their state while they run and after,
/// for `GET /api/backup/{id}` and the metrics. Bounded to the last 100.
actor BackupJobs {
    struct Job: Sendable {
        var id: String
        var status: String  // running, completed, failed
        var startedAt: String
        var tablesDone = 0
        var tablesTotal = 0
        var rawBytes: UInt64 = 0
        var result: BackupResult?
        var error: String?
    }

    private var jobs: [String: Job] = [:]
    private var order: [String] = []

    func started(_ id: String) {
        jobs[id] = Job(id: id, status: "running", startedAt: Manifest.timestamp(Date()))
        order.append(id)
        if order.count > 100 { jobs[order.removeFirst()] = nil }
    }

    func progress(_ id: String, _ progress: BackupProgress) {
        jobs[id]?.tablesDone = progress.tablesDone
        jobs[id]?.tablesTotal = progress.tablesTotal
        jobs[id]?.rawBytes = progress.rawBytes
    }

    func finished(_ id: String, _ result: Result<BackupResult, any Error>) {
        switch result {
        case .success(let value):
            jobs[id]?.status = "completed"
            jobs[id]?.result = value
        case .failure(let error):
            jobs[id]?.status = "failed"
            jobs[id]?.error = "\(error)"
        }
    }

    func job(_ id: String) -> Job? { jobs[id] }
    var running: Int { jobs.values.filter { $0.status == "running" }.count }
}
