import ArcaFormat
import Foundation

public struct SyncResult: Codable, Sendable {
    public var location: String
    /// `upload` (local backups the bucket lacks) or `download` (the reverse).
    public var direction: String
    public var copied: [String]
    public var bytes: UInt64
    /// Backups that could not be copied, with the reason; the rest went on.
    public var failed: [String: String]
}

/// `arca sync`: makes the bucket hold every local backup (or, downloading,
/// the repository every cloud backup). Each copy is complete or absent:
/// uploads are aborted on failure, downloads checked before they appear.
public struct CloudSync: Sendable {
    public let repository: Repository
    public let cloud: CloudStore
    /// With a key, a download must be an archive made with it: unencrypted
    /// ones are refused unless allowed, and an encrypted one must open with
    /// the key (its manifest authenticates) before it is copied.
    public var key: ArchiveKey?
    public var allowUnencrypted = false
    /// Whose backups are copied: another database's are neither uploaded
    /// nor downloaded (the bucket may be shared).
    public var source = SourceScope.everySource

    public init(repository: Repository, cloud: CloudStore) {
        self.repository = repository
        self.cloud = cloud
    }

    /// Archive by archive, the progress counts archives (as tables) and their bytes.
    public func upload(progress: @escaping (OperationProgress) -> Void = { _ in }) throws -> SyncResult {
        let reporter = ProgressReporter(.upload, report: progress)
        let uploaded = Set(try inScope(cloud).map(\.id))
        let missing = try inScope(repository).filter { !uploaded.contains($0.id) }.reversed()
        reporter.estimate(tables: missing.count, bytes: missing.lazy.map(\.bytes).checkedSum)
        var result = SyncResult(location: cloud.place, direction: "upload", copied: [], bytes: 0, failed: [:])
        // Oldest first, so an incremental backup's base is in the bucket before it.
        var available = uploaded
        for archive in missing {
            let path = repository.archivePath(archive.id)
            // A shared lock, as a restore holds: cleanup leaves the archive alone meanwhile.
            guard let lock = try repository.lockForReading(path) else { continue }
            defer { lock.release() }
            reporter.phase("uploading \(archive.id)")
            do {
                if let absent = try CloudStore.neededBackups(ofArchiveAt: path, key: key).first(where: { !available.contains($0) }) {
                    throw BaseMissing(backup: archive.id.rawValue, base: absent.rawValue, place: "the bucket (its upload failed, or the repository does not hold it)")
                }
                try cloud.upload(archiveAt: path, id: archive.id) { bytes in
                    reporter.count(bytes: bytes)
                    reporter.send()
                }
                result.copied.append(archive.id.rawValue)
                available.insert(archive.id)
                result.bytes = [result.bytes, archive.bytes].checkedSum ?? .max
            } catch {
                result.failed[archive.id.rawValue] = "\(error)"
            }
            reporter.count(bytes: 0, tableFinished: true)
            reporter.send(final: true)
        }
        reporter.finish()
        return result
    }

    public func download(progress: @escaping (OperationProgress) -> Void = { _ in }) throws -> SyncResult {
        try download(reporter: ProgressReporter(.download, report: progress))
    }

    private func download(reporter: ProgressReporter) throws -> SyncResult {
        let lock = try repository.lockForWriting("sync")
        defer { lock.release() }
        let local = Set(try repository.backupIDs())
        let missing = try inScope(cloud).filter { !local.contains($0.id) }.reversed()
        reporter.estimate(tables: missing.count, bytes: missing.lazy.map(\.bytes).checkedSum)
        var result = SyncResult(location: cloud.place, direction: "download", copied: [], bytes: 0, failed: [:])
        defer { reporter.finish() }
        for archive in missing {
            reporter.phase("downloading \(archive.id)")
            defer { reporter.count(bytes: archive.bytes, tableFinished: true) }
            do {
                if let key {
                    _ = try ArchiveTrust.reader(
                        of: try cloud.source(archive.id, sequential: false), archive: cloud.describe(archive.id), key: key, allowUnencrypted: allowUnencrypted)
                }
                _ = try cloud.download(archive.id, into: repository)
                result.copied.append(archive.id.rawValue)
                result.bytes = [result.bytes, archive.bytes].checkedSum ?? .max
            } catch {
                result.failed[archive.id.rawValue] = "\(error)"
            }
        }
        return result
    }
}

extension CloudSync {
    /// The archives of `store` that `source` includes, newest first (every
    /// one, without reading a manifest, when it includes every source).
    private func inScope(_ store: any ArchiveStore) throws -> [StoredArchive] {
        guard source != .everySource else { return try store.archives() }
        return try store.listings(key: key, records: repository).filter(source.includes).compactMap { listing in
            BackupID(listing.id).map { StoredArchive(id: $0, bytes: listing.bytes) }
        }
    }
}

extension CloudStore {
    /// The backups an archive's referenced tables are stored in (an
    /// incremental backup's, FORMAT.md "Incremental backups"); empty for a
    /// full backup, and when its manifest cannot be read with `key` (it
    /// cannot be restored from here either).
    static func neededBackups(ofArchiveAt path: String, key: ArchiveKey?) throws -> [BackupID] {
        guard let reader = try? ArchiveReader(source: try FileSource(path: path), key: key) else { return [] }
        return reader.manifest.referencedBackups.compactMap(BackupID.init)
    }

    /// Uploads from `repository` each of `needed` that the bucket lacks: an
    /// incremental backup's cloud copy is restorable only with them.
    func uploadMissing(_ needed: [BackupID], from repository: Repository, for id: BackupID) throws {
        for base in needed where try stat(base) == nil {
            let path = repository.archivePath(base)
            guard FileSystem.exists(path) else {
                throw BaseMissing(backup: id.rawValue, base: base.rawValue, place: "both the bucket and the repository")
            }
            guard let lock = try repository.lockForReading(path) else { throw OperationError.inUse(base.rawValue) }
            defer { lock.release() }
            try upload(archiveAt: path, id: base)
        }
    }
}

/// An incremental backup is copied to a store only after the backups it needs.
struct BaseMissing: Error, CustomStringConvertible {
    var backup: String
    var base: String
    var place: String

    var description: String {
        "Backup \(backup) is incremental on backup \(base), which \(place) lacks; a copy of \(backup) without it could not be restored, so it was not copied."
    }
}
