/// Constants of the format (FORMAT.md). Version 2 added encryption (a
/// version 1 archive is a version 2 archive without it); version 3 put a
/// content checksum in every zstd payload; version 4 put all large objects
/// in one stream; version 5 lets a table's parts be stored in another
/// archive (incremental backups); version 6 lets a table's rows be in
/// COPY's binary format (`Manifest.CopyFormat`). All six are read.
public enum ArchiveFormat {
    public static let version: UInt16 = 6
    public static let readableVersions: ClosedRange<UInt16> = 1...6
    public static let magic: [UInt8] = [0x89, 0x41, 0x52, 0x43, 0x41, 0x0D, 0x0A, 0x1A]
    public static let endMagic: [UInt8] = Array("ARCAEND".utf8) + [0x1A]
    public static let headerLength = 64
    public static let frameHeaderLength = 32
    public static let trailerLength = 96
    public static let minimumFileLength = UInt64(headerLength + frameHeaderLength + trailerLength)
    public static let chunkSizeRange: ClosedRange<UInt32> = 4096...(256 << 20)
    public static let defaultChunkSize: UInt32 = 4 << 20
    public static let maximumManifestLength: UInt32 = 1 << 30
    /// A compressed manifest may expand to at most this many times its
    /// stored length (or to `manifestExpansionFloor`, whichever is larger),
    /// so that a small file cannot make a reader allocate the 1 GiB the
    /// frame header may declare. Real manifests compress about 5 to 160 times
    /// (an index of 50,000 empty tables: 155×); zstd's limit is ~32,000×.
    public static let maximumManifestExpansion: UInt64 = 1024
    public static let manifestExpansionFloor: UInt64 = 1 << 20

    /// The largest raw length a zstd manifest of `storedLength` payload bytes
    /// (its codec's output, tag excluded) may declare.
    public static func manifestRawLimit(compressedLength: UInt32) -> UInt64 {
        min(UInt64(maximumManifestLength), max(manifestExpansionFloor, UInt64(compressedLength) * maximumManifestExpansion))
    }
    public static let manifestStreamID: UInt32 = 0xFFFF_FFFF
    public static let keyEnvelopeStreamID: UInt32 = 0xFFFF_FFFE
    /// Header flag bit 0: chunks and manifest are sealed, a key envelope follows the header.
    public static let encryptedFlag: UInt32 = 1
}

