import ArcaEngine

extension Operations {
    public enum SyncDirection: String, Sendable {
        /// Local backups the bucket lacks go up.
        case upload
        /// Cloud backups the repository lacks come down, checked first.
        case download
    }

    /// Copies between the repository and the bucket. A copy that fails is
    /// reported in the result (the others go on) and audited as a failure.
    public func sync(_ direction: SyncDirection, allowUnencrypted: Bool = false, progress: @escaping (OperationProgress) -> Void = { _ in }) throws -> SyncResult {
        try trail("sync").run(details: ["direction": direction.rawValue], summary: { (result: SyncResult) in
            AuditSummary(
                details: ["copied": String(result.copied.count), "location": result.location],
                outcome: result.failed.isEmpty ? .success : .failure,
                error: result.failed.sorted { $0.key < $1.key }.first.map { "\($0.key): \($0.value)" })
        }) {
            guard let cloud = configuration.cloud else {
                throw OperationError.invalidConfiguration("No bucket is configured: set AWS_S3_BUCKET and the AWS_* credentials.")
            }
            var sync = CloudSync(repository: repository, cloud: cloud)
            sync.key = configuration.encryptionKey
            sync.allowUnencrypted = allowUnencrypted
            sync.source = sourceScope()
            switch direction {
            case .upload: return try sync.upload(progress: progress)
            case .download: return try sync.download(progress: progress)
            }
        }
    }
}
