import ArcaFormat
import ArcaS3
import Foundation

/// Backups kept in an S3-compatible bucket, under the configured prefix:
///
///     <prefix><id>.arca        the archive, byte for byte the local file
///     <prefix><id>.arca.md5    its md5sum sidecar
///
/// The engine is synchronous (threads, libpq); this type is its bridge to
/// the asynchronous S3 client: every method blocks its calling thread, which
/// must not be one of Swift concurrency's cooperative threads.
public final class CloudStore: @unchecked Sendable {
    public let configuration: S3Configuration
    let client: S3Client
    private let counterLock = NSLock()
    private var downloaded: UInt64 = 0

    /// Bytes fetched by ranged GETs so far: what listing or a partial read cost.
    public var bytesDownloaded: UInt64 { counterLock.withLock { downloaded } }

    /// How far a GET reaches for a reader that goes on where its last read
    /// ended (verify, restore, download). It costs no memory: the bytes go
    /// from the socket into the reader's own buffers.
    static let sequentialReadAhead = 64 << 20

    /// `ARCA_UPLOAD_MAX_RATE`: every upload through this store (backups,
    /// streamed backups, change segments, sync) draws from this one bucket,
    /// a part at a time before it is sent (nil: unlimited).
    public let uploadLimiter: RateLimiter?

    public init(configuration: S3Configuration, retryPolicy: RetryPolicy = .default, uploadRate: ByteRate? = nil) {
        self.configuration = configuration
        client = .sharingProcessClient(configuration: configuration, retryPolicy: retryPolicy)
        uploadLimiter = uploadRate.map { RateLimiter(rate: $0) }
    }

