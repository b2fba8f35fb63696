import ArcaFormat
import Foundation

/// Where finished archives are kept: the repository folder (`Repository`)
/// or a bucket (`CloudStore`). Listing, cleanup, status, sync, verify and
/// restore go through this one interface, so every caller sees every store
/// the same way (restic's backend, in spirit).
///
/// Both drivers block their calling thread.
public protocol ArchiveStore: Sendable {
    var location: StorageLocation { get }
    /// Where it is, for people: the folder, or `s3://bucket/prefix/`.
    var place: String { get }
    /// Every finished archive, newest id first.
    func archives() throws -> [StoredArchive]
    /// One archive, nil when the store does not hold it.
    func stat(_ id: BackupID) throws -> StoredArchive?
    /// Reads an archive by ranges; `sequential` readers (verify, restore)
    /// read ahead, others (list, inspect) read only what they ask for.
    func source(_ id: BackupID, sequential: Bool) throws -> any ByteSource
    /// The MD5 the archive's sidecar records, nil without a sidecar.
    func recordedMD5(_ id: BackupID) throws -> String?
    /// Removes an archive with its sidecars; returns the bytes freed. The
    /// caller holds the repository's write lock. Refuses
    /// (`OperationError.inUse`) an archive a restore is reading.
    func remove(_ id: BackupID) throws -> UInt64
    /// How a person names one archive of it.
    func describe(_ id: BackupID) -> String
    /// A streamed write of a new archive under a new id for `date` that the
    /// store does not hold (`BackupID`: time and a random part); it
    /// becomes visible only when published, complete. `staging` is a local
    /// folder (the repository's temp/) where a store that sends in parts
    /// keeps the parts in flight, so that memory does not hold them.
    func beginWrite(startedAt date: Date, staging: String) throws -> any ArchiveDestination
    /// The writes left unfinished (interrupted uploads), nil when the store
    /// keeps none. Those started more than `hours` ago (0: all) are stale;
    /// `aborting` aborts them, for which the caller holds the repository's
    /// write lock, so none belongs to a running backup of it.
    func unfinishedWrites(olderThanHours hours: Int, now: Date, aborting: Bool) throws -> UnfinishedWrites?
}

/// A store's unfinished writes: what cleanup aborts and status counts.
public struct UnfinishedWrites: Codable, Sendable, Equatable {
    /// The stale ones, by key: aborted, or (counting only, a dry run) to be aborted.
    public var aborted: [String]
    /// Unfinished writes left: younger ones.
    public var remaining: Int
    public var olderThanHours: Int

    public init(aborted: [String], remaining: Int, olderThanHours: Int) {
        self.aborted = aborted
        self.remaining = remaining
        self.olderThanHours = olderThanHours
    }
}

/// An archive a store holds.
public struct StoredArchive: Sendable, Equatable {
    public var id: BackupID
    public var bytes: UInt64

    public init(id: BackupID, bytes: UInt64) {
        self.id = id
        self.bytes = bytes
    }
}

extension Repository: ArchiveStore {
    public var location: StorageLocation { .local }
    public var place: String { root }

    public func archives() throws -> [StoredArchive] {
        try backupIDs().map { StoredArchive(id: $0, bytes: FileSystem.size(archivePath($0)) ?? 0) }
    }

    public func stat(_ id: BackupID) throws -> StoredArchive? {
        FileSystem.size(archivePath(id)).map { StoredArchive(id: id, bytes: $0) }
    }

    public func source(_ id: BackupID, sequential: Bool) throws -> any ByteSource {
        try FileSource(path: archivePath(id))
    }

    public func recordedMD5(_ id: BackupID) throws -> String? {
        try Self.recordedMD5(ofArchive: archivePath(id))
    }

    public func describe(_ id: BackupID) -> String { archivePath(id) }

    /// The temporary file is in temp/ already: `staging` is not needed.
    public func beginWrite(startedAt date: Date, staging: String) throws -> any ArchiveDestination {
        LocalDestination(repository: self, reservation: try reserve(startedAt: date))
    }

    /// None to report: taking the lock removes what a crashed writer left in temp/.
    public func unfinishedWrites(olderThanHours hours: Int, now: Date, aborting: Bool) throws -> UnfinishedWrites? { nil }

    /// The MD5 the sidecar of the archive at `path` records.
    static func recordedMD5(ofArchive path: String) throws -> String? {
        try FileSystem.readSmallFile(checksumPath(ofArchive: path), limit: sidecarSizeLimit).map(recordedMD5(inSidecar:))
    }
}

extension CloudStore: ArchiveStore {
    public var location: StorageLocation { .cloud }

    public func beginWrite(startedAt date: Date, staging: String) throws -> any ArchiveDestination {
        // One HEAD per candidate id, not a listing of the bucket; the
        // upload's conditional completion is what cannot race.
        for _ in 0..<8 {
            let id = BackupID(date: date)
            if try stat(id) == nil { return try CloudUpload(store: self, id: id, staging: staging) }
        }
        throw OperationError.noFreeID(place: place, date: date)
    }
}
