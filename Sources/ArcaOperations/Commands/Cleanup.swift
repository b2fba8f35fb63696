import ArcaEngine

/// What a cleanup call may choose beyond the configured retention.
public struct CleanupRequest: Sendable {
    public var dryRun = false
    /// Replaces the retention days of both the local and the cloud policy.
    public var retentionDays: Int?
    public var keepLast = 0
    public var keepDaily = 0
    public var keepWeekly = 0
    public var keepMonthly = 0

    public init() {}

    /// `configured` with this call's days and keep rules.
    func policy(_ configured: RetentionPolicy) -> RetentionPolicy {
        RetentionPolicy(
            retentionDays: retentionDays ?? configured.retentionDays, keepLast: keepLast, keepDaily: keepDaily,
            keepWeekly: keepWeekly, keepMonthly: keepMonthly)
    }
}

extension Operations {
    /// Applies the retention policy to the repository and, under its own
    /// days (`ARCA_CLOUD_RETENTION_DAYS`), to the bucket.
    public func cleanup(_ request: CleanupRequest = CleanupRequest()) throws -> CleanupResult {
        try trail("cleanup").run(details: ["trigger": requester.trigger.rawValue, "dryRun": String(request.dryRun)], summary: { (result: CleanupResult) in
            AuditSummary(details: ["removed": String(result.removedCount), "freedBytes": String(result.freedBytes)])
        }) {
            let scope = sourceScope()
            var targets: [(store: any ArchiveStore, policy: RetentionPolicy)] = [(repository, request.policy(configuration.retention))]
            var notes: [String] = []
            if let cloud = configuration.cloud {
                // A bucket may be shared: without knowing whose backups are
                // ours, none of its backups is removed.
                if scope.identity == nil {
                    notes.append("The backups in \(cloud.place) were left alone: which of them are this database's is unknown (\(configuration.database == nil ? "DATABASE_URL is not set" : "the database cannot be reached and the repository holds no readable backup of it")). Set DATABASE_URL to the backed-up database.")
                } else {
                    targets.append((cloud, request.policy(configuration.cloudRetention)))
                }
            }
            var cleanup = Cleanup(repository: repository, targets: targets)
            cleanup.dryRun = request.dryRun
            cleanup.key = configuration.encryptionKey
            cleanup.staleWriteHours = configuration.staleUploadHours
            cleanup.source = scope
            var result = try cleanup.run()
            result.notes += notes
            return result
        }
    }
}
