import ArcaFormat
import Foundation

/// An archive to read: a file (in the repository or anywhere), or an object
/// in the bucket. Verify, inspect and restore work the same on both.
public enum ArchiveReference: Sendable, CustomStringConvertible {
    case file(String)
    case cloud(CloudStore, BackupID)

    /// `reference` (a backup id or a path) in the repository; an id that is
    /// not there is looked up in the bucket, and `preferCloud` looks there
    /// first.
    public static func locate(_ reference: String, repository: Repository, cloud: CloudStore?, preferCloud: Bool = false) throws -> ArchiveReference {
        if preferCloud {
            guard let cloud else {
                throw OperationError.invalidConfiguration("--cloud needs a bucket: set AWS_S3_BUCKET and the AWS_* credentials.")
            }
            guard let id = BackupID(reference) else { throw RepositoryError.invalidReference(reference) }
            return .cloud(cloud, id)
        }
        do {
            return .file(try repository.locate(reference))
        } catch RepositoryError.backupNotFound(let name, let root) {
            guard let cloud, let id = BackupID(reference) else { throw RepositoryError.backupNotFound(name, repository: root) }
            guard try cloud.contains(id) else {
                throw RepositoryError.backupNotFound(reference, repository: "\(root) or \(cloud.location)")
            }
            return .cloud(cloud, id)
        }
    }

    /// Opens it for reading; `sequential` readers (verify, restore) get
    /// large ranged GETs from the bucket, others (inspect, list) small ones.
    public func open(sequential: Bool) throws -> any ByteSource {
        switch self {
        case .file(let path): try FileSource(path: path)
        case .cloud(let store, let id): try store.source(id, readAhead: sequential ? 8 << 20 : 0)
        }
    }

    /// The MD5 its sidecar records, nil without one.
    func recordedMD5() throws -> String? {
        switch self {
        case .file(let path):
            try FileSystem.readSmallFile(Repository.checksumPath(ofArchive: path), limit: Repository.sidecarSizeLimit).map(Repository.recordedMD5(inSidecar:))
        case .cloud(let store, let id):
            try store.recordedMD5(id)
        }
    }

    public var description: String {
        switch self {
        case .file(let path): path
        case .cloud(let store, let id): store.describe(id)
        }
    }
}
