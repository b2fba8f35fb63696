import ArcaEngine
import ArcaPostgres

/// What a restore call chooses: the backup, the target and the mode
/// (`request.create`, … read through to `choices`).
@dynamicMemberLookup
public struct RestoreRequest: Sendable {
    /// A backup id or an archive path.
    public var backup: String
    /// Read the archive from the bucket even when a local copy exists.
    public var fromCloud = false
    /// nil: `DATABASE_URL`.
    public var target: ConnectionString?
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
        return try trail("restore").run(target: request.backup, details: ["database": target.redacted], summary: { (result: RestoreResult) in
            AuditSummary(
                target: result.backupId,
                details: ["mode": result.mode, "tables": String(result.restoredTables.count), "rows": String(result.rows)])
        }) {
            var options = RestoreOptions(archive: try locate(request.backup, fromCloud: request.fromCloud), target: target)
            options.choices = request.choices
            options.key = configuration.encryptionKey
            options.cloud = configuration.cloud
            options.postgresBinDirectory = configuration.postgresBinDirectory
            return try RestoreRunner(options: options).run(progress: progress)
        }
    }
}
