/// Turns a stored frame back into raw bytes after checking it against what
/// the manifest says it should be: the payload's authentication tag
/// (encrypted archives) or its CRC, then decompression, which verifies the
/// content checksum of version-3 archives. Owns a decompression context, a
/// cipher and its output buffers; one decoder per thread.
public final class ChunkDecoder {
    private let decompressor = ZstdDecompressor()
    private let cipher: FrameCipher?
    /// The archive's file header: frame headers are read against it, and
    /// from version 3 on a zstd payload without a content checksum is rejected.
    private let archive: FileHeader
    private var raw: UnsafeMutableRawBufferPointer
    private var opened: UnsafeMutableRawBufferPointer

    public init(maximumRawLength: Int, archive: FileHeader, dataKey: DataKey? = nil) {
        raw = .allocate(byteCount: max(maximumRawLength, 1), alignment: 16)
        cipher = dataKey.map(FrameCipher.init)
        self.archive = archive
        opened = .allocate(byteCount: dataKey == nil ? 1 : max(ZstdCompressor.bound(maximumRawLength), 1), alignment: 16)
    }

    deinit {
        raw.deallocate()
        opened.deallocate()
    }

    /// Checks `frame` (frame header and payload, as read from `offset`) against
    /// `expected` and returns the raw bytes, valid until the next call.
    public func decode(
        frame: UnsafeRawBufferPointer, expected: Manifest.Chunk, stream: UInt32, sequence: UInt64, location: ArchiveLocation
    ) throws -> UnsafeRawBufferPointer {
        let headerBytes = Array(frame[0..<ArchiveFormat.frameHeaderLength])
        let header: FrameHeader
        do {
            header = try FrameHeader.decode(headerBytes, at: expected.offset, in: archive)
        } catch let ArchiveError.checksumMismatch(_, recorded, computed) {
            throw ArchiveError.checksumMismatch(location, expected: recorded, actual: computed)
        }
        guard header.type == .dataChunk, header.streamID == stream, header.sequence == sequence,
              header.rawLength == expected.rawLength, header.storedLength == expected.storedLength,
              header.payloadCRC == expected.crc32c
        else {
            throw ArchiveError.indexMismatch(location, "the frame header (type \(header.type), stream \(header.streamID), sequence \(header.sequence), lengths \(header.rawLength)/\(header.storedLength)) differs from the manifest entry")
        }
        let payload = UnsafeRawBufferPointer(rebasing: frame[ArchiveFormat.frameHeaderLength...])
        precondition(payload.count == Int(header.storedLength))
        return try unpack(payload, frame: header, location: location)
    }

    /// Authentication or CRC, then decompression, of a payload whose frame
    /// header was already decoded and checked. A sealed payload's tag covers
    /// every byte (and damage is reported as what it means: the chunk is not
    /// authentic), so its CRC would be a second pass over the chunk for
    /// nothing; a plain payload has its CRC.
    func unpack(_ payload: UnsafeRawBufferPointer, frame: FrameHeader, location: ArchiveLocation) throws -> UnsafeRawBufferPointer {
        guard let cipher else {
            let crc = CRC32C.checksum(payload)
            guard crc == frame.payloadCRC else { throw ArchiveError.checksumMismatch(location, expected: frame.payloadCRC, actual: crc) }
            return try decompress(payload, codec: frame.codec, rawLength: Int(frame.rawLength), location: location)
        }
        let length = payload.count - FrameCipher.overhead
        if length > opened.count {
            opened.deallocate()
            opened = .allocate(byteCount: length, alignment: 16)
        }
        guard cipher.open(payload, frame: frame, into: opened) else { throw ArchiveError.authenticationFailed(location) }
        return try decompress(UnsafeRawBufferPointer(rebasing: opened[0..<length]), codec: frame.codec, rawLength: Int(frame.rawLength), location: location)
    }

