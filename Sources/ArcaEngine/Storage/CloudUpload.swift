import ArcaFormat
import ArcaS3
import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Where a backup is written while it runs, and how it becomes visible:
/// an `ArchiveStore`'s streamed write. The local repository's reservation
/// (a temporary file renamed into `local/`) and a streamed cloud upload
/// (`--upload-only`) are the two.
public protocol ArchiveDestination: AnyObject {
    var id: BackupID { get }
    var sink: ByteSink { get }
    /// Makes the finished archive visible; returns where it is.
    func publish(fileMD5: String) throws -> String
    /// Removes every trace of an unfinished archive; called once the
    /// backup's writers stopped.
    func discard()
    /// Set when the destination itself failed (not the backup feeding it):
    /// after `discard`, the error to report.
    var failure: (any Error)? { get }
}

final class LocalDestination: ArchiveDestination {
    let repository: Repository
    let reservation: Repository.Reservation
    var id: BackupID { reservation.id }
    var sink: ByteSink { reservation.sink }

    init(repository: Repository, reservation: Repository.Reservation) {
        self.repository = repository
        self.reservation = reservation
    }

    func publish(fileMD5: String) throws -> String {
        try reservation.sink.syncAndClose()
        return try repository.publish(reservation, fileMD5: fileMD5)
    }

    /// Called once the backup's writers stopped.
    func discard() {
        reservation.sink.close()
        FileSystem.remove(reservation.temporaryPath)
    }

    /// A full disk or an I/O error surfaces from the write itself.
    var failure: (any Error)? { nil }
}

/// An archive streamed into the bucket as it is written: the writer's
/// threads write bytes into upload parts staged on local disk, and a
/// multipart upload sends each full one. The object appears only when the
/// upload completes (S3 publishes a multipart upload atomically); on failure
/// the upload is aborted.
final class CloudUpload: ArchiveDestination, @unchecked Sendable {
    let store: CloudStore
    let id: BackupID
    private let channel: PartChannel
    private let finished = DispatchSemaphore(value: 0)
    /// The upload's own error, set before `finished` is signalled.
    private var uploadError: (any Error)?

    var sink: ByteSink { channel }

    init(store: CloudStore, id: BackupID, staging: String) throws {
        self.store = store
        self.id = id
        let channel = try PartChannel(staging: staging)
        self.channel = channel
        Task.detached(executorPreference: StorageExecutor.shared) { [self] in
            do {
                try await store.client.upload(
                    key: CloudStore.archiveKey(id), parts: channel, concurrency: 1, partUploaded: { _ in channel.release() },
                    pace: { bytes in try await store.uploadLimiter?.take(bytes) { channel.isClosed } }, ifAbsent: true)
            } catch is CancellationError {
                // `discard` stopped it: the backup failed, not the upload.
            } catch {
                uploadError = error
                // Unblocks a writer waiting for room, with the reason.
                channel.close(error)
            }
            finished.signal()
        }
    }

    var failure: (any Error)? {
        uploadError.map { error in
            if case S3Error.objectExists = error { return CloudError.idTaken(id: id.rawValue, localPath: nil, location: store.place) }
            return CloudError.uploadFailed(id: id.rawValue, localPath: nil, location: store.place, underlying: "\(error)")
        }
    }

    func publish(fileMD5: String) throws -> String {
        try channel.finish()
        finished.wait()
        finished.signal()  // `discard` after a failed publish must not wait again
        if let failure { throw failure }
        let sidecar = Repository.sidecar(md5: fileMD5, id: id)
        do {
            try store.storeSidecar(sidecar, of: id, localPath: nil)
        } catch {
            // An archive without its sidecar would pass for a whole one: take it back.
            do {
                _ = try store.remove(id)
            } catch let removal {
                throw CloudError.archiveLeftWithoutSidecar(
                    id: id.rawValue, object: store.describe(id), underlying: "\(error)", removal: "\(removal)")
            }
            throw CloudError.uploadFailed(id: id.rawValue, localPath: nil, location: store.place, underlying: "\(error)")
        }
        return store.describe(id)
    }

    func discard() {
        channel.close(CancellationError())
        finished.wait()
        finished.signal()
    }
}

/// Bytes from synchronous writer threads to one asynchronous uploader, cut
/// into parts as they are written. Each part is staged in a file of its own
/// (two files: one being filled while the other uploads) and read back a
/// piece at a time when it is sent (see `SourcePart.readOnEventLoop`), so
/// memory holds none of it: a part is at least 5 MiB (S3's rule) and needs
/// its Content-MD5 before its first byte goes, and two of them in memory
/// cost 16 MiB next to the backup's buffers.
/// The writer blocks while both files are taken. The files are unlinked as
/// soon as they are opened: a crash leaves nothing behind.
final class PartChannel: ByteSink, AsyncSequence, AsyncIteratorProtocol, @unchecked Sendable {
    typealias Element = SourcePart

