/// Where an archive is written: a file, a pipe, an upload. The format code
/// never opens anything itself; the engine hands it a sink.
public protocol ByteSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// Where an archive is read from, by offset (a file, a ranged HTTP GET).
public protocol ByteSource: AnyObject {
    var size: UInt64 { get }
    /// Fills `buffer` with the bytes at `offset`; throws when fewer exist.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws
}

extension ByteSource {
    /// Reads `count` bytes at `offset` after checking they lie inside the
    /// source, so a corrupt length can never cause a large allocation.
    public func read(at offset: UInt64, count: Int, what: String) throws -> [UInt8] {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(count))
        guard !overflow, end <= size else {
            throw ArchiveError.truncated(what: what, offset: offset, needed: UInt64(count), fileSize: size)
        }
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        return bytes
    }
}

/// An in-memory sink, for tests and for small archives built in memory.
public final class MemorySink: ByteSink {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public func write(_ bytes: UnsafeRawBufferPointer) throws { self.bytes.append(contentsOf: bytes) }
}

/// An in-memory source over a byte array.
public final class MemorySource: ByteSource, Sendable {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var size: UInt64 { UInt64(bytes.count) }
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard offset <= UInt64(bytes.count), UInt64(buffer.count) <= UInt64(bytes.count) - offset else {
            throw ArchiveError.truncated(what: "read", offset: offset, needed: UInt64(buffer.count), fileSize: size)
        }
        bytes.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[Int(offset)..<Int(offset) + buffer.count]))
        }
    }
}

/// Little-endian encoding into a fixed-size structure.
struct LittleEndianWriter {
    private(set) var bytes: [UInt8]

    init(capacity: Int) { bytes = []; bytes.reserveCapacity(capacity) }

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func i8(_ value: Int8) { bytes.append(UInt8(bitPattern: value)) }
    mutating func u16(_ value: UInt16) { append(value) }
    mutating func u32(_ value: UInt32) { append(value) }
    mutating func u64(_ value: UInt64) { append(value) }
    mutating func raw(_ value: [UInt8]) { bytes.append(contentsOf: value) }
    mutating func zeros(_ count: Int) { bytes.append(contentsOf: repeatElement(0, count: count)) }

    /// Appends the CRC-32C of everything written so far.
    mutating func crc() { u32(CRC32C.checksum(bytes)) }

    private mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
}

/// Little-endian decoding from a structure already known to be long enough.
struct LittleEndianReader {
    let bytes: [UInt8]
    private(set) var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func u8() -> UInt8 { defer { position += 1 }; return bytes[position] }
    mutating func i8() -> Int8 { Int8(bitPattern: u8()) }
    mutating func u16() -> UInt16 { read() }
    mutating func u32() -> UInt32 { read() }
    mutating func u64() -> UInt64 { read() }
    mutating func raw(_ count: Int) -> [UInt8] {
        defer { position += count }
        return Array(bytes[position..<position + count])
    }

    /// True when the next `count` bytes are all zero; consumes them.
    mutating func zeros(_ count: Int) -> Bool { raw(count).allSatisfy { $0 == 0 } }

    /// The CRC-32C of the bytes before the current position.
    var crcOfPrefix: UInt32 { CRC32C.checksum(Array(bytes[0..<position])) }

    private mutating func read<T: FixedWidthInteger>() -> T {
        var value = T.zero
        withUnsafeMutableBytes(of: &value) { target in
            bytes.withUnsafeBytes { source in
                target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[position..<position + MemoryLayout<T>.size]))
            }
        }
        position += MemoryLayout<T>.size
        return T(littleEndian: value)
    }
}