    func decompress(_ payload: UnsafeRawBufferPointer, codec: Codec, rawLength: Int, location: ArchiveLocation) throws -> UnsafeRawBufferPointer {
        switch codec {
        case .stored:
            return payload
        case .zstd:
            if rawLength > raw.count {
                raw.deallocate()
                raw = .allocate(byteCount: rawLength, alignment: 16)
            }
            let target = UnsafeMutableRawBufferPointer(rebasing: raw[0..<rawLength])
            switch decompressor.decompress(payload, into: target, requiringChecksum: archive.hasContentChecksums) {
            case .success: return UnsafeRawBufferPointer(target)
            case .failure(.zstd(let message)): throw ArchiveError.decompressionFailed(location, "zstd: \(message)")
            case .failure(.lengthMismatch(let expected, let actual)):
                throw ArchiveError.decompressionFailed(location, "the frame decodes to \(actual) bytes, not \(expected)")
            case .failure(.notOneFrame): throw ArchiveError.decompressionFailed(location, "the payload is not exactly one zstd frame")
            case .failure(.noContentChecksum): throw ArchiveError.decompressionFailed(location, "the zstd frame carries no content checksum, which this format version requires")
            case .failure(.contentChecksumMismatch):
                throw ArchiveError.decompressionFailed(location, "the decompressed bytes do not match the frame's content checksum")
            }
        }
    }
}

/// What can be read of an archive without its key: the header, the
/// trailer, and (encrypted archives) the key envelope (FORMAT.md, "How a
/// reader proceeds", steps 1 to 3).
public struct ArchiveOutline: Sendable {
    public let header: FileHeader
    public let trailer: Trailer
    public let keyEnvelope: KeyEnvelope?
    public let size: UInt64

    public init(source: ByteSource) throws {
        size = source.size
        // Magic first: a file that is not an archive at all should say so,
        // not that it is a truncated one.
        if size >= UInt64(ArchiveFormat.magic.count) {
            let magic = try source.read(at: 0, count: ArchiveFormat.magic.count, what: "the magic bytes")
            guard magic == ArchiveFormat.magic else { throw ArchiveError.badMagic(found: magic) }
        }
        guard size >= ArchiveFormat.minimumFileLength else {
            throw ArchiveError.truncated(what: "an archive", offset: 0, needed: ArchiveFormat.minimumFileLength, fileSize: size)
        }
        let headerBytes = try source.read(at: 0, count: ArchiveFormat.headerLength, what: "the file header")
        header = try FileHeader.decode(headerBytes)
        let trailerOffset = size - UInt64(ArchiveFormat.trailerLength)
        let trailerBytes = try source.read(at: trailerOffset, count: ArchiveFormat.trailerLength, what: "the trailer")
        trailer = try Trailer.decode(trailerBytes, fileSize: size, header: header)
        guard header.isEncrypted else {
            keyEnvelope = nil
            return
        }
        guard trailer.manifestOffset >= header.dataOffset else {
            throw ArchiveError.badTrailer("the manifest offset \(trailer.manifestOffset) lies inside the key envelope")
        }
        let offset = UInt64(ArchiveFormat.headerLength)
        let frameBytes = try source.read(at: offset, count: ArchiveFormat.frameHeaderLength, what: "the key envelope")
        let frame: FrameHeader
        do {
            frame = try FrameHeader.decode(frameBytes, at: offset, in: header)
        } catch let ArchiveError.checksumMismatch(_, recorded, computed) {
            throw ArchiveError.checksumMismatch(.keyEnvelope, expected: recorded, actual: computed)
        }
        guard frame.type == .keyEnvelope else {
            throw ArchiveError.malformed(.keyEnvelope, "the frame after the header of an encrypted archive is a \(frame.type) frame")
        }
        let payload = try source.read(at: offset + UInt64(ArchiveFormat.frameHeaderLength), count: KeyEnvelope.length, what: "the key envelope")
        let crc = CRC32C.checksum(payload)
        guard crc == frame.payloadCRC else { throw ArchiveError.checksumMismatch(.keyEnvelope, expected: frame.payloadCRC, actual: crc) }
        keyEnvelope = try KeyEnvelope.decode(payload)
    }
}

/// Opens an archive for reading: validates the header, the trailer, the key
/// envelope and the manifest (FORMAT.md, "How a reader proceeds", steps 1
/// to 5) and then reads any table's chunks by offset.
///
/// Immutable after `init`; several threads may read different streams at
/// once when the source supports concurrent reads (a file read with `pread`
/// does), each with its own `ChunkDecoder` from `makeDecoder()`.
public final class ArchiveReader: @unchecked Sendable {
    public let source: ByteSource
    public let header: FileHeader
    public let trailer: Trailer
    public let manifest: Manifest
    public let keyEnvelope: KeyEnvelope?
    /// The data key of an encrypted archive, unwrapped with the key given.
    public let dataKey: DataKey?

