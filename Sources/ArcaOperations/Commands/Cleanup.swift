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
            var targets: [(store: any ArchiveStore, policy: RetentionPolicy)] = [(repository, request.policy(configuration.retention))]
            if let cloud = configuration.cloud { targets.append((cloud, request.policy(configuration.cloudRetention))) }
            var cleanup = Cleanup(repository: repository, targets: targets)
            cleanup.dryRun = request.dryRun
            cleanup.key = configuration.encryptionKey
            cleanup.staleWriteHours = configuration.staleUploadHours
            return try cleanup.run()
        }
    }
}