    /// The bucket from `AWS_S3_BUCKET` and friends; nil when none is configured.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, uploadRate: ByteRate? = nil
    ) throws -> CloudStore? {
        do {
            return try S3Configuration.fromEnvironment(environment).map { CloudStore(configuration: $0, uploadRate: uploadRate) }
        } catch {
            throw OperationError.invalidConfiguration("\(error)")
        }
    }

    /// `s3://bucket/prefix/`, for messages and listings.
    public var place: String { "s3://\(configuration.bucket)/\(configuration.prefix)" }

    static func archiveKey(_ id: BackupID) -> String { "\(id).arca" }
    static func checksumKey(_ id: BackupID) -> String { "\(id).arca.md5" }

    public func describe(_ id: BackupID) -> String { place + Self.archiveKey(id) }

    // MARK: Listing

    /// The archives in the bucket with their sizes, newest first.
    public func archives() throws -> [StoredArchive] {
        try runBlocking { try await self.client.listObjects() }
            .compactMap { object in Self.archiveID(key: object.key).map { StoredArchive(id: $0, bytes: object.size) } }
            .sorted { $0.id > $1.id }
    }

    /// The backup whose archive is stored under `key`, nil for any other key.
    static func archiveID(key: String) -> BackupID? {
        key.hasSuffix(".arca") ? BackupID(String(key.dropLast(5))) : nil
    }

    /// Multipart uploads under the prefix that were neither completed nor
    /// aborted: what an interrupted upload would leave behind.
    public func unfinishedUploads() throws -> [String] {
        try runBlocking { try await self.client.listMultipartUploads() }.map(\.key)
    }

    /// The unfinished multipart uploads of archives (keys this repository's
    /// backups would have), which S3 would keep billing. One without a
    /// start time is stale only at 0 hours.
    public func unfinishedWrites(olderThanHours hours: Int, now: Date, aborting: Bool) throws -> UnfinishedWrites? {
        let cutoff = now.addingTimeInterval(-Double(hours) * 3600)
        var unfinished = UnfinishedWrites(aborted: [], remaining: 0, olderThanHours: hours)
        let uploads = try runBlocking { try await self.client.listMultipartUploads() }
            .filter { Self.archiveID(key: $0.key) != nil }
            .sorted { ($0.initiated ?? .distantFuture) < ($1.initiated ?? .distantFuture) }
        for upload in uploads {
            guard hours == 0 || (upload.initiated.map { $0 <= cutoff } ?? false) else {
                unfinished.remaining += 1
                continue
            }
            if aborting {
                try runBlocking { try await self.client.abortMultipartUpload(key: upload.key, uploadID: upload.uploadID) }
            }
            unfinished.aborted.append(upload.key)
        }
        return unfinished
    }

    // MARK: Reading

    /// The archive for reading by ranged GETs. `sequential` readers (verify,
    /// restore, download) get long GETs read as they go; others (listing,
    /// inspection) fetch what they ask for.
    public func source(_ id: BackupID, sequential: Bool) throws -> any ByteSource {
        guard let info = try runBlocking({ try await self.client.headObject(key: Self.archiveKey(id)) }) else {
            throw RepositoryError.backupNotFound(id.rawValue, repository: place)
        }
        return CloudSource(store: self, key: Self.archiveKey(id), size: info.size, readAhead: sequential ? Self.sequentialReadAhead : 0)
    }

    /// The sidecar's recorded MD5, nil when there is none.
    public func recordedMD5(_ id: BackupID) throws -> String? {
        do {
            return Repository.recordedMD5(inSidecar: try runBlocking { try await self.client.getObject(key: Self.checksumKey(id), limit: Repository.sidecarSizeLimit) })
        } catch S3Error.noSuchKey(_) {
            return nil
        }
    }

    func read(key: String, range: Range<UInt64>) throws -> [UInt8] {
        let bytes = try runBlocking { try await self.client.getObject(key: key, range: range) }
        countDownloaded(bytes.count)
        return bytes
    }

    func countDownloaded(_ count: Int) {
        counterLock.withLock { downloaded += UInt64(count) }
    }

    /// Creates the bucket if it does not exist (`arca init`, tests).
    public func createBucket() throws {
        try runBlocking { try await self.client.createBucket() }
    }

    // MARK: Writing

    /// Uploads a published local archive and then its sidecar, each part
    /// read from the file as it is sent (never a whole part in memory). An
    /// interrupted upload is aborted, so no partial object or orphaned upload
    /// remains. `progress` is told the bytes of each part once it is stored.
    public func upload(archiveAt path: String, id: BackupID, progress: @escaping @Sendable (UInt64) -> Void = { _ in }) throws {
        let source = try FileSource(path: path)
        // Parts of at least 8 MiB, larger for huge archives: S3 allows 10,000.
        let partSize = max(8 << 20, Int((source.size + 9_999) / 10_000))
        guard let sidecar = try FileSystem.readSmallFile(Repository.checksumPath(ofArchive: path), limit: Repository.sidecarSizeLimit) else {
            throw RepositoryError.backupNotFound(Repository.checksumPath(ofArchive: path), repository: (path as NSString).deletingLastPathComponent)
        }
        let md5 = Repository.recordedMD5(inSidecar: sidecar)
        // A store that ignores conditional writes still never has an object
        // replaced by a backup of ours: look first (ids are chosen so that
        // no other writer picks the same one, FORMAT.md `backupId`).
        if try stat(id) != nil {
            // The same bytes: uploaded already (an earlier run was interrupted after it).
            if try recordedMD5(id) == md5 { return }
            throw CloudError.idTaken(id: id.rawValue, localPath: path, location: place)
        }
        do {
            _ = try runBlocking {
                try await self.client.upload(
                    key: Self.archiveKey(id), source: source, partSize: partSize, partUploaded: { progress(UInt64($0)) }, pace: self.pace,
                    ifAbsent: true)
            }
        } catch S3Error.objectExists {
            throw CloudError.idTaken(id: id.rawValue, localPath: path, location: place)
        }
        try storeSidecar(Array(sidecar), of: id, localPath: path)
    }

    /// Stores an archive's sidecar, never replacing one: a sidecar already
    /// there must record the same MD5 (this very upload, retried).
    func storeSidecar(_ sidecar: [UInt8], of id: BackupID, localPath: String?) throws {
        do {
            _ = try runBlocking { try await self.client.putObject(key: Self.checksumKey(id), body: sidecar, ifAbsent: true) }
        } catch S3Error.objectExists {
            guard try recordedMD5(id) == Repository.recordedMD5(inSidecar: sidecar) else {
                throw CloudError.idTaken(id: id.rawValue, localPath: localPath, location: place)
            }
        }
    }

    /// Holds a part of `bytes` back as `uploadLimiter` says.
    func pace(_ bytes: Int) async throws {
        try await uploadLimiter?.take(bytes)
    }

    /// Where a change stream's segments live, beside the archives:
    /// `changes/<system identifier>_<database oid>/<slot>/`. Slot names are
    /// unique in one cluster only; services sharing a bucket stream into
    /// folders of their own.
    public static func segmentFolder(slot: String, source: SourceIdentity) -> String {
        "changes/\(source.systemIdentifier ?? "unknown")_\(source.databaseOid.map(String.init) ?? "unknown")/\(slot)/"
    }

    static let segmentPartSize = 8 << 20

    /// Uploads a finished change segment (streamed from the file, like an
    /// archive) into `folder`, never replacing an object: one already there
    /// must be this very segment (uploaded before a crash, sent again).
    public func upload(segmentAt path: String, id: SegmentID, folder: String) throws {
        let source = try FileSource(path: path)
        let key = "\(folder)\(id).arca"
        do {
            try runBlocking {
                _ = try await self.client.upload(
                    key: key, source: source, partSize: Self.segmentPartSize, pace: self.pace, ifAbsent: true)
            }
        } catch S3Error.objectExists(let context) {
            let stored = try runBlocking { try await self.client.headObject(key: key) }
            guard let stored, stored.etag == (try S3Client.expectedETag(of: source, partSize: Self.segmentPartSize)) else {
                throw S3Error.objectExists(context)
            }
        }
    }

    /// The change segments in `folder` in the bucket, in stream order.
    public func segments(folder prefix: String) throws -> [SegmentID] {
        return try runBlocking { try await self.client.listObjects(prefix: prefix) }.compactMap { object in
            guard object.key.hasPrefix(prefix), object.key.hasSuffix(".arca") else { return nil }
            return SegmentID(String(object.key.dropFirst(prefix.count).dropLast(5)))
        }.sorted()
    }

    /// Downloads an archive into the repository's `local/`, through a
    /// temporary file that is checked against the sidecar before it is
    /// published, so `local/` never holds a partial or damaged download.
    public func download(_ id: BackupID, into repository: Repository) throws -> String {
        try repository.prepare()
        let source = try source(id, sequential: true)
        let temporary = "\(repository.temporaryDirectory)/\(id).arca.download"
        FileSystem.remove(temporary)
        let sink = try FileSink(creatingExclusively: temporary)
        do {
            let md5 = Digest(.md5)
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            var offset: UInt64 = 0
            while offset < source.size {
                let count = Int(min(UInt64(buffer.count), source.size - offset))
                try buffer.withUnsafeMutableBytes { bytes in
                    let slice = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<count])
                    try source.read(at: offset, into: slice)
                    md5.update(UnsafeRawBufferPointer(slice))
                    try sink.write(UnsafeRawBufferPointer(slice))
                }
                offset += UInt64(count)
            }
            try sink.syncAndClose()
            let actual = Hex.encode(md5.finish())
            if let recorded = try recordedMD5(id), recorded != actual {
                throw CloudError.downloadMismatch(id: id.rawValue, recorded: recorded, actual: actual)
            }
            return try repository.publish(.init(id: id, temporaryPath: temporary, sink: sink), fileMD5: actual)
        } catch {
            FileSystem.remove(temporary)
            throw error
        }
    }

    /// Deletes an archive and its sidecar; returns the archive's size.
    public func remove(_ id: BackupID) throws -> UInt64 {
        let size = try stat(id)?.bytes ?? 0
        try runBlocking { try await self.client.deleteObjects(keys: [Self.archiveKey(id), Self.checksumKey(id)]) }
        return size
    }

    public func stat(_ id: BackupID) throws -> StoredArchive? {
        try runBlocking { try await self.client.headObject(key: Self.archiveKey(id)) }.map { StoredArchive(id: id, bytes: $0.size) }
    }
}

