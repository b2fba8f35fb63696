import ArcaFormat
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
        key: String, chunks: Chunks, partSize: Int = 8 * 1024 * 1024, concurrency: Int = 2, ifAbsent: Bool = false
    ) async throws -> String where Chunks.Element == [UInt8] {
        Self.checkPartSize(partSize)
        var reader = PartReader(iterator: chunks.makeAsyncIterator(), partSize: partSize)
        return try await upload(key: key, concurrency: concurrency, ifAbsent: ifAbsent) { try await reader.nextPart().map(S3Payload.bytes) }
    }

    /// Uploads a stream of whole parts (each at least `minimumPartSize` bytes but
    /// the last), each a range of a source read a piece at a time when it is sent,
    /// as one object, `concurrency` parts at a time; a single part becomes a
    /// PutObject. `partUploaded` is told each part's size once it is stored, in
    /// the order the parts came when `concurrency` is 1, so the producer can
    /// reuse what held it. `pace` is awaited with each part's size before
    /// it is sent (a rate limit). Aborts like `upload(key:chunks:)`.
    @discardableResult
    public func upload<Parts: AsyncSequence>(
        key: String, parts: Parts, concurrency: Int = 1, partUploaded: @escaping @Sendable (Int) -> Void = { _ in },
        pace: (Int) async throws -> Void = { _ in }, ifAbsent: Bool = false
    ) async throws -> String where Parts.Element == SourcePart {
        var iterator = parts.makeAsyncIterator()
        return try await upload(key: key, concurrency: concurrency, partUploaded: partUploaded, pace: pace, ifAbsent: ifAbsent) {
            try await iterator.next().map { $0.readOnEventLoop ? .sourceOnEventLoop($0.source, $0.range) : .source($0.source, $0.range) }
        }
    }

    /// Uploads `source` (a file) in parts of `partSize` bytes, `concurrency` at a time,
    /// each read from the source a piece at a time when it is sent (and again if it is
    /// retried): memory does not grow with the part size. Aborts like `upload(key:chunks:)`.
    /// `partUploaded` is told each part's size once it is stored (for progress);
    /// `pace` is awaited with each part's size before it is sent.
    @discardableResult
    public func upload(
        key: String, source: any ByteSource & Sendable, partSize: Int = 8 * 1024 * 1024, concurrency: Int = 2,
        partUploaded: @escaping @Sendable (Int) -> Void = { _ in }, pace: (Int) async throws -> Void = { _ in }, ifAbsent: Bool = false
    ) async throws -> String {
        Self.checkPartSize(partSize)
        var offset: UInt64 = 0
        var first = true
        return try await upload(key: key, concurrency: concurrency, partUploaded: partUploaded, pace: pace, ifAbsent: ifAbsent) {
            guard offset < source.size || first else { return nil }
            first = false
            let end = min(source.size, offset + UInt64(partSize))
            defer { offset = end }
            return .source(source, offset..<end)
        }
    }

    /// The ETag an `upload(key:source:partSize:)` of `source` gives its
    /// object (for stores whose ETags are MD5s): to recognise, after a
    /// refused conditional write, an object that is this very upload.
    public static func expectedETag(of source: any ByteSource, partSize: Int) throws -> String {
        checkPartSize(partSize)
        var partDigests: [String] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: UInt64 = 0
        repeat {
            let end = min(source.size, offset + UInt64(partSize))
            let digest = Digest(.md5)
            while offset < end {
                let count = Int(min(UInt64(buffer.count), end - offset))
                try buffer.withUnsafeMutableBytes { bytes in
                    let slice = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<count])
                    try source.read(at: offset, into: slice)
                    digest.update(UnsafeRawBufferPointer(slice))
                }
                offset += UInt64(count)
            }
            partDigests.append(Hashes.hex(digest.finish()))
        } while offset < source.size
        return partDigests.count == 1 ? partDigests[0] : multipartETag(partETags: partDigests) ?? ""
    }

    private static func checkPartSize(_ partSize: Int) {
        precondition(
            (minimumPartSize...maximumPartSize).contains(partSize), "partSize must be between 5 MiB and 5 GiB (S3's limits)")
    }

    /// The upload all the above share: the first part alone is a PutObject (an empty
    /// stream gives one empty part), more are a multipart upload, aborted on failure.
    /// A part is asked for only when an upload slot is free, so a producer that fills
    /// parts while they upload holds at most `concurrency + 1`. `pace` holds each part
    /// back before it is sent: a throttled upload keeps its producer waiting too.
    /// `ifAbsent` makes the write that publishes the object (the PutObject
    /// or the completion) conditional: it never replaces an object.
    private func upload(
        key: String, concurrency: Int, partUploaded: @escaping @Sendable (Int) -> Void = { _ in },
        pace: (Int) async throws -> Void = { _ in }, ifAbsent: Bool, nextPart: () async throws -> S3Payload?
    ) async throws -> String {
        precondition((1...16).contains(concurrency), "concurrency must be between 1 and 16")
        let firstPart = try await nextPart() ?? .bytes(ByteBuffer())
        guard let secondPart = try await nextPart() else {
            try await pace(firstPart.count)
            let etag = try await putObject(key: key, payload: firstPart, ifAbsent: ifAbsent)
            partUploaded(firstPart.count)
            return etag
        }

        let uploadID = try await createMultipartUpload(key: key)
        do {
            let parts = try await withThrowingTaskGroup(of: S3UploadedPart.self) { group in
                var uploaded: [S3UploadedPart] = []
                var inFlight = 0
                var partNumber = 0
                var nextPayload: S3Payload? = firstPart
                var queued: S3Payload? = secondPart
                while let part = nextPayload {
                    partNumber += 1
                    guard partNumber <= Self.maximumPartCount else {
                        throw S3Error.invalidRequest(
                            "'\(key)' needs more than \(Self.maximumPartCount) parts: use a larger part size")
                    }
                    let number = partNumber
                    try await pace(part.count)
                    group.addTask {
                        let etag = try await self.uploadPart(key: key, uploadID: uploadID, partNumber: number, payload: part)
                        partUploaded(part.count)
                        return S3UploadedPart(partNumber: number, etag: etag)
                    }
                    inFlight += 1
                    if inFlight == concurrency, let done = try await group.next() {
                        uploaded.append(done)
                        inFlight -= 1
                    }
                    if let next = queued {
                        nextPayload = next
                        queued = nil
                    } else {
                        nextPayload = try await nextPart()
                    }
                }
                for try await done in group { uploaded.append(done) }
                return uploaded
            }
            return try await completeMultipartUpload(key: key, uploadID: uploadID, parts: parts, ifAbsent: ifAbsent)
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

extension S3Payload {
    var count: Int {
        switch self {
        case .bytes(let buffer): buffer.readableBytes
        case .source(_, let range), .sourceOnEventLoop(_, let range): Int(range.count)
        }
    }
}

/// Regroups chunks of any size into parts of exactly `partSize` bytes (the last may be shorter).
private struct PartReader<Iterator: AsyncIteratorProtocol> where Iterator.Element == [UInt8] {
    var iterator: Iterator
    let partSize: Int
    /// The unused tail of the last chunk read.
    private var leftover: ArraySlice<UInt8> = []
    private var isFinished = false

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
