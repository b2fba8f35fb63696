import ArcaFormat
import ArcaS3
import Foundation

/// Where a backup is written while it runs, and how it becomes visible.
/// The local repository's reservation (a temporary file renamed into
/// `local/`) and a streamed cloud upload (`--upload-only`) are the two.
protocol ArchiveDestination: AnyObject {
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
/// threads hand bytes to a bounded channel, and a multipart upload reads
/// them. The object appears only when the upload completes (S3 publishes a
/// multipart upload atomically); on failure the upload is aborted.
final class CloudUpload: ArchiveDestination, @unchecked Sendable {
    let store: CloudStore
    let id: BackupID
    private let channel = ByteChannel()
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
                    key: CloudStore.archiveKey(id), chunks: channel, partSize: CloudStore.streamingPartSize, concurrency: 1)
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
        channel.finish()
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

/// Bytes from synchronous writer threads to one asynchronous reader, one
/// piece in flight: `write` blocks until the reader has taken the previous
/// piece, so memory stays bounded whatever the upload's speed.
final class ByteChannel: ByteSink, AsyncSequence, AsyncIteratorProtocol, @unchecked Sendable {
    typealias Element = [UInt8]

    private let lock = NSLock()
    private let room = DispatchSemaphore(value: 1)
    private var pending: [UInt8]?
    private var waiting: CheckedContinuation<[UInt8]?, any Error>?
    private var ended = false
    private var failure: (any Error)?

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        room.wait()
        lock.lock()
        if let failure {
            lock.unlock()
            room.signal()
            throw failure
        }
        let piece = Array(bytes)
        if let waiting {
            self.waiting = nil
            lock.unlock()
            room.signal()
            waiting.resume(returning: piece)
        } else {
            pending = piece
            lock.unlock()
        }
    }

    /// No more bytes: the reader sees the end after the last piece.
    func finish() {
        room.wait()
        lock.lock()
        ended = true
        let waiting = self.waiting
        self.waiting = nil
        lock.unlock()
        room.signal()
        waiting?.resume(returning: nil)
    }

    /// Stops both sides: the reader throws `error`, a writer throws it too.
    func close(_ error: any Error) {
        lock.lock()
        if failure == nil { failure = error }
        pending = nil
        let waiting = self.waiting
        self.waiting = nil
        lock.unlock()
        room.signal()
        waiting?.resume(throwing: error)
    }

    func next() async throws -> [UInt8]? {
        try await withCheckedThrowingContinuation { continuation in
            lock.lock()
            if let failure {
                lock.unlock()
                continuation.resume(throwing: failure)
            } else if let piece = pending {
                pending = nil
                lock.unlock()
                room.signal()
                continuation.resume(returning: piece)
            } else if ended {
                lock.unlock()
                continuation.resume(returning: nil)
            } else {
                waiting = continuation
                lock.unlock()
            }
        }
    }

    func makeAsyncIterator() -> ByteChannel { self }
}
