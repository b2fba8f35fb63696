import CZstd

/// The zstd side of the chunk codec: one compression context and one
/// decompression context, each owned by a Swift object and freed with it.
/// Contexts are reused across chunks (allocation is the expensive part of
/// zstd), and every chunk is a complete, independent zstd frame.
public final class ZstdCompressor {
    public let level: Int32
    private let context: OpaquePointer

    public static let levelRange: ClosedRange<Int32> = ZSTD_minCLevel()...ZSTD_maxCLevel()

    public init(level: Int32) {
        precondition(Self.levelRange.contains(level), "zstd level \(level) outside \(Self.levelRange)")
        self.level = level
        guard let context = ZSTD_createCCtx() else { fatalError("ZSTD_createCCtx failed: out of memory") }
        self.context = context
        Self.check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level))
        // The frame records its content size, so a reader can cross-check it
        // against the raw length in the Arca frame header, and a checksum of
        // its content (format version 3), which decompression verifies: the
        // end-to-end check of every chunk, at no measurable cost (see the
        // micro benchmarks), where an MD5 of each stream was half of a
        // restore's own CPU.
        Self.check(ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1))
        Self.check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1))
    }

    deinit { ZSTD_freeCCtx(context) }

    public static func bound(_ rawLength: Int) -> Int { ZSTD_compressBound(rawLength) }

    /// Compresses `source` into `destination` (at least `bound(source.count)`
    /// bytes) and returns the compressed length.
    public func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int {
        precondition(destination.count >= Self.bound(source.count))
        let result = ZSTD_compress2(context, destination.baseAddress, destination.count, source.baseAddress, source.count)
        // With a destination of compressBound size, zstd cannot fail for any
        // input; an error here is a bug, not a data problem.
        Self.check(result)
        return result
    }

    private static func check(_ code: Int) {
        if ZSTD_isError(code) != 0 {
            fatalError("zstd: \(String(cString: ZSTD_getErrorName(code)))")
        }
    }
}

public final class ZstdDecompressor {
    private let context: OpaquePointer

    public init() {
        guard let context = ZSTD_createDCtx() else { fatalError("ZSTD_createDCtx failed: out of memory") }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    public enum Failure: Error, Equatable {
        case zstd(String)
        case lengthMismatch(expected: Int, actual: Int)
        case notOneFrame
        case noContentChecksum
        case contentChecksumMismatch
    }

    /// Decompresses exactly one zstd frame of `source` into `destination`,
    /// whose size is the expected raw length. Fails when the frame is corrupt,
    /// decodes to any other length, is followed by other bytes, or (with
    /// `requiringChecksum`) carries no content checksum; a checksum that is
    /// present is always verified.
    public func decompress(
        _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer, requiringChecksum: Bool
    ) -> Result<Void, Failure> {
        let frameLength = ZSTD_findFrameCompressedSize(source.baseAddress, source.count)
        if ZSTD_isError(frameLength) != 0 {
            return .failure(.zstd(String(cString: ZSTD_getErrorName(frameLength))))
        }
        guard frameLength == source.count else { return .failure(.notOneFrame) }
        if requiringChecksum, !Self.hasContentChecksum(source) { return .failure(.noContentChecksum) }
        let declared = ZSTD_getFrameContentSize(source.baseAddress, source.count)
        // ZSTD_CONTENTSIZE_UNKNOWN / _ERROR are the two largest UInt64 values.
        if declared < UInt64.max - 1, declared != UInt64(destination.count) {
            return .failure(.lengthMismatch(expected: destination.count, actual: Int(clamping: declared)))
        }
        let result = ZSTD_decompressDCtx(context, destination.baseAddress, destination.count, source.baseAddress, source.count)
        if ZSTD_isError(result) != 0 {
            if ZSTD_getErrorCode(result) == ZSTD_error_checksum_wrong { return .failure(.contentChecksumMismatch) }
            // "Destination buffer is too small" means the frame holds more
            // than the header promised.
            return .failure(.zstd(String(cString: ZSTD_getErrorName(result))))
        }
        guard result == destination.count else {
            return .failure(.lengthMismatch(expected: destination.count, actual: result))
        }
        return .success(())
    }

    /// Whether `frame`, a whole zstd frame, ends with a content checksum:
    /// bit 2 of the Frame_Header_Descriptor, the byte after the magic
    /// number (RFC 8878, section 3.1.1.1.1).
    static func hasContentChecksum(_ frame: UnsafeRawBufferPointer) -> Bool {
        frame.count > 4 && UInt32(littleEndian: frame.loadUnaligned(as: UInt32.self)) == ZSTD_MAGICNUMBER && frame[4] & 0x04 != 0
    }
}
