import ArcaEngine

/// What a verify call chooses.
public struct VerifyRequest: Sendable {
    /// A backup id or an archive path.
    public var backup: String
    public var fromCloud = false
    /// Check an encrypted archive's stored bytes only, without the key.
    public var withoutKey = false
    public var allowUnencrypted = false

    public init(backup: String) { self.backup = backup }
}

extension Operations {
    /// Reads the archive once and checks everything; a damaged archive is
    /// a result (`intact` false, audited as a failure), not an error.
    public func verify(_ request: VerifyRequest, progress: @escaping (OperationProgress) -> Void = { _ in }) throws -> VerifyResult {
        try trail("verify").run(target: request.backup, summary: { (result: VerifyResult) in
            AuditSummary(
                target: result.backupId, details: ["chunks": String(result.chunks), "sidecar": result.sidecar],
                outcome: result.intact ? .success : .failure, error: result.problems.first)
        }) {
            var verification = Verification(
                archive: try locate(request.backup, fromCloud: request.fromCloud), repository: repository,
                key: request.withoutKey ? nil : configuration.encryptionKey)
            verification.storedBytesOnly = request.withoutKey
            verification.allowUnencrypted = request.allowUnencrypted
            verification.cloud = configuration.cloud
            return try verification.run(progress: progress)
        }
    }
}
