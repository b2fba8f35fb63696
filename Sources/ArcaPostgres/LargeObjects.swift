import CLibpq

/// Large objects through libpq's `lo_*` client functions: binary, in pieces
/// of the caller's size, inside the caller's transaction (a read descriptor
/// sees the transaction's snapshot).
extension PostgresConnection {
    // libpq-fs.h
    private static let readMode: Int32 = 0x40000
    private static let writeMode: Int32 = 0x20000

    /// Hands the contents of large object `oid` to `body` in pieces of at most `pieceSize` bytes.
    public func readLargeObject(_ oid: UInt32, pieceSize: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let during = "reading large object \(oid)"
        let descriptor = lo_open(connectionHandle, oid, Self.readMode)
        guard descriptor >= 0 else { throw lostOrFailed(during: during) }
        defer { _ = lo_close(connectionHandle, descriptor) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: pieceSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = lo_read(connectionHandle, descriptor, buffer.baseAddress!.assumingMemoryBound(to: CChar.self), pieceSize)
            guard count >= 0 else { throw lostOrFailed(during: during) }
            if count == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<Int(count)]))
        }
    }

    /// Replaces the contents of large object `oid`, creating it first when
    /// `create` is true. `body` receives a function that appends bytes.
    public func writeLargeObject(_ oid: UInt32, create: Bool, _ body: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let during = "writing large object \(oid)"
        if create {
            guard lo_create(connectionHandle, oid) == oid else { throw lostOrFailed(during: during) }
        }
        let descriptor = lo_open(connectionHandle, oid, Self.writeMode)
        guard descriptor >= 0 else { throw lostOrFailed(during: during) }
        defer { _ = lo_close(connectionHandle, descriptor) }
        guard lo_truncate64(connectionHandle, descriptor, 0) == 0 else { throw lostOrFailed(during: during) }
        try body { bytes in
            var remaining = bytes
            while !remaining.isEmpty {
                let count = min(remaining.count, 1 << 20)
                let written = lo_write(connectionHandle, descriptor, remaining.baseAddress!.assumingMemoryBound(to: CChar.self), count)
                guard written == count else { throw lostOrFailed(during: during) }
                remaining = UnsafeRawBufferPointer(rebasing: remaining[count...])
            }
        }
    }
}