    /// `key` is needed only when the archive is encrypted; a wrong one is
    /// rejected here, before any data is read.
    public convenience init(source: ByteSource, key: ArchiveKey? = nil) throws {
        try self.init(source: source, outline: try ArchiveOutline(source: source), key: key)
    }

    /// Continues from an outline already read (listing reads it first to
    /// show encrypted archives without their key).
    public init(source: ByteSource, outline: ArchiveOutline, key: ArchiveKey?) throws {
        self.source = source
        header = outline.header
        trailer = outline.trailer
        keyEnvelope = outline.keyEnvelope
        dataKey = try outline.keyEnvelope.map { try $0.open(with: key, header: outline.header) }

        // The trailer guarantees the manifest frame lies inside the file; its
        // length is further bounded by the format's manifest limit.
        let frameLength = trailer.manifestLength
        let limit = UInt64(ArchiveFormat.frameHeaderLength) + UInt64(ZstdCompressor.bound(Int(ArchiveFormat.maximumManifestLength))) + UInt64(header.sealOverhead)
        guard frameLength <= limit else {
            throw ArchiveError.limitExceeded(.manifest, what: "the manifest frame length", value: frameLength, limit: limit)
        }
        let frame = try source.read(at: trailer.manifestOffset, count: Int(frameLength), what: "the manifest")
        manifest = try Self.decodeManifest(frame: frame, offset: trailer.manifestOffset, header: header, dataKey: dataKey)
    }

    public func makeDecoder() -> ChunkDecoder {
        ChunkDecoder(maximumRawLength: Int(header.chunkSize), archive: header, dataKey: dataKey)
    }

    static func decodeManifest(frame: [UInt8], offset: UInt64, header: FileHeader, dataKey: DataKey?) throws -> Manifest {
        let frameHeader: FrameHeader
        do {
            frameHeader = try FrameHeader.decode(Array(frame[0..<ArchiveFormat.frameHeaderLength]), at: offset, in: header)
        } catch let ArchiveError.checksumMismatch(_, recorded, computed) {
            throw ArchiveError.checksumMismatch(.manifest, expected: recorded, actual: computed)
        }
        guard frameHeader.type == .manifest else {
            throw ArchiveError.badTrailer("the frame at offset \(offset) is not the manifest")
        }
        guard UInt64(ArchiveFormat.frameHeaderLength) + UInt64(frameHeader.storedLength) == UInt64(frame.count) else {
            throw ArchiveError.badTrailer("the manifest frame's length (\(frameHeader.storedLength) + 32) differs from the trailer's (\(frame.count))")
        }
        return try frame.withUnsafeBytes { bytes in
            let payload = UnsafeRawBufferPointer(rebasing: bytes[ArchiveFormat.frameHeaderLength...])
            let decoder = ChunkDecoder(maximumRawLength: Int(frameHeader.rawLength), archive: header, dataKey: dataKey)
            let json = try decoder.unpack(payload, frame: frameHeader, location: .manifest)
            return try Manifest.decode(json, header: header, manifestOffset: offset)
        }
    }

    static func location(of stream: some StreamDescriptor, named name: String, sequence: Int) -> ArchiveLocation {
        .chunk(stream: name, sequence: UInt64(sequence), offset: stream.chunks[sequence].offset)
    }

    /// What a read checks beyond each chunk's frame header, CRC-32C or
    /// authentication tag, and decompression, which it always checks.
    public enum StreamCheck: Sendable {
        /// Every chunk's raw bytes against the content checksum inside its
        /// zstd frame (a stored chunk's raw bytes are its CRC-checked
        /// payload): end to end, chunk by chunk, at no cost beyond the
        /// decompression. An archive older than version 3 has no content
        /// checksums, so its streams' MD5 is recomputed instead. Restore's
        /// check: the MD5 pass was half of its CPU.
        case chunkContent
        /// Also each stream's MD5 and SHA-256, as `verify` does.
        case streamDigests
    }

