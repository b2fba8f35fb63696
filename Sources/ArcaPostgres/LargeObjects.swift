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

    /// Opens large object `oid` for writing, emptied, creating it first
    /// when `create` is true. Close the writer before the next one.
    public func openLargeObjectForWriting(_ oid: UInt32, create: Bool) throws -> LargeObjectWriter {
        let during = "writing large object \(oid)"
        if create {
            guard lo_create(connectionHandle, oid) == oid else { throw lostOrFailed(during: during) }
        }
        let descriptor = lo_open(connectionHandle, oid, Self.writeMode)
        guard descriptor >= 0 else { throw lostOrFailed(during: during) }
        let writer = LargeObjectWriter(connection: self, descriptor: descriptor, during: during)
        guard lo_truncate64(connectionHandle, descriptor, 0) == 0 else {
            let error = lostOrFailed(during: during)
            writer.close()
            throw error
        }
        return writer
    }
}

/// One large object open for writing (`openLargeObjectForWriting`).
public final class LargeObjectWriter {
    private let connection: PostgresConnection
    private let descriptor: Int32
    private let during: String
    private var isOpen = true

    init(connection: PostgresConnection, descriptor: Int32, during: String) {
        self.connection = connection
        self.descriptor = descriptor
        self.during = during
    }

    /// Appends `bytes`, in writes of at most 1 MiB.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var remaining = bytes
        while !remaining.isEmpty {
            let count = min(remaining.count, 1 << 20)
            let written = lo_write(connection.connectionHandle, descriptor, remaining.baseAddress!.assumingMemoryBound(to: CChar.self), count)
            guard written == count else { throw connection.lostOrFailed(during: during) }
            remaining = UnsafeRawBufferPointer(rebasing: remaining[count...])
        }
    }

    public func close() {
        guard isOpen else { return }
        isOpen = false
        _ = lo_close(connection.connectionHandle, descriptor)
    }

    deinit { close() }
}