public enum CloudError: Error, Sendable, CustomStringConvertible {
    case downloadMismatch(id: String, recorded: String, actual: String)
    case uploadFailed(id: String, localPath: String?, location: String, underlying: String)
    /// A streamed upload whose sidecar could not be stored, and whose archive
    /// object could not be deleted again.
    case archiveLeftWithoutSidecar(id: String, object: String, underlying: String, removal: String)
    /// The bucket holds another object under the backup's id (a backup of
    /// another service written before ids had a random part): it was not
    /// replaced. `localPath` is the local copy kept, nil for `--upload-only`.
    case idTaken(id: String, localPath: String?, location: String)

    public var description: String {
        switch self {
        case .downloadMismatch(let id, let recorded, let actual):
            "The download of \(id) has MD5 \(actual), but its sidecar in the bucket records \(recorded): the object is damaged. Nothing was saved; verify the cloud copy (`arca verify --cloud \(id)`)."
        case .uploadFailed(let id, let localPath?, let location, let underlying):
            "Backup \(id) is complete at \(localPath), but its upload to \(location) failed: \(Self.sentence(underlying)) The local copy is intact; run `arca sync` to upload it once the bucket is reachable."
        case .uploadFailed(let id, nil, let location, let underlying):
            "The upload of backup \(id) to \(location) failed: \(Self.sentence(underlying)) No backup was kept (--upload-only); nothing partial is left in the bucket."
        case .idTaken(let id, let localPath?, let location):
            "The bucket \(location) already holds a different backup named \(id) (another host or database sharing the bucket stored it), so backup \(id) was not uploaded and nothing in the bucket was replaced. The local copy at \(localPath) is intact; keep it, or copy it to the bucket under another prefix (ARCA_S3_PREFIX)."
        case .idTaken(let id, nil, let location):
            "The bucket \(location) already holds a different backup named \(id), so the upload was refused and nothing in the bucket was replaced. No backup was kept (--upload-only); run it again: it gets a new id."
        case .archiveLeftWithoutSidecar(let id, let object, let underlying, let removal):
            "The upload of backup \(id) failed while storing its checksum sidecar: \(Self.sentence(underlying)) Deleting the uploaded archive failed too (\(removal)), so \(object) is in the bucket without its sidecar: delete that object with your S3 tools. No backup was kept (--upload-only)."
        }
    }