    /// 8 MiB parts for the first 5,000, then 16 MiB: S3's 10,000 parts hold
    /// 120 GB, and the part being sent is at most 16 MiB of memory.
    static func partSize(number: Int) -> Int { number <= 5_000 ? 8 << 20 : 16 << 20 }

    private let condition = NSCondition()
    private var free: [StagedPart]
    private var partsStarted = 0
    private var filling: StagedPart?
    private var fillingSize = 0
    /// A full part the uploader has not taken yet.
    private var ready: StagedPart?
    /// Parts given to the uploader, oldest first (one at a time uploads them in order).
    private var sent: [StagedPart] = []
    private var waiting: CheckedContinuation<SourcePart?, any Error>?
    private var ended = false
    private var failure: (any Error)?

    init(staging: String) throws {
        free = [try StagedPart(in: staging), try StagedPart(in: staging)]
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        condition.lock()
        defer { condition.unlock() }
        var offset = 0
        while offset < bytes.count {
            if let failure { throw failure }
            if filling == nil {
                while free.isEmpty, failure == nil { condition.wait() }
                if let failure { throw failure }
                let part = free.removeLast()
                try part.reset()
                partsStarted += 1
                filling = part
                fillingSize = Self.partSize(number: partsStarted)
            }
            let part = filling!
            let count = Swift.min(bytes.count - offset, fillingSize - Int(part.size))
            try part.append(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count]))
            offset += count
            if Int(part.size) == fillingSize { try deliverFilling() }
        }
    }

    /// No more bytes: the part being filled is the last one.
    func finish() throws {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw failure }
        if filling != nil { try deliverFilling() }
        ended = true
        if ready == nil, let waiting {
            self.waiting = nil
            waiting.resume(returning: nil)
        }
    }

    /// Hands the filled part to the uploader (or leaves it ready for it),
    /// once the one before it was taken. Called with the lock held.
    private func deliverFilling() throws {
        while ready != nil, failure == nil { condition.wait() }
        if let failure { throw failure }
        guard let part = filling else { return }
        filling = nil
        if let waiting {
            self.waiting = nil
            sent.append(part)
            waiting.resume(returning: part.whole)
        } else {
            ready = part
        }
    }

    /// The oldest part sent is stored in the bucket: its file may be reused.
    func release() {
        condition.lock()
        if !sent.isEmpty { free.append(sent.removeFirst()) }
        condition.broadcast()
        condition.unlock()
    }

    /// Closed by `close`: a throttled uploader stops waiting.
    var isClosed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return failure != nil
    }

    /// Stops both sides: the uploader throws `error`, a writer throws it too.
    func close(_ error: any Error) {
        condition.lock()
        if failure == nil { failure = error }
        let waiting = self.waiting
        self.waiting = nil
        condition.broadcast()
        condition.unlock()
        waiting?.resume(throwing: error)
    }

    func next() async throws -> SourcePart? {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            defer { condition.unlock() }
            if let failure {
                continuation.resume(throwing: failure)
            } else if let part = ready {
                ready = nil
                sent.append(part)
                condition.broadcast()
                continuation.resume(returning: part.whole)
            } else if ended {
                continuation.resume(returning: nil)
            } else {
                waiting = continuation
            }
        }
    }

    func makeAsyncIterator() -> PartChannel { self }
}

/// One upload part staged in an unlinked file of the staging folder: written
/// by appending, read by offset while it uploads, truncated for the next
/// part (which also spares the disk the writes of pages nobody will read).
final class StagedPart: ByteSource, @unchecked Sendable {
    private let descriptor: Int32
    private let folder: String
    private(set) var size: UInt64 = 0

    init(in folder: String) throws {
        self.folder = folder
        let path = "\(folder)/upload-part-\(UInt64.random(in: 0...UInt64.max)).staged"
        descriptor = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw RepositoryError.fromErrno("create", path) }
        unlink(path)
    }

    deinit { close(descriptor) }

    var whole: SourcePart { SourcePart(source: self, range: 0..<size, readOnEventLoop: true) }

    func reset() throws {
        guard ftruncate(descriptor, 0) == 0 else { throw RepositoryError.fromErrno("truncate a staged upload part in", folder) }
        size = 0
    }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let written = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(size) + off_t(done))
            if written < 0 {
                if errno == EINTR { continue }
                throw RepositoryError.fromErrno("write a staged upload part in", folder)
            }
            done += written
        }
        size += UInt64(bytes.count)
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard offset <= size, UInt64(buffer.count) <= size - offset else {
            throw ArchiveError.truncated(what: "a staged upload part", offset: offset, needed: UInt64(buffer.count), fileSize: size)
        }
        try FileSystem.read(
            descriptor, at: offset, into: buffer, size: size, what: "a staged upload part", operation: "read a staged upload part in",
            path: folder)
    }
}
