import ArcaFormat
import Foundation

public struct CleanupResult: Codable, Sendable {
    public var dryRun: Bool
    /// What the policy did in each store: the repository, then the bucket.
    public var stores: [StoreCleanup]

    public struct StoreCleanup: Codable, Sendable {
        public var location: StorageLocation
        public var place: String
        public var policy: RetentionPolicy
        /// Removed (or, in a dry run, to be removed) backups.
        public var removed: [String]
        /// Backups the policy would remove but a restore is reading: left alone.
        public var inUse: [String]
        public var kept: [RetentionPolicy.Decision]
        public var freedBytes: UInt64
        /// The store's unfinished writes (the bucket's interrupted multipart
        /// uploads): nil for a store without any (the repository removes
        /// its own leftovers in temp/ when the lock is taken).
        public var unfinishedWrites: UnfinishedWrites?
        /// Backups of other databases in the store (`Cleanup.source`): never
        /// candidates for removal. Nil when there are none.
        public var otherSources: Int?
    }

    /// What cleanup left alone and why (a store it could not judge).
    public var notes: [String] = []

    /// Change segments older than every kept backup's anchor: no restore
    /// can start before them. Removed from the repository (or, in a dry
    /// run, to be removed); segments in the bucket are left.
    public var removedSegments: [String] = []

    public var removedCount: Int { stores.reduce(0) { $0 + $1.removed.count } }
    public var freedBytes: UInt64 { stores.lazy.map(\.freedBytes).checkedSum ?? .max }
}

/// Applies a retention policy to each store (the repository, the bucket,
/// each under its own policy): each removed backup goes with its sidecars.
/// Holds the repository lock (one writer at a time) and skips any archive
/// a restore is reading. Backups are dated by their manifests, so `key`
/// opens encrypted ones; without it an encrypted backup is dated by its id.
public struct Cleanup: Sendable {
    public let repository: Repository
    public var targets: [(store: any ArchiveStore, policy: RetentionPolicy)]
    public var dryRun = false
    public var key: ArchiveKey?
    /// Unfinished writes older than this are aborted (`ARCA_STALE_UPLOAD_HOURS`).
    public var staleWriteHours = 24
    /// Whose backups the policy applies to; the others are not touched.
    public var source = SourceScope.everySource

    public init(repository: Repository, targets: [(store: any ArchiveStore, policy: RetentionPolicy)]) {
        self.repository = repository
        self.targets = targets
    }

    public func run(now: Date = Date()) throws -> CleanupResult {
        let lock = dryRun ? nil : try repository.lockForWriting("cleanup")
        defer { lock?.release() }
        var result = CleanupResult(dryRun: dryRun, stores: [])
        for (store, policy) in targets {
            // A cloud copy counts as verified when its local twin is: the
            // newest verified backup is kept in both places.
            let every = try store.listings(key: key, records: repository, now: now)
            let listings = every.filter(source.includes)
            // What a kept incremental backup needs is kept with it.
            let decisions = BackupDependencies(listings).protecting(
                policy.decide(listings.compactMap(RetentionPolicy.Candidate.init), now: now))
            let sizes = Dictionary(listings.map { ($0.id, $0.bytes) }, uniquingKeysWith: { first, _ in first })
            // Under the repository lock no backup of ours is writing: what is
            // unfinished was interrupted (or belongs to another host on the same prefix).
            var cleaned = CleanupResult.StoreCleanup(
                location: store.location, place: store.place, policy: policy, removed: [], inUse: [], kept: decisions.filter(\.keep),
                freedBytes: 0,
                unfinishedWrites: try store.unfinishedWrites(olderThanHours: staleWriteHours, now: now, aborting: !dryRun),
                otherSources: every.count == listings.count ? nil : every.count - listings.count)
            for decision in decisions where !decision.keep {
                guard let id = BackupID(decision.id) else { continue }
                if dryRun {
                    cleaned.freedBytes = [cleaned.freedBytes, sizes[decision.id] ?? 0].checkedSum ?? .max
                } else {
                    do {
                        cleaned.freedBytes = [cleaned.freedBytes, try store.remove(id)].checkedSum ?? .max
                    } catch OperationError.inUse {
                        cleaned.inUse.append(decision.id)
                        continue
                    }
                }
                cleaned.removed.append(decision.id)
            }
            result.stores.append(cleaned)
        }
        result.removedSegments = try pruneSegments()
        return result
    }

    /// Removes, per slot, the segments that end at or before the anchor of
    /// the oldest anchored backup left in the repository: replay starts at
    /// an anchor, so nothing reads them. A slot without an anchored backup
    /// keeps all its segments, and none is removed while a backup cannot
    /// be read (its anchor unknown).
    func pruneSegments() throws -> [String] {
        guard let anchored = try? PointInTime.anchoredBackups(repository, key: key, strict: true) else { return [] }
        var removed: [String] = []
        for slot in ChangeLog.slots(in: repository) {
            guard let oldest = anchored.filter({ $0.anchor.slot == slot }).map(\.anchor.lsn).min() else { continue }
            let log = ChangeLog(repository: repository, slot: slot)
            for id in try log.segments() where id.endLSN <= oldest {
                if !dryRun { FileSystem.remove(log.path(id)) }
                removed.append("\(slot)/\(id)")
            }
            if !dryRun, !removed.isEmpty { try FileSystem.syncDirectory(log.directory) }
        }
        return removed
    }
}

extension Repository {
    /// Removes one backup (archive and sidecars), unless a restore is
    /// reading it. The caller holds the repository lock (`lockForWriting`).
    public func remove(_ id: BackupID) throws -> UInt64 {
        let archive = archivePath(id)
        guard FileSystem.exists(archive) else { throw RepositoryError.backupNotFound(id.rawValue, repository: root) }
        // A restore holds a shared lock on the archive it reads.
        guard let exclusive = try FileLock(path: archive, mode: .exclusive, create: false) else {
            throw OperationError.inUse(id.rawValue)
        }
        defer { exclusive.release() }
        let files = [archive, Repository.checksumPath(ofArchive: archive), verificationPath(id)]
        let size = files.compactMap(FileSystem.size).checkedSum ?? .max
        for file in files { FileSystem.remove(file) }
        try FileSystem.syncDirectory(localDirectory)
        return size
    }
}
