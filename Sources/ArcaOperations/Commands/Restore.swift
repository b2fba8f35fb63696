import ArcaEngine
import ArcaPostgres

/// What a restore call chooses: the backup, the target and the mode
/// (`request.create`, … read through to `choices`).
@dynamicMemberLookup
public struct RestoreRequest: Sendable {
    /// A backup id or an archive path; ignored with `pointInTime`.
    public var backup: String
    /// Restore the database as it was at this instant (or LSN): the newest
    /// anchored backup before it, and the change stream up to it.
    public var pointInTime: ReplayTarget?
    /// Read the archive from the bucket even when a local copy exists.
    public var fromCloud = false
    /// nil: `DATABASE_URL`.
    public var target: ConnectionString?
    /// Restore a backup of another database than the configured one.
    public var allowOtherSource = false
    public var choices = RestoreChoices()

    public init(backup: String) { self.backup = backup }

    public subscript<Value>(dynamicMember choice: WritableKeyPath<RestoreChoices, Value>) -> Value {
        get { choices[keyPath: choice] }
        set { choices[keyPath: choice] = newValue }
    }
}

extension Operations {
    public func restore(_ request: RestoreRequest, progress: @escaping (OperationProgress) -> Void = { _ in }) throws -> RestoreResult {
        guard let target = request.target ?? configuration.database else {
            throw OperationError.invalidConfiguration("No target database: set DATABASE_URL or pass --target-url.")
        }
        var details = ["database": target.redacted]
        if let point = request.pointInTime { details["pointInTime"] = point.description }
        return try trail("restore").run(target: request.pointInTime == nil ? request.backup : "point in time", details: details, summary: { (result: RestoreResult) in
            AuditSummary(
                target: result.backupId,
                details: ["mode": result.mode, "tables": String(result.restoredTables.count), "rows": String(result.rows)]
                    .merging(result.replayedTransactions.map { ["replayedTransactions": String($0)] } ?? [:]) { $1 })
        }) {
            var options: RestoreOptions
            if let point = request.pointInTime {
                if request.fromCloud {
                    throw OperationError.invalidConfiguration("A point-in-time restore reads the repository's backups and change segments; --cloud cannot be combined with it.")
                }
                let filter = request.tables.include.isEmpty && request.tables.exclude.isEmpty ? nil : request.tables
                let plan = try PointInTime.plan(repository: repository, target: point, key: configuration.encryptionKey, tables: filter)
                options = RestoreOptions(archive: .file(plan.archivePath), target: target)
                options.replay = plan
            } else {
                options = RestoreOptions(archive: try locate(request.backup, fromCloud: request.fromCloud), target: target)
            }
            try checkSource(of: options.archive, allowed: request.allowOtherSource, action: "restore")
            options.choices = request.choices
            options.key = configuration.encryptionKey
            options.cloud = configuration.cloud
            options.postgresBinDirectory = configuration.postgresBinDirectory
            return try RestoreRunner(options: options).run(progress: progress)
        }
    }
}
