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

    public init(repository: Repository, cloud: CloudStore) {
        self.repository = repository
        self.cloud = cloud
    }

    public func upload(progress: (String) -> Void = { _ in }) throws -> SyncResult {
        let uploaded = Set(try cloud.backupIDs())
        var result = SyncResult(location: cloud.place, direction: "upload", copied: [], bytes: 0, failed: [:])
        for id in try repository.backupIDs().reversed() where !uploaded.contains(id) {
            let path = repository.archivePath(id)
            // A shared lock, as a restore holds: cleanup leaves the archive alone meanwhile.
            guard let lock = try repository.lockForReading(path) else { continue }
            defer { lock.release() }
            progress(id.rawValue)
            do {
                try cloud.upload(archiveAt: path, id: id)
                result.copied.append(id.rawValue)
                result.bytes += FileSystem.size(path) ?? 0
            } catch {
                result.failed[id.rawValue] = "\(error)"
            }
        }
        return result
    }

    public func download(progress: (String) -> Void = { _ in }) throws -> SyncResult {
        let lock = try repository.lockForWriting("sync")
        defer { lock.release() }
        let local = Set(try repository.backupIDs())
        var result = SyncResult(location: cloud.place, direction: "download", copied: [], bytes: 0, failed: [:])
        for archive in try cloud.archives().reversed() where !local.contains(archive.id) {
            progress(archive.id.rawValue)
            do {
                if let key {
                    _ = try ArchiveTrust.reader(
                        of: try cloud.source(archive.id), archive: cloud.describe(archive.id), key: key, allowUnencrypted: allowUnencrypted)
                }
                _ = try cloud.download(archive.id, into: repository)
                result.copied.append(archive.id.rawValue)
                result.bytes &+= archive.bytes
            } catch {
                result.failed[archive.id.rawValue] = "\(error)"
            }
        }
        return result
    }
}