/// The 16 random bytes that tie a header, manifest and trailer together.
public struct ArchiveID: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16)
        self.bytes = bytes
    }

    public static func random() -> ArchiveID {
        var generator = SystemRandomNumberGenerator()
        return ArchiveID(bytes: (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    public var description: String { Hex.encode(bytes) }
}

public enum Codec: UInt8, Sendable {
    case stored = 0
    case zstd = 1
}

public enum FrameType: UInt8, Sendable {
    case dataChunk = 1
    case manifest = 2
    case keyEnvelope = 3
}

// MARK: - File header

public struct FileHeader: Sendable, Equatable {
    public var chunkSize: UInt32
    public var compression: Codec
    public var compressionLevel: Int8
    public var archiveID: ArchiveID
    public var isEncrypted: Bool
    /// The version read from the file; a writer always writes the current one
    /// (tests set an older one to write the archives older writers made).
    public internal(set) var version: UInt16 = ArchiveFormat.version

    public init(chunkSize: UInt32, compression: Codec, compressionLevel: Int8, archiveID: ArchiveID, isEncrypted: Bool = false) {
        self.chunkSize = chunkSize
        self.compression = compression
        self.compressionLevel = compressionLevel
        self.archiveID = archiveID
        self.isEncrypted = isEncrypted
    }

    /// Where the first data frame may start: after the header, and after the
    /// key envelope frame when the archive is encrypted.
    public var dataOffset: UInt64 {
        UInt64(ArchiveFormat.headerLength) + (isEncrypted ? UInt64(ArchiveFormat.frameHeaderLength + KeyEnvelope.length) : 0)
    }

    /// Whether every zstd payload carries a content checksum (version 3 on),
    /// so that decompressing a chunk checks its raw bytes end to end.
    public var hasContentChecksums: Bool { version >= 3 }

    /// Bytes a sealed payload adds to its plaintext.
    public var sealOverhead: UInt32 { isEncrypted ? UInt32(FrameCipher.overhead) : 0 }

    public func encoded() -> [UInt8] {
        var writer = LittleEndianWriter(capacity: ArchiveFormat.headerLength)
        writer.raw(ArchiveFormat.magic)
        writer.u16(version)
        writer.u16(UInt16(ArchiveFormat.headerLength))
        writer.u32(isEncrypted ? ArchiveFormat.encryptedFlag : 0)
        writer.u32(chunkSize)
        writer.u8(compression.rawValue)
        writer.i8(compressionLevel)
        writer.u16(0)
        writer.raw(archiveID.bytes)
        writer.zeros(20)
        writer.crc()
        return writer.bytes
    }

    /// Validates in the order FORMAT.md gives: magic, version, then the rest.
    public static func decode(_ bytes: [UInt8]) throws -> FileHeader {
        precondition(bytes.count == ArchiveFormat.headerLength)
        var reader = LittleEndianReader(bytes)
        let magic = reader.raw(8)
        guard magic == ArchiveFormat.magic else { throw ArchiveError.badMagic(found: magic) }
        let version = reader.u16()
        guard ArchiveFormat.readableVersions.contains(version) else { throw ArchiveError.unsupportedVersion(version) }
        let headerLength = reader.u16()
        let flags = reader.u32()
        let chunkSize = reader.u32()
        let compression = reader.u8()
        let level = reader.i8()
        let reserved16 = reader.u16()
        let archiveID = ArchiveID(bytes: reader.raw(16))
        let reservedTail = reader.zeros(20)
        let computed = reader.crcOfPrefix
        let recorded = reader.u32()
        guard computed == recorded else {
            throw ArchiveError.checksumMismatch(.header, expected: recorded, actual: computed)
        }
        guard headerLength == UInt16(ArchiveFormat.headerLength) else {
            throw ArchiveError.malformed(.header, "header length is \(headerLength), expected \(ArchiveFormat.headerLength)")
        }
        guard reserved16 == 0, reservedTail else {
            throw ArchiveError.malformed(.header, "a reserved field is not zero")
        }
        let knownFlags = version >= 2 ? ArchiveFormat.encryptedFlag : 0
        guard flags & ~knownFlags == 0 else {
            throw ArchiveError.malformed(.header, "unknown flags \(hex32(flags & ~knownFlags)) are set")
        }
        guard ArchiveFormat.chunkSizeRange.contains(chunkSize) else {
            throw ArchiveError.limitExceeded(.header, what: "the chunk size", value: UInt64(chunkSize), limit: UInt64(ArchiveFormat.chunkSizeRange.upperBound))
        }
        guard let codec = Codec(rawValue: compression) else {
            throw ArchiveError.malformed(.header, "unknown compression \(compression)")
        }
        var header = FileHeader(
            chunkSize: chunkSize, compression: codec, compressionLevel: level, archiveID: archiveID,
            isEncrypted: flags & ArchiveFormat.encryptedFlag != 0)
        header.version = version
        return header
    }
}

// MARK: - Frame header

public struct FrameHeader: Sendable, Equatable {
    /// The bytes a sealed payload authenticates: everything up to and
    /// including the stored length (not the CRCs, which cover the sealed bytes).
    static let authenticatedPrefixLength = 24

    public var type: FrameType
    public var codec: Codec
    public var streamID: UInt32
    public var sequence: UInt64
    public var rawLength: UInt32
    public var storedLength: UInt32
    public var payloadCRC: UInt32

    public init(type: FrameType, codec: Codec, streamID: UInt32, sequence: UInt64, rawLength: UInt32, storedLength: UInt32, payloadCRC: UInt32) {
        self.type = type
        self.codec = codec
        self.streamID = streamID
        self.sequence = sequence
        self.rawLength = rawLength
        self.storedLength = storedLength
        self.payloadCRC = payloadCRC
    }

    public func encoded() -> [UInt8] {
        var writer = LittleEndianWriter(capacity: ArchiveFormat.frameHeaderLength)
        writer.u8(type.rawValue)
        writer.u8(codec.rawValue)
        writer.u16(0)
        writer.u32(streamID)
        writer.u64(sequence)
        writer.u32(rawLength)
        writer.u32(storedLength)
        writer.u32(payloadCRC)
        writer.crc()
        return writer.bytes
    }

    /// Decodes and checks the header on its own: CRC, reserved field, known
    /// type and codec, and the length rules that need only the file header.
    public static func decode(_ bytes: [UInt8], at offset: UInt64, in archive: FileHeader) throws -> FrameHeader {
        precondition(bytes.count == ArchiveFormat.frameHeaderLength)
        var reader = LittleEndianReader(bytes)
        let type = reader.u8()
        let codec = reader.u8()
        let reserved = reader.u16()
        let streamID = reader.u32()
        let sequence = reader.u64()
        let rawLength = reader.u32()
        let storedLength = reader.u32()
        let payloadCRC = reader.u32()
        let computed = reader.crcOfPrefix
        let recorded = reader.u32()
        let location = ArchiveLocation.frame(offset: offset)
        guard computed == recorded else { throw ArchiveError.checksumMismatch(location, expected: recorded, actual: computed) }
        guard reserved == 0 else { throw ArchiveError.malformed(location, "a reserved field is not zero") }
        guard let frameType = FrameType(rawValue: type) else { throw ArchiveError.malformed(location, "unknown frame type \(type)") }
        guard let frameCodec = Codec(rawValue: codec) else { throw ArchiveError.malformed(location, "unknown codec \(codec)") }
        let header = FrameHeader(
            type: frameType, codec: frameCodec, streamID: streamID, sequence: sequence,
            rawLength: rawLength, storedLength: storedLength, payloadCRC: payloadCRC)
        try header.checkLengths(at: location, in: archive)
        return header
    }

    func checkLengths(at location: ArchiveLocation, in archive: FileHeader) throws {
        var overhead = archive.sealOverhead
        switch type {
        case .dataChunk:
            guard rawLength >= 1 else { throw ArchiveError.malformed(location, "a data chunk has raw length 0") }
            guard rawLength <= archive.chunkSize else {
                throw ArchiveError.limitExceeded(location, what: "the raw length", value: UInt64(rawLength), limit: UInt64(archive.chunkSize))
            }
        case .manifest:
            guard streamID == ArchiveFormat.manifestStreamID, sequence == 0 else {
                throw ArchiveError.malformed(location, "the manifest frame has stream \(streamID), sequence \(sequence)")
            }
            guard rawLength <= ArchiveFormat.maximumManifestLength else {
                throw ArchiveError.limitExceeded(location, what: "the manifest length", value: UInt64(rawLength), limit: UInt64(ArchiveFormat.maximumManifestLength))
            }
            if codec == .zstd, storedLength > overhead {
                let limit = ArchiveFormat.manifestRawLimit(compressedLength: storedLength - overhead)
                guard UInt64(rawLength) <= limit else {
                    throw ArchiveError.limitExceeded(location, what: "the manifest's decompressed length", value: UInt64(rawLength), limit: limit)
                }
            }
        case .keyEnvelope:
            guard archive.isEncrypted else { throw ArchiveError.malformed(location, "a key envelope in an archive that is not encrypted") }
            guard streamID == ArchiveFormat.keyEnvelopeStreamID, sequence == 0, codec == .stored, rawLength == UInt32(KeyEnvelope.length) else {
                throw ArchiveError.malformed(location, "the key envelope frame has stream \(streamID), sequence \(sequence), codec \(codec), length \(rawLength)")
            }
            overhead = 0  // the envelope is not sealed with the data key
        }
        switch codec {
        case .stored:
            guard UInt64(storedLength) == UInt64(rawLength) + UInt64(overhead) else {
                throw ArchiveError.malformed(location, "a stored frame has stored length \(storedLength) and raw length \(rawLength)")
            }
        case .zstd:
            let bound = UInt64(ZstdCompressor.bound(Int(rawLength))) + UInt64(overhead)
            guard UInt64(storedLength) <= bound else {
                throw ArchiveError.limitExceeded(location, what: "the stored length", value: UInt64(storedLength), limit: bound)
            }
            guard storedLength > overhead else { throw ArchiveError.malformed(location, "a sealed frame is shorter than its tag") }
        }
    }
}

// MARK: - Trailer

public struct Trailer: Sendable, Equatable {
    public var manifestOffset: UInt64
    public var manifestLength: UInt64
    public var archiveID: ArchiveID
    public var bodyMD5: [UInt8]
    public var bodySHA256: [UInt8]

    public init(manifestOffset: UInt64, manifestLength: UInt64, archiveID: ArchiveID, bodyMD5: [UInt8], bodySHA256: [UInt8]) {
        self.manifestOffset = manifestOffset
        self.manifestLength = manifestLength
        self.archiveID = archiveID
        self.bodyMD5 = bodyMD5
        self.bodySHA256 = bodySHA256
    }

    public func encoded() -> [UInt8] {
        var writer = LittleEndianWriter(capacity: ArchiveFormat.trailerLength)
        writer.u64(manifestOffset)
        writer.u64(manifestLength)
        writer.raw(archiveID.bytes)
        writer.raw(bodyMD5)
        writer.raw(bodySHA256)
        writer.u32(0)
        writer.crc()
        writer.raw(ArchiveFormat.endMagic)
        return writer.bytes
    }

    /// Decodes the last 96 bytes of a file of `fileSize` bytes and checks that
    /// the manifest it points to ends exactly where the trailer starts.
    public static func decode(_ bytes: [UInt8], fileSize: UInt64, header: FileHeader) throws -> Trailer {
        precondition(bytes.count == ArchiveFormat.trailerLength)
        guard Array(bytes[88..<96]) == ArchiveFormat.endMagic else {
            throw ArchiveError.badTrailer("the end magic is missing (found \(Hex.encode(bytes[88..<96])))")
        }
        var reader = LittleEndianReader(bytes)
        let manifestOffset = reader.u64()
        let manifestLength = reader.u64()
        let archiveID = ArchiveID(bytes: reader.raw(16))
        let md5 = reader.raw(16)
        let sha256 = reader.raw(32)
        let reserved = reader.u32()
        let computed = reader.crcOfPrefix
        let recorded = reader.u32()
        guard computed == recorded else { throw ArchiveError.checksumMismatch(.trailer, expected: recorded, actual: computed) }
        guard reserved == 0 else { throw ArchiveError.malformed(.trailer, "a reserved field is not zero") }
        guard archiveID == header.archiveID else {
            throw ArchiveError.badTrailer("it belongs to archive \(archiveID), not to \(header.archiveID)")
        }
        let trailerOffset = fileSize - UInt64(ArchiveFormat.trailerLength)
        let (end, overflow) = manifestOffset.addingReportingOverflow(manifestLength)
        guard manifestOffset >= UInt64(ArchiveFormat.headerLength),
              manifestLength >= UInt64(ArchiveFormat.frameHeaderLength),
              !overflow, end == trailerOffset
        else {
            throw ArchiveError.badTrailer("the manifest it points to (offset \(manifestOffset), length \(manifestLength)) does not end where the trailer starts (offset \(trailerOffset))")
        }
        return Trailer(manifestOffset: manifestOffset, manifestLength: manifestLength, archiveID: archiveID, bodyMD5: md5, bodySHA256: sha256)
    }
}
