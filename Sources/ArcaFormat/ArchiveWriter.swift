import Foundation

/// A frame ready to append: its header (CRC included) and its stored
/// payload, which points into the encoder's buffers and is valid until the
/// encoder's next `encode`.
public struct EncodedChunk {
    public let frame: FrameHeader
    public let payload: UnsafeRawBufferPointer
}

/// Turns raw bytes into a stored frame payload: one independent zstd frame,
/// or the raw bytes when compression does not make them smaller, then, in an
/// encrypted archive, sealed with the data key. Owns its zstd context, its
/// cipher and its output buffers; one encoder per thread.
public final class ChunkEncoder {
    private let compressor: ZstdCompressor?
    private let cipher: FrameCipher?
    /// zstd's output, and where a payload is sealed in place (AES-GCM allows
    /// it), so encryption costs no second chunk-sized buffer.
    private let output: UnsafeMutableRawBufferPointer

    /// `level` nil stores chunks uncompressed; `dataKey` seals them.
    public init(maximumRawLength: Int, level: Int32?, dataKey: DataKey? = nil) {
        compressor = level.map { ZstdCompressor(level: $0) }
        cipher = dataKey.map(FrameCipher.init)
        let capacity = max(ZstdCompressor.bound(maximumRawLength), 1) + (dataKey == nil ? 0 : FrameCipher.overhead)
        output = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { output.deallocate() }

    public func encode(_ raw: UnsafeRawBufferPointer, type: FrameType = .dataChunk, stream: UInt32, sequence: UInt64) -> EncodedChunk {
        precondition(raw.count <= UInt32.max)
        var codec = Codec.stored
        var payload = raw
        if let compressor {
            let length = compressor.compress(raw, into: UnsafeMutableRawBufferPointer(rebasing: output[0..<ZstdCompressor.bound(raw.count)]))
            if length < raw.count {
                codec = .zstd
                payload = UnsafeRawBufferPointer(rebasing: output[0..<length])
            }
        }
        var frame = FrameHeader(
            type: type, codec: codec, streamID: stream, sequence: sequence,
            rawLength: UInt32(raw.count), storedLength: UInt32(payload.count), payloadCRC: 0)
        if let cipher {
            if codec == .stored {
                UnsafeMutableRawBufferPointer(rebasing: output[0..<raw.count]).copyMemory(from: raw)
            }
            let plain = UnsafeRawBufferPointer(rebasing: output[0..<payload.count])
            frame.storedLength += UInt32(FrameCipher.overhead)
            let length = cipher.seal(plain, frame: frame, into: output)
            payload = UnsafeRawBufferPointer(rebasing: output[0..<length])
        }
        frame.payloadCRC = CRC32C.checksum(payload)
        return EncodedChunk(frame: frame, payload: payload)
    }
}

/// What a finished archive is: its size and the digests a sidecar records.
public struct ArchiveSummary: Sendable {
    public let size: UInt64
    public let fileMD5: String
    public let bodyMD5: String
    public let bodySHA256: String
}

/// Writes an archive front to back into a sink: the header (and, when
/// encrypting, the key envelope) at creation, frames as they come, the
/// manifest and trailer at `finish`. Never seeks.
/// Keeps the body digests (for the trailer) and the whole-file MD5 (for the
/// sidecar) as it writes, so nothing is read back.
///
/// Thread-safe: parallel encoders append whole frames, one at a time, so the
/// chunks of different streams interleave in the file.
public final class ArchiveWriter: @unchecked Sendable {
    public let header: FileHeader
    /// The archive's data key when it is encrypted: encoders seal with it.
    public let dataKey: DataKey?
    public private(set) var offset: UInt64 = 0
    private let sink: ByteSink
    private let md5 = Digest(.md5)
    private let sha256 = Digest(.sha256)
    private var finished = false
    private let lock = NSLock()

