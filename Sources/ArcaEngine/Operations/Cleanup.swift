import ArcaFormat
import Foundation

public struct CleanupResult: Codable, Sendable {
    public var dryRun: Bool
    public var policy: RetentionPolicy
    /// Removed (or, in a dry run, to be removed) backups.
    public var removed: [String]
    /// Backups the policy would remove but a restore is reading: left alone.
    public var inUse: [String]
    public var kept: [RetentionPolicy.Decision]
    public var freedBytes: UInt64
    /// The same for the cloud copies, under their own policy.
    public var cloud: CloudCleanup?

    public struct CloudCleanup: Codable, Sendable {
        public var location: String
        public var policy: RetentionPolicy
        public var removed: [String]
        public var kept: [RetentionPolicy.Decision]
        public var freedBytes: UInt64
    }
}

/// Applies a retention policy to the repository's local archives: each
/// removed backup goes with its sidecars. Holds the repository lock (one
/// writer at a time) and skips any archive a restore is reading.
public struct Cleanup: Sendable {
    public let repository: Repository
    public let policy: RetentionPolicy
    public var dryRun = false
    /// Also apply a policy to the bucket's copies.
    public var cloud: (store: CloudStore, policy: RetentionPolicy)?

    public init(repository: Repository, policy: RetentionPolicy) {
        self.repository = repository
        self.policy = policy
    }

    public func run(now: Date = Date()) throws -> CleanupResult {
        let lock = dryRun ? nil : try repository.lockForWriting("cleanup")
        defer { lock?.release() }
        let candidates = try repository.backupIDs().map { id in
            RetentionPolicy.Candidate(id: id, verified: repository.verificationRecord(id)?.intact == true)
        }
        let decisions = policy.decide(candidates, now: now)
        var result = CleanupResult(dryRun: dryRun, policy: policy, removed: [], inUse: [], kept: decisions.filter(\.keep), freedBytes: 0)
        for decision in decisions where !decision.keep {
            guard let id = BackupID(decision.id) else { continue }
            let archive = repository.archivePath(id)
            let files = [archive, Repository.checksumPath(ofArchive: archive), repository.verificationPath(id)]
            let size = files.compactMap(FileSystem.size).checkedSum ?? .max
            if dryRun {
                result.removed.append(decision.id)
                result.freedBytes += size
                continue
            }
            // A restore holds a shared lock on the archive it reads.
            guard let exclusive = try FileLock(path: archive, mode: .exclusive, create: false) else {
                result.inUse.append(decision.id)
                continue
            }
            for file in files { FileSystem.remove(file) }
            exclusive.release()
            result.removed.append(decision.id)
            result.freedBytes += size
        }
        if !result.removed.isEmpty, !dryRun { try FileSystem.syncDirectory(repository.localDirectory) }
        if let cloud { result.cloud = try cleanCloud(cloud.store, policy: cloud.policy, now: now) }
        return result
    }

    /// The bucket's copies count as verified when their local twin is: the
    /// newest verified backup is kept in both places.
    private func cleanCloud(_ store: CloudStore, policy: RetentionPolicy, now: Date) throws -> CleanupResult.CloudCleanup {
        let archives = try store.archives()
        let candidates = archives.map { RetentionPolicy.Candidate(id: $0.id, verified: repository.verificationRecord($0.id)?.intact == true) }
        let decisions = policy.decide(candidates, now: now)
        var result = CleanupResult.CloudCleanup(location: store.location, policy: policy, removed: [], kept: decisions.filter(\.keep), freedBytes: 0)
        let sizes = Dictionary(archives.map { ($0.id.rawValue, $0.size) }, uniquingKeysWith: { first, _ in first })
        for decision in decisions where !decision.keep {
            guard let id = BackupID(decision.id) else { continue }
            if !dryRun { try store.remove(id) }
            result.removed.append(decision.id)
            result.freedBytes += sizes[decision.id] ?? 0
        }
        return result
    }
}

extension Repository {
    /// Removes one backup (archive and sidecars) under the repository lock,
    /// unless a restore is reading it.
    public func remove(_ id: BackupID) throws -> UInt64 {
        let lock = try lockForWriting("delete")
        defer { lock.release() }
        let archive = archivePath(id)
        guard FileSystem.exists(archive) else { throw RepositoryError.backupNotFound(id.rawValue, repository: root) }
        guard let exclusive = try FileLock(path: archive, mode: .exclusive, create: false) else {
            throw OperationError.invalidConfiguration("Backup \(id) is being read by a restore; it was not removed.")
        }
        defer { exclusive.release() }
        let files = [archive, Repository.checksumPath(ofArchive: archive), verificationPath(id)]
        let size = files.compactMap(FileSystem.size).checkedSum ?? .max
        for file in files { FileSystem.remove(file) }
        try FileSystem.syncDirectory(localDirectory)
        return size
    }
}
