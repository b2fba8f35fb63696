import ArcaFormat
import ArcaS3
import AsyncHTTPClient
import Foundation
import NIOCore

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

    /// Part size for uploads of a file of unknown length (`--upload-only`):
    /// 16 MiB parts allow archives up to 160 GB (S3 allows 10,000 parts).
    static let streamingPartSize = 16 << 20

    /// One HTTP client for the process, never shut down (like
    /// `HTTPClient.shared`), with the settings objects need: no
    /// decompression, and retries decided by the S3 client's policy alone.
    private static let httpClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(120))
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    public init(configuration: S3Configuration, retryPolicy: RetryPolicy = .default) {
        self.configuration = configuration
        client = S3Client(configuration: configuration, httpClient: Self.httpClient, retryPolicy: retryPolicy)
    }

    /// The bucket from `AWS_S3_BUCKET` and friends; nil when none is configured.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> CloudStore? {
        do {
            return try S3Configuration.fromEnvironment(environment).map { CloudStore(configuration: $0) }
        } catch {
            throw OperationError.invalidConfiguration("\(error)")
        }
    }

    /// `s3://bucket/prefix/`, for messages and listings.
    public var location: String { "s3://\(configuration.bucket)/\(configuration.prefix)" }

    static func archiveKey(_ id: BackupID) -> String { "\(id).arca" }
    static func checksumKey(_ id: BackupID) -> String { "\(id).arca.md5" }

    public func describe(_ id: BackupID) -> String { location + Self.archiveKey(id) }

    // MARK: Listing

    /// The archives in the bucket with their sizes, newest first.
    public func archives() throws -> [(id: BackupID, size: UInt64)] {
        try runBlocking { try await self.client.listObjects() }
            .compactMap { object in
                guard object.key.hasSuffix(".arca"), let id = BackupID(String(object.key.dropLast(5))) else { return nil }
                return (id, object.size)
            }
            .sorted { $0.id > $1.id }
    }

    public func backupIDs() throws -> [BackupID] { try archives().map(\.id) }

    /// Multipart uploads under the prefix that were neither completed nor
    /// aborted: what an interrupted upload would leave behind.
    public func unfinishedUploads() throws -> [String] {
        try runBlocking { try await self.client.listMultipartUploads() }.map(\.key)
    }

    // MARK: Reading

    /// The archive for reading by ranged GETs. `readAhead` sizes each GET
    /// for a sequential reader (verify, restore); 0 fetches what is asked,
    /// which is what listing and inspection need.
    public func source(_ id: BackupID, readAhead: Int = 0) throws -> CloudSource {
        guard let info = try runBlocking({ try await self.client.headObject(key: Self.archiveKey(id)) }) else {
            throw RepositoryError.backupNotFound(id.rawValue, repository: location)
        }
        return CloudSource(store: self, key: Self.archiveKey(id), size: info.size, readAhead: readAhead)
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
        counterLock.withLock { downloaded += UInt64(bytes.count) }
        return bytes
    }

    /// Creates the bucket if it does not exist (`arca init`, tests).
    public func createBucket() throws {
        try runBlocking { try await self.client.createBucket() }
    }

    // MARK: Writing

    /// Uploads a published local archive and then its sidecar, streaming the
    /// file in parts (never the whole archive in memory). An interrupted
    /// upload is aborted, so no partial object or orphaned upload remains.
    public func upload(archiveAt path: String, id: BackupID) throws {
        let source = try FileSource(path: path)
        // Parts of at least 8 MiB, larger for huge archives: S3 allows 10,000.
        let partSize = max(8 << 20, Int((source.size + 9_999) / 10_000))
        let sidecar = try Data(contentsOf: URL(fileURLWithPath: Repository.checksumPath(ofArchive: path)))
        try runBlocking {
            try await self.client.upload(key: Self.archiveKey(id), chunks: FileChunks(source: source), partSize: partSize)
            _ = try await self.client.putObject(key: Self.checksumKey(id), body: Array(sidecar))
        }
    }

    /// Starts a streamed upload for `--upload-only`: the archive's bytes go
    /// from the writer to the bucket as they are produced.
    func beginUpload(_ id: BackupID) -> CloudUpload { CloudUpload(store: self, id: id) }

    /// Downloads an archive into the repository's `local/`, through a
    /// temporary file that is checked against the sidecar before it is
    /// published, so `local/` never holds a partial or damaged download.
    public func download(_ id: BackupID, into repository: Repository) throws -> String {
        try repository.prepare()
        let source = try source(id, readAhead: 8 << 20)
        let temporary = "\(repository.temporaryDirectory)/\(id).arca.download"
        FileSystem.remove(temporary)
        let sink = try FileSink(creatingExclusively: temporary)
        do {
            let md5 = Digest(.md5)
            var buffer = [UInt8](repeating: 0, count: 8 << 20)
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

    /// Deletes an archive and its sidecar.
    public func remove(_ id: BackupID) throws {
        try runBlocking { try await self.client.deleteObjects(keys: [Self.archiveKey(id), Self.checksumKey(id)]) }
    }

    /// Whether the bucket holds the archive (one HEAD request).
    public func contains(_ id: BackupID) throws -> Bool {
        try runBlocking { try await self.client.headObject(key: Self.archiveKey(id)) } != nil
    }
}

public enum CloudError: Error, Sendable, CustomStringConvertible {
    case downloadMismatch(id: String, recorded: String, actual: String)
    case uploadFailed(id: String, localPath: String?, location: String, underlying: String)
    /// A streamed upload whose sidecar could not be stored, and whose archive
    /// object could not be deleted again.
    case archiveLeftWithoutSidecar(id: String, object: String, underlying: String, removal: String)

    public var description: String {
        switch self {
        case .downloadMismatch(let id, let recorded, let actual):
            "The download of \(id) has MD5 \(actual), but its sidecar in the bucket records \(recorded): the object is damaged. Nothing was saved; verify the cloud copy (`arca verify --cloud \(id)`)."
        case .uploadFailed(let id, let localPath?, let location, let underlying):
            "Backup \(id) is complete at \(localPath), but its upload to \(location) failed: \(Self.sentence(underlying)) The local copy is intact; run `arca sync` to upload it once the bucket is reachable."
        case .uploadFailed(let id, nil, let location, let underlying):
            "The upload of backup \(id) to \(location) failed: \(Self.sentence(underlying)) No backup was kept (--upload-only); nothing partial is left in the bucket."
        case .archiveLeftWithoutSidecar(let id, let object, let underlying, let removal):
            "The upload of backup \(id) failed while storing its checksum sidecar: \(Self.sentence(underlying)) Deleting the uploaded archive failed too (\(removal)), so \(object) is in the bucket without its sidecar: delete that object with your S3 tools. No backup was kept (--upload-only)."
        }
    }

    /// S3 errors read as clauses, without a full stop; this message goes on after them.
    private static func sentence(_ text: String) -> String {
        text.hasSuffix(".") ? text : text + "."
    }
}

/// An archive in a bucket, read by ranged GETs. Small reads fetch a window
/// around them (so the header, key envelope, trailer and a small manifest
/// take a GET or two); sequential readers ask for read-ahead. A few recent
/// windows are kept, so concurrent readers (a parallel restore) each find
/// theirs. Thread-safe.
public final class CloudSource: ByteSource, @unchecked Sendable {
    public let size: UInt64
    private let store: CloudStore
    private let key: String
    private let window: Int
    private let lock = NSLock()
    private var cache: [(range: Range<UInt64>, bytes: [UInt8])] = []
    private static let cachedWindows = 4
    private static let minimumWindow = 64 << 10

    init(store: CloudStore, key: String, size: UInt64, readAhead: Int) {
        self.store = store
        self.key = key
        self.size = size
        window = max(readAhead, Self.minimumWindow)
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(buffer.count))
        guard !overflow, end <= size else {
            throw ArchiveError.truncated(what: "a read", offset: offset, needed: UInt64(buffer.count), fileSize: size)
        }
        guard buffer.count > 0 else { return }
        if copyFromCache(offset: offset, into: buffer) { return }
        if buffer.count >= window {
            // Larger than a window: straight into the caller's buffer, not cached.
            let bytes = try store.read(key: key, range: offset..<end)
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
            return
        }
        // A window containing the read; near the end it reaches back, so the
        // trailer's GET also brings the manifest before it.
        let start = min(offset, size >= UInt64(window) ? size - UInt64(window) : 0)
        let range = start..<min(size, start + UInt64(window))
        let bytes = try store.read(key: key, range: range)
        lock.lock()
        cache.append((range, bytes))
        if cache.count > Self.cachedWindows { cache.removeFirst() }
        lock.unlock()
        _ = copyFromCache(offset: offset, into: buffer)
    }

    private func copyFromCache(offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let end = offset + UInt64(buffer.count)
        guard let entry = cache.last(where: { $0.range.lowerBound <= offset && end <= $0.range.upperBound }) else { return false }
        let start = Int(offset - entry.range.lowerBound)
        entry.bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<start + buffer.count])) }
        return true
    }
}