    /// Streams a table's rows (all its parts, in order) to `body`.
    public func readTable(
        _ table: Manifest.Table, decoder: ChunkDecoder? = nil, checking: StreamCheck = .streamDigests,
        _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let decoder = decoder ?? makeDecoder()
        for (index, part) in table.parts.enumerated() {
            try readStream(part, named: table.displayName(part: index), decoder: decoder, checking: checking, body)
        }
    }

    /// Streams every large object to `handle`, in the archive's order
    /// (ascending OIDs), from either layout: a stream per object (versions
    /// 1 to 3) or the records of the large-object stream (version 4), whose
    /// framing is checked as it is read.
    public func readLargeObjects(
        decoder: ChunkDecoder? = nil, checking: StreamCheck = .streamDigests, _ handle: (LargeObjectEvent) throws -> Void
    ) throws {
        let decoder = decoder ?? makeDecoder()
        if let data = manifest.largeObjectData {
            var records = LargeObjectRecords(data, chunkSize: header.chunkSize)
            try readStream(data, named: LargeObjectRecords.streamName, decoder: decoder, checking: checking) { raw in
                try records.feed(raw, handle)
            }
            try records.finish()
            return
        }
        for object in manifest.largeObjects ?? [] {
            try handle(.begin(object.oid))
            try readStream(object, named: "large object \(object.oid)", decoder: decoder, checking: checking) { try handle(.bytes($0)) }
            try handle(.end(object.oid))
        }
    }

    /// Hands each record of a change segment's stream (one pgoutput
    /// message) to `handle`, in order, its framing checked as it is read.
    public func readChanges(checking: StreamCheck = .streamDigests, _ handle: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let data = manifest.changes else { return }
        var records = ChangeRecords(data)
        try readStream(data, named: Manifest.ChangeData.streamName, checking: checking) { raw in
            try records.feed(raw, handle)
        }
        try records.finish()
    }

    /// Streams one stream's raw bytes (a table's COPY text, the schema dump, a
    /// large object) to `body`, chunk by chunk, reading only its chunks.
    /// Everything `checking` asks for is checked before this returns (the
    /// stream's digests after its last chunk): a caller that commits only
    /// after a normal return never commits damaged data.
    public func readStream(
        _ table: some StreamDescriptor, named name: String, decoder: ChunkDecoder? = nil, checking: StreamCheck = .streamDigests,
        _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let decoder = decoder ?? makeDecoder()
        let digestsNeeded = checking == .streamDigests || !header.hasContentChecksums
        let md5Digest = digestsNeeded ? Digest(.md5) : nil
        // SHA-256 only when asked: as a fallback, MD5 alone checks the stream.
        let sha256Digest = checking == .streamDigests ? Digest(.sha256) : nil
        // One buffer for the stream's largest frame: a new one per chunk
        // (their lengths differ) would hold two frames at once while it is
        // replaced, and fault in a chunk's pages each time.
        let longest = table.chunks.map { ArchiveFormat.frameHeaderLength + Int($0.storedLength) }.max() ?? 0
        var frame = [UInt8](repeating: 0, count: longest)
        for (sequence, chunk) in table.chunks.enumerated() {
            let length = ArchiveFormat.frameHeaderLength + Int(chunk.storedLength)
            try frame.withUnsafeMutableBytes { try source.read(at: chunk.offset, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<length])) }
            try frame.withUnsafeBytes { whole in
                let raw = try decoder.decode(
                    frame: UnsafeRawBufferPointer(rebasing: whole[0..<length]), expected: chunk, stream: table.stream, sequence: UInt64(sequence),
                    location: Self.location(of: table, named: name, sequence: sequence))
                md5Digest?.update(raw)
                sha256Digest?.update(raw)
                try body(raw)
            }
        }
        if let md5Digest {
            let md5 = Hex.encode(md5Digest.finish())
            guard md5 == table.md5 else { throw ArchiveError.digestMismatch(.stream(name), algorithm: "md5", expected: table.md5, actual: md5) }
        }
        if let sha256Digest {
            let sha256 = Hex.encode(sha256Digest.finish())
            guard sha256 == table.sha256 else {
                throw ArchiveError.digestMismatch(.stream(name), algorithm: "sha256", expected: table.sha256, actual: sha256)
            }
        }
    }
}