    public var isIDTaken: Bool {
        if case .idTaken = self { return true }
        return false
    }

    /// S3 errors read as clauses, without a full stop; this message goes on after them.
    private static func sentence(_ text: String) -> String {
        text.hasSuffix(".") ? text : text + "."
    }
}

/// An archive in a bucket, read by ranged GETs.
///
/// Small reads (header, trailer, a small manifest, listing) fetch a 64 KiB
/// window around them, and a few windows are kept. Larger reads go from the
/// socket straight into the caller's buffer: nothing of them is held here.
/// A read that starts where an earlier one ended continues that GET, or
/// opens one reaching `readAhead` bytes further, so a sequential reader
/// (verify, download) needs one GET per `readAhead` bytes, and a parallel
/// restore's readers each continue their own. A connection lost in the
/// middle of a GET is resumed where the bytes stopped, by the client's
/// retry policy. Thread-safe.
public final class CloudSource: ByteSource, @unchecked Sendable {
    public let size: UInt64
    private let store: CloudStore
    private let key: String
    private let readAhead: Int
    private let lock = NSLock()
    private var windows: [(range: Range<UInt64>, bytes: [UInt8])] = []
    /// Where earlier large reads ended, with their GET when it has bytes
    /// left; newest last. A reader takes its own out while it reads.
    private var continuations: [(position: UInt64, reader: S3ObjectReader?)] = []
    private static let cachedWindows = 4
    private static let keptContinuations = 4
    static let window = 64 << 10

