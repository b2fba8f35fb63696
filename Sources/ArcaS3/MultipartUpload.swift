import NIOCore

extension S3Client {
    /// Uploads a stream of byte chunks as one object, cut into parts of `partSize` bytes
    /// uploaded `concurrency` at a time. A stream shorter than one part becomes a single
    /// PutObject. Returns the object's ETag (unquoted).
    ///
    /// At most `concurrency + 1` parts are held in memory: the ones being uploaded and the
    /// one being filled. On any error or cancellation (from the stream, a part, or the
    /// completion) the multipart upload is aborted, best effort, and the original error is
    /// rethrown, so no orphaned upload keeps costing storage.
    @discardableResult
    public func upload<Chunks: AsyncSequence>(
        key: String, chunks: Chunks, partSize: Int = 8 * 1024 * 1024, concurrency: Int = 2
    ) async throws -> String where Chunks.Element == [UInt8] {
        precondition(
            (Self.minimumPartSize...Self.maximumPartSize).contains(partSize),
            "partSize must be between 5 MiB and 5 GiB (S3's limits)")
        precondition((1...16).contains(concurrency), "concurrency must be between 1 and 16")

        var reader = PartReader(iterator: chunks.makeAsyncIterator(), partSize: partSize)
        let firstPart = try await reader.nextPart() ?? ByteBuffer()
        if reader.isFinished {
            return try await putObject(key: key, body: firstPart)
        }

        let uploadID = try await createMultipartUpload(key: key)
        do {
            let parts = try await withThrowingTaskGroup(of: S3UploadedPart.self) { group in
                var uploaded: [S3UploadedPart] = []
                var inFlight = 0
                var partNumber = 0
                var nextPart: ByteBuffer? = firstPart
                while let part = nextPart {
                    partNumber += 1
                    guard partNumber <= Self.maximumPartCount else {
                        throw S3Error.invalidRequest(
                            "'\(key)' needs more than \(Self.maximumPartCount) parts of \(partSize) bytes: use a larger part size")
                    }
                    if inFlight == concurrency, let done = try await group.next() {
                        uploaded.append(done)
                        inFlight -= 1
                    }
                    let number = partNumber
                    group.addTask {
                        let etag = try await self.uploadPart(key: key, uploadID: uploadID, partNumber: number, body: part)
                        return S3UploadedPart(partNumber: number, etag: etag)
                    }
                    inFlight += 1
                    nextPart = try await reader.nextPart()
                }
                for try await done in group { uploaded.append(done) }
                return uploaded
            }
            return try await completeMultipartUpload(key: key, uploadID: uploadID, parts: parts)
        } catch {
            // In a task of its own: the current one may be cancelled, which would stop the abort too.
            let abort = Task { try await self.abortMultipartUpload(key: key, uploadID: uploadID) }
            do {
                try await abort.value
            } catch let abortError {
                logger.warning("could not abort the multipart upload; it will keep its parts until aborted", metadata: [
                    "bucket": "\(configuration.bucket)", "key": "\(key)", "uploadID": "\(uploadID)",
                    "error": "\(abortError)",
                ])
            }
            throw error
        }
    }
}

/// Regroups chunks of any size into parts of exactly `partSize` bytes (the last may be shorter).
private struct PartReader<Iterator: AsyncIteratorProtocol> where Iterator.Element == [UInt8] {
    var iterator: Iterator
    let partSize: Int
    /// The unused tail of the last chunk read.
    private var leftover: ArraySlice<UInt8> = []
    /// True once the stream has ended: the part just returned was the last one.
    private(set) var isFinished = false

    init(iterator: Iterator, partSize: Int) {
        self.iterator = iterator
        self.partSize = partSize
    }

    /// The next part, or nil when the stream has nothing more.
    mutating func nextPart() async throws -> ByteBuffer? {
        if isFinished && leftover.isEmpty { return nil }
        var part = ByteBuffer()
        part.reserveCapacity(partSize)
        while part.readableBytes < partSize {
            if leftover.isEmpty {
                guard let chunk = try await iterator.next() else {
                    isFinished = true
                    break
                }
                leftover = chunk[...]
            }
            let taken = leftover.prefix(partSize - part.readableBytes)
            part.writeBytes(taken)
            leftover = leftover.dropFirst(taken.count)
        }
        return part.readableBytes == 0 ? nil : part
    }
}
