import ArcaFormat
import ArcaS3
import Foundation
import NIOCore

/// Where a backup is written while it runs, and how it becomes visible:
/// an `ArchiveStore`'s streamed write. The local repository's reservation
/// (a temporary file renamed into `local/`) and a streamed cloud upload
/// (`--upload-only`) are the two.
public protocol ArchiveDestination: AnyObject {
    var id: BackupID { get }
    var sink: ByteSink { get }
    /// Makes the finished archive visible; returns where it is.
    func publish(fileMD5: String) throws -> String
    /// Removes every trace of an unfinished archive.
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

    func discard() { FileSystem.remove(reservation.temporaryPath) }

    /// A full disk or an I/O error surfaces from the write itself.
    var failure: (any Error)? { nil }
}

/// An archive streamed into the bucket as it is written: the writer's
/// threads copy bytes straight into upload parts, and a multipart upload
/// sends each full one. The object appears only when the upload completes
/// (S3 publishes a multipart upload atomically); on failure the upload is
/// aborted.
final class CloudUpload: ArchiveDestination, @unchecked Sendable {
    let store: CloudStore
    let id: BackupID
    private let channel = PartChannel()
    private let finished = DispatchSemaphore(value: 0)
    /// The upload's own error, set before `finished` is signalled.
    private var uploadError: (any Error)?

    var sink: ByteSink { channel }

    init(store: CloudStore, id: BackupID) {
        self.store = store
        self.id = id
        let channel = channel
        Task.detached(executorPreference: StorageExecutor.shared) { [self] in
            do {
                try await store.client.upload(
                    key: CloudStore.archiveKey(id), parts: channel, concurrency: 1, partUploaded: { channel.release($0) })
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
        uploadError.map { CloudError.uploadFailed(id: id.rawValue, localPath: nil, location: store.place, underlying: "\($0)") }
    }

    func publish(fileMD5: String) throws -> String {
        try channel.finish()
        finished.wait()
        finished.signal()  // `discard` after a failed publish must not wait again
        if let failure { throw failure }
        let sidecar = Repository.sidecar(md5: fileMD5, id: id)
        do {
            try runBlocking { _ = try await self.store.client.putObject(key: CloudStore.checksumKey(self.id), body: sidecar) }
        } catch {
            // An archive without its sidecar would pass for a whole one: take it back.
            do {
                try store.remove(id)
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
/// into parts as they are written: `write` copies into the part being
/// filled (the only copy), a full part waits for the uploader, and the
/// writer blocks while a new part would take the parts held (filling,
/// waiting or uploading) past `budget`. Memory is bounded by the budget
/// whatever the upload's speed or the archive's size.
final class PartChannel: ByteSink, AsyncSequence, AsyncIteratorProtocol, @unchecked Sendable {
    typealias Element = ByteBuffer

    /// Two 8 MiB parts (one uploading while the next fills) for the first
    /// 5,000 parts, then 16 MiB parts one at a time: 120 GB in S3's 10,000
    /// parts, in 16 MiB of memory.
    static let budget = 16 << 20
    static func partSize(number: Int) -> Int { number <= 5_000 ? 8 << 20 : 16 << 20 }

    private let condition = NSCondition()
    private var held = 0
    private var partsStarted = 0
    private var filling: ByteBuffer?
    private var fillingSize = 0
    /// A full part the uploader has not taken yet.
    private var ready: ByteBuffer?
    private var waiting: CheckedContinuation<ByteBuffer?, any Error>?
    private var ended = false
    private var failure: (any Error)?

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        condition.lock()
        defer { condition.unlock() }
        var offset = 0
        while offset < bytes.count {
            if let failure { throw failure }
            if filling == nil {
                let size = Self.partSize(number: partsStarted + 1)
                while held + size > Self.budget, failure == nil { condition.wait() }
                if let failure { throw failure }
                held += size
                partsStarted += 1
                filling = ByteBufferAllocator().buffer(capacity: size)
                fillingSize = size
            }
            let count = Swift.min(bytes.count - offset, fillingSize - filling!.readableBytes)
            filling!.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count]))
            offset += count
            if filling!.readableBytes == fillingSize { try deliverFilling() }
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
        held -= fillingSize - part.readableBytes  // the last part may be short
        if let waiting {
            self.waiting = nil
            waiting.resume(returning: part)
        } else {
            ready = part
        }
    }

    /// A part of `bytes` is stored in the bucket: its memory may be reused.
    func release(_ bytes: Int) {
        condition.lock()
        held -= bytes
        condition.broadcast()
        condition.unlock()
    }

    /// Stops both sides: the uploader throws `error`, a writer throws it too.
    func close(_ error: any Error) {
        condition.lock()
        if failure == nil { failure = error }
        filling = nil
        ready = nil
        let waiting = self.waiting
        self.waiting = nil
        condition.broadcast()
        condition.unlock()
        waiting?.resume(throwing: error)
    }

    func next() async throws -> ByteBuffer? {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            defer { condition.unlock() }
            if let failure {
                continuation.resume(throwing: failure)
            } else if let part = ready {
                ready = nil
                condition.broadcast()
                continuation.resume(returning: part)
            } else if ended {
                continuation.resume(returning: nil)
            } else {
                waiting = continuation
            }
        }
    }

    func makeAsyncIterator() -> PartChannel { self }
}
