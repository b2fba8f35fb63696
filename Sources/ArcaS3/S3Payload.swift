import ArcaFormat
import AsyncHTTPClient
import NIOCore

/// A request body: bytes in memory, or a range of a source (an archive file)
/// that is read a piece at a time, once for its digests and again for every
/// attempt, so a part of any size costs one piece of memory.
enum S3Payload: Sendable {
    case bytes(ByteBuffer)
    case source(any ByteSource & Sendable, Range<UInt64>)
    /// A range of a source read a piece at a time on the HTTP client's
    /// event loop (see `SourcePart.readOnEventLoop`).
    case sourceOnEventLoop(any ByteSource & Sendable, Range<UInt64>)

    /// MD5 (for Content-MD5) and SHA-256 (for the signature) of the payload.
    func digests() throws -> (md5: [UInt8], sha256: [UInt8]) {
        switch self {
        case .bytes(let buffer):
            return (Hashes.md5(buffer), Hashes.sha256(buffer))
        case .source(let source, let range), .sourceOnEventLoop(let source, let range):
            let md5 = Digest(.md5), sha256 = Digest(.sha256)
            var offset = range.lowerBound
            while offset < range.upperBound {
                let piece = try SourcePieces.read(source, at: offset, end: range.upperBound)
                piece.withUnsafeReadableBytes { bytes in
                    md5.update(bytes)
                    sha256.update(bytes)
                }
                offset += UInt64(piece.readableBytes)
            }
            return (md5.finish(), sha256.finish())
        }
    }
}

/// One part of an upload: a range of a source, read a piece at a time when
/// it is sent (and again if it is retried).
public struct SourcePart: Sendable {
    public let source: any ByteSource & Sendable
    public let range: Range<UInt64>
    /// Read on the HTTP client's event loop as the connection takes it,
    /// not streamed from a task: AsyncHTTPClient streams an async body from
    /// a task of its own on Swift's shared cooperative pool, which
    /// synchronous callers can hold entirely. A part whose upload a running
    /// `COPY … TO STDOUT` waits for must not depend on that pool: a stalled
    /// COPY backend also stalls every DROP DATABASE of its cluster, which
    /// may be what holds the pool's threads.
    public let readOnEventLoop: Bool

    public init(source: any ByteSource & Sendable, range: Range<UInt64>, readOnEventLoop: Bool = false) {
        self.source = source
        self.range = range
        self.readOnEventLoop = readOnEventLoop
    }
}

/// A range of a source as a request body stream, in pieces of 256 KiB.
struct SourcePieces: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let source: any ByteSource & Sendable
    let range: Range<UInt64>

    static let pieceSize = 256 << 10

    static func read(_ source: any ByteSource, at offset: UInt64, end: UInt64) throws -> ByteBuffer {
        let count = Int(Swift.min(UInt64(pieceSize), end - offset))
        var piece = ByteBufferAllocator().buffer(capacity: count)
        try piece.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { bytes in
            try source.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: bytes[0..<count]))
            return count
        }
        return piece
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let source: any ByteSource & Sendable
        var offset: UInt64
        let end: UInt64

        mutating func next() async throws -> ByteBuffer? {
            guard offset < end else { return nil }
            let piece = try SourcePieces.read(source, at: offset, end: end)
            offset += UInt64(piece.readableBytes)
            return piece
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: source, offset: range.lowerBound, end: range.upperBound) }
}

/// The bytes of one ranged GET as they arrive, copied into the caller's
/// buffers: at most one network read is held here, whatever the range.
/// One reader at a time.
public final class S3ObjectReader: @unchecked Sendable {
    /// The offset of the next byte `read` returns.
    public private(set) var position: UInt64
    /// Where the range ends (excluded).
    public let end: UInt64
    private var iterator: HTTPClientResponse.Body.AsyncIterator
    private var pending = ByteBuffer()
    private let context: S3RequestContext

    init(body: HTTPClientResponse.Body, range: Range<UInt64>, context: S3RequestContext) {
        iterator = body.makeAsyncIterator()
        position = range.lowerBound
        end = range.upperBound
        self.context = context
    }

    /// Fills `buffer` with the next bytes of the range. On a failure part of
    /// it may be filled: `position` says how far the bytes arrived, where a
    /// new GET can go on. A dropped connection is `.unreachable`.
    public func read(into buffer: UnsafeMutableRawBufferPointer) async throws {
        guard UInt64(buffer.count) <= end - position else {
            preconditionFailure("reading \(buffer.count) bytes past the range's end")
        }
        var filled = 0
        while filled < buffer.count {
            if pending.readableBytes == 0 {
                let next: ByteBuffer?
                do {
                    next = try await iterator.next()
                } catch {
                    if Task.isCancelled || error is CancellationError { throw CancellationError() }
                    throw S3Error.unreachable(context, reason: TransportFailure(error).reason)
                }
                guard let next else {
                    throw S3Error.invalidResponse(context, detail: "the answer ended \(end - position) bytes before the range's end")
                }
                pending = next
            }
            let count = min(pending.readableBytes, buffer.count - filled)
            pending.withUnsafeReadableBytes { bytes in
                UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<filled + count])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
            }
            pending.moveReaderIndex(forwardBy: count)
            filled += count
            position += UInt64(count)
        }
    }
}