    /// With a `key`, the archive is encrypted: a new data key is made and
    /// wrapped under it (for a passphrase this runs scrypt once).
    public init(sink: ByteSink, header: FileHeader, key: ArchiveKey? = nil) throws {
        precondition(ArchiveFormat.chunkSizeRange.contains(header.chunkSize))
        var header = header
        header.isEncrypted = key != nil
        self.sink = sink
        self.header = header
        let envelope = try key.map { try KeyEnvelope.seal(with: $0, header: header) }
        dataKey = envelope?.1
        try emit(header.encoded())
        if let bytes = envelope?.0.encoded() {
            let frame = FrameHeader(
                type: .keyEnvelope, codec: .stored, streamID: ArchiveFormat.keyEnvelopeStreamID, sequence: 0,
                rawLength: UInt32(bytes.count), storedLength: UInt32(bytes.count), payloadCRC: CRC32C.checksum(bytes))
            try emit(frame.encoded())
            try emit(bytes)
        }
    }

    /// An encoder for this archive: compresses at `level`, seals when encrypted.
    public func makeEncoder(level: Int32?, maximumRawLength: Int? = nil) -> ChunkEncoder {
        ChunkEncoder(maximumRawLength: maximumRawLength ?? Int(header.chunkSize), level: level, dataKey: dataKey)
    }

    /// Appends one data chunk frame and returns its manifest entry.
    public func write(_ chunk: EncodedChunk) throws -> Manifest.Chunk {
        lock.lock()
        defer { lock.unlock() }
        let frame = chunk.frame
        precondition(!finished && frame.type == .dataChunk && frame.rawLength >= 1 && frame.rawLength <= header.chunkSize)
        let frameOffset = offset
        try emit(chunk)
        return Manifest.Chunk(offset: frameOffset, rawLength: frame.rawLength, storedLength: frame.storedLength, crc32c: frame.payloadCRC)
    }

    /// Writes the manifest frame and the trailer. The manifest's `archiveId`
    /// and `chunkSize` must be this writer's.
    public func finish(manifest: Manifest) throws -> ArchiveSummary {
        lock.lock()
        defer { lock.unlock() }
        precondition(!finished)
        precondition(manifest.archiveId == header.archiveID.description && manifest.chunkSize == header.chunkSize)
        finished = true
        let json = manifest.encoded()
        precondition(json.count <= ArchiveFormat.maximumManifestLength, "manifest of \(json.count) bytes exceeds the format's limit")
        let manifestOffset = offset
        try json.withUnsafeBytes { bytes in
            // An encoded payload lives in its encoder's buffer: each encoder
            // is kept alive until its frame is written.
            let compressing = makeEncoder(level: 3, maximumRawLength: json.count)
            try withExtendedLifetime(compressing) {
                let encoded = compressing.encode(bytes, type: .manifest, stream: ArchiveFormat.manifestStreamID, sequence: 0)
                // A manifest that compresses beyond what a reader accepts
                // (none seen in practice) is stored as it is.
                guard encoded.frame.codec == .zstd,
                      UInt64(json.count) > ArchiveFormat.manifestRawLimit(compressedLength: encoded.frame.storedLength - header.sealOverhead)
                else { return try emit(encoded) }
                let storing = makeEncoder(level: nil, maximumRawLength: json.count)
                try withExtendedLifetime(storing) {
                    try emit(storing.encode(bytes, type: .manifest, stream: ArchiveFormat.manifestStreamID, sequence: 0))
                }
            }
        }
        let bodyMD5 = md5.finish()
        let bodySHA256 = sha256.finish()
        let trailer = Trailer(
            manifestOffset: manifestOffset, manifestLength: offset - manifestOffset,
            archiveID: header.archiveID, bodyMD5: bodyMD5, bodySHA256: bodySHA256)
        try emit(trailer.encoded())
        return ArchiveSummary(size: offset, fileMD5: Hex.encode(md5.finish()), bodyMD5: Hex.encode(bodyMD5), bodySHA256: Hex.encode(bodySHA256))
    }

    private func emit(_ chunk: EncodedChunk) throws {
        try emit(chunk.frame.encoded())
        try emit(chunk.payload)
    }

    private func emit(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try emit($0) }
    }

    private func emit(_ bytes: UnsafeRawBufferPointer) throws {
        try sink.write(bytes)
        md5.update(bytes)
        sha256.update(bytes)
        offset += UInt64(bytes.count)
    }
}