/// A file read front to back in 1 MiB pieces, as the S3 uploader's input.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = [UInt8]
    let source: FileSource

    struct AsyncIterator: AsyncIteratorProtocol {
        let source: FileSource
        var offset: UInt64 = 0

        mutating func next() async throws -> [UInt8]? {
            guard offset < source.size else { return nil }
            let bytes = try source.read(at: offset, count: Int(Swift.min(1 << 20, source.size - offset)), what: "the archive")
            offset += UInt64(bytes.count)
            return bytes
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: source) }
}

extension FileSource: @unchecked Sendable {}

/// Runs async work from a synchronous engine thread and waits for it.
///
/// The work runs on `StorageExecutor`, not on Swift's cooperative pool: a
/// caller that blocks one of the pool's few threads (a test, a scheduler
/// running inside a task) can then never starve the work it waits for.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task.detached(executorPreference: StorageExecutor.shared) {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

/// Carries a result from the task to the waiting thread; the semaphore
/// orders the write before the read.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// A task executor over a concurrent dispatch queue, whose threads are not
/// the cooperative pool's. Child tasks (parallel upload parts) inherit it.
final class StorageExecutor: TaskExecutor {
    static let shared = StorageExecutor()
    private let queue = DispatchQueue(label: "arca.storage", attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}