    init(store: CloudStore, key: String, size: UInt64, readAhead: Int) {
        self.store = store
        self.key = key
        self.size = size
        self.readAhead = readAhead
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(buffer.count))
        guard !overflow, end <= size else {
            throw ArchiveError.truncated(what: "a read", offset: offset, needed: UInt64(buffer.count), fileSize: size)
        }
        guard buffer.count > 0 else { return }
        if copyFromWindow(offset: offset, into: buffer) { return }
        if buffer.count >= Self.window {
            try stream(at: offset, into: buffer)
            return
        }
        // A window containing the read; near the end it reaches back, so the
        // trailer's GET also brings the manifest before it.
        let start = min(offset, size >= UInt64(Self.window) ? size - UInt64(Self.window) : 0)
        let range = start..<min(size, start + UInt64(Self.window))
        let bytes = try store.read(key: key, range: range)
        lock.withLock {
            windows.append((range, bytes))
            if windows.count > Self.cachedWindows { windows.removeFirst() }
        }
        _ = copyFromWindow(offset: offset, into: buffer)
    }

    private func copyFromWindow(offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let end = offset + UInt64(buffer.count)
        guard let entry = windows.last(where: { $0.range.lowerBound <= offset && end <= $0.range.upperBound }) else { return false }
        let start = Int(offset - entry.range.lowerBound)
        entry.bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<start + buffer.count])) }
        return true
    }

    /// Reads into `buffer` from the GET that stands at `offset` (or a new
    /// one), straight from the socket.
    private func stream(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        let end = offset + UInt64(buffer.count)
        let earlier = lock.withLock { () -> (position: UInt64, reader: S3ObjectReader?)? in
            guard let index = continuations.lastIndex(where: { $0.position == offset }) else { return nil }
            return continuations.remove(at: index)
        }
        // Going on where a read ended is what a sequential reader does: reach further.
        let reach = earlier == nil ? 0 : UInt64(readAhead)
        var reader = earlier?.reader
        var position = offset
        var failures = 0
        while position < end {
            if reader == nil || reader!.position == reader!.end {
                let range = position..<min(size, max(end, position + reach))
                reader = try runBlocking { try await self.store.client.readObject(key: self.key, range: range) }
            }
            let open = reader!
            // A continued GET may end before this read does; the next one goes on.
            let count = Int(min(end, open.end) - position)
            let start = Int(position - offset)
            let target = Destination(buffer: UnsafeMutableRawBufferPointer(rebasing: buffer[start..<start + count]))
            do {
                try runBlocking { try await open.read(into: target.buffer) }
            } catch S3Error.unreachable(let context, let reason) {
                // The connection broke mid-answer: go on from the bytes that arrived.
                failures += 1
                reader = nil
                let policy = store.client.retryPolicy
                guard failures < policy.maxAttempts else { throw S3Error.unreachable(context, reason: reason) }
                Thread.sleep(forTimeInterval: policy.delay(afterAttempt: failures).seconds)
            }
            store.countDownloaded(Int(open.position - position))
            position = open.position
        }
        let unfinished = reader.flatMap { $0.position < $0.end ? $0 : nil }
        lock.withLock {
            continuations.append((end, unfinished))
            // Dropping a GET with bytes left closes its connection.
            if continuations.count > Self.keptContinuations { continuations.removeFirst() }
        }
    }

    /// The caller's buffer, handed to the task that fills it while the
    /// caller waits.
    private struct Destination: @unchecked Sendable {
        let buffer: UnsafeMutableRawBufferPointer
    }
}

extension FileSource: @unchecked Sendable {}