/// What one stream turned into: its manifest fields.
public struct StreamSummary: Sendable {
    public let rawBytes: UInt64
    public let storedBytes: UInt64
    public let md5: String
    public let sha256: String
    public let chunks: [Manifest.Chunk]
}

/// Hashes, encodes and writes one stream's chunks, in order. Used by one
/// thread at a time; the chunks come already cut (a full chunk, or the
/// stream's last, shorter one).
public final class StreamEncoder {
    public let stream: UInt32
    private let archive: ArchiveWriter
    private let encoder: ChunkEncoder
    private let digests = StreamDigests()
    private var chunks: [Manifest.Chunk] = []
    private var rawBytes: UInt64 = 0
    private var storedBytes: UInt64 = 0

    public init(archive: ArchiveWriter, encoder: ChunkEncoder, stream: UInt32) {
        self.archive = archive
        self.encoder = encoder
        self.stream = stream
    }

    public func encode(_ raw: UnsafeRawBufferPointer) throws {
        digests.update(raw)
        let encoded = encoder.encode(raw, stream: stream, sequence: UInt64(chunks.count))
        let entry = try archive.write(encoded)
        chunks.append(entry)
        rawBytes += UInt64(raw.count)
        storedBytes += UInt64(entry.storedLength)
    }

    public func finish() -> StreamSummary {
        let (md5, sha256) = digests.finish()
        return StreamSummary(rawBytes: rawBytes, storedBytes: storedBytes, md5: md5, sha256: sha256, chunks: chunks)
    }
}

/// Hashes one stream as `StreamEncoder` would, without encoding or writing
/// it: what an incremental backup compares with the base's digests.
public final class StreamHasher {
    private let digests = StreamDigests()
    private var rawBytes: UInt64 = 0

    public init() {}

    public func update(_ raw: UnsafeRawBufferPointer) {
        digests.update(raw)
        rawBytes += UInt64(raw.count)
    }

    /// The stream's length and digests; it has no chunks, nothing was stored.
    public func finish() -> StreamSummary {
        let (md5, sha256) = digests.finish()
        return StreamSummary(rawBytes: rawBytes, storedBytes: 0, md5: md5, sha256: sha256, chunks: [])
    }
}

/// A chunk-sized buffer that fills up with a stream's bytes. Owns its memory.
public final class ChunkBuffer: @unchecked Sendable {
    public let capacity: Int
    public private(set) var count = 0
    private let storage: UnsafeMutableRawBufferPointer

    public init(capacity: Int) {
        self.capacity = capacity
        storage = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    public var isFull: Bool { count == capacity }
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[0..<count]) }
    public func reset() { count = 0 }

    /// Copies as much of `source` as fits; returns how much was taken.
    public func fill(from source: UnsafeRawBufferPointer) -> Int {
        let taken = min(source.count, capacity - count)
        UnsafeMutableRawBufferPointer(rebasing: storage[count..<count + taken])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<taken]))
        count += taken
        return taken
    }
}

/// Cuts one stream into chunks of exactly the chunk size and encodes them on
/// the calling thread: for streams that need no pipeline (the schema dump,
/// large objects, tests). Memory is one chunk buffer.
public final class StreamWriter {
    private let buffer: ChunkBuffer
    private let encoder: StreamEncoder

    public init(archive: ArchiveWriter, encoder: ChunkEncoder, stream: UInt32) {
        buffer = ChunkBuffer(capacity: Int(archive.header.chunkSize))
        self.encoder = StreamEncoder(archive: archive, encoder: encoder, stream: stream)
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        var remaining = bytes
        while !remaining.isEmpty {
            let taken = buffer.fill(from: remaining)
            remaining = UnsafeRawBufferPointer(rebasing: remaining[taken...])
            if buffer.isFull {
                try encoder.encode(buffer.bytes)
                buffer.reset()
            }
        }
    }

    public func finish() throws -> StreamSummary {
        if buffer.count > 0 {
            try encoder.encode(buffer.bytes)
            buffer.reset()
        }
        return encoder.finish()
    }
}
