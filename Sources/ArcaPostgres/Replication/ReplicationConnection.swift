import CLibpq
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A log sequence number: a byte position in the server's write-ahead log.
/// Shown as PostgreSQL shows it (`16/B374D848`).
public struct LSN: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public static let zero = LSN(0)

    /// Parses `X/Y` (hexadecimal halves, as `pg_lsn` prints them).
    public init?(_ text: String) {
        let halves = text.split(separator: "/", omittingEmptySubsequences: false)
        guard halves.count == 2, (1...8).contains(halves[0].count), (1...8).contains(halves[1].count),
              let high = UInt64(halves[0], radix: 16), let low = UInt64(halves[1], radix: 16) else { return nil }
        value = high << 32 | low
    }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.value < rhs.value }
}

/// PostgreSQL's timestamps on the replication protocol: microseconds since
/// 2000-01-01 00:00:00 UTC.
public enum PostgresTime {
    static let epoch = Date(timeIntervalSince1970: 946_684_800)

    public static func date(microseconds: Int64) -> Date {
        epoch.addingTimeInterval(Double(microseconds) / 1_000_000)
    }

    public static func microseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince(epoch) * 1_000_000).rounded())
    }
}

/// A connection in the walsender protocol (`replication=database`): the
/// replication commands (`IDENTIFY_SYSTEM`, `CREATE_REPLICATION_SLOT`,
/// `START_REPLICATION`) and the CopyBoth stream of a logical slot, as
/// `pg_recvlogical` uses them.
public final class ReplicationConnection {
    public let connection: PostgresConnection
    private var streaming = false

    public init(_ target: ConnectionString, applicationName: String) throws {
        connection = try PostgresConnection(target.setting("replication", to: "database"), applicationName: applicationName)
    }

    public func close() { connection.close() }

    /// A slot created with an exported snapshot: the snapshot sees exactly
    /// the transactions that committed before `consistentPoint`; the slot
    /// decodes exactly those that commit at or after it.
    public struct CreatedSlot: Sendable {
        public let name: String
        public let consistentPoint: LSN
        public let snapshot: String
    }

    /// `CREATE_REPLICATION_SLOT … LOGICAL pgoutput`, exporting its snapshot
    /// (valid until this connection runs another command or closes).
    /// `temporary` slots vanish with the connection.
    public func createSlot(_ name: String, temporary: Bool) throws -> CreatedSlot {
        let result = try connection.execute(
            "CREATE_REPLICATION_SLOT \(SQLIdentifier.quote(name))\(temporary ? " TEMPORARY" : "") LOGICAL pgoutput (SNAPSHOT 'export')",
            during: "creating the replication slot \(name)")
        guard let point = result.rows.first?[1].flatMap(LSN.init), let snapshot = result.rows.first?[2] else {
            throw PostgresError.unexpectedResponse(during: "creating the replication slot \(name)", message: "no consistent point or snapshot")
        }
        return CreatedSlot(name: name, consistentPoint: point, snapshot: snapshot)
    }

    /// Starts streaming slot `name` from `start` (the server begins at the
    /// slot's confirmed position when `start` is before it) with pgoutput:
    /// `publication`'s changes and the logical messages of
    /// `pg_logical_emit_message`.
    public func startStreaming(slot name: String, publication: String, from start: LSN) throws {
        let options = "proto_version '1', publication_names \(SQLIdentifier.literal(SQLIdentifier.quote(publication))), messages 'true'"
        let sql = "START_REPLICATION SLOT \(SQLIdentifier.quote(name)) LOGICAL \(start) (\(options))"
        let conn = connection.connectionHandle
        let result = PQexec(conn, sql)
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COPY_BOTH else {
            if let result, PQresultStatus(result) == PGRES_FATAL_ERROR {
                throw PostgresError.server(PostgresConnection.serverError(of: result), during: "starting the change stream from slot \(name)")
            }
            throw connection.lostOrFailed(during: "starting the change stream from slot \(name)")
        }
        streaming = true
    }

    /// What one read of the stream gives.
    public enum Message {
        /// WAL data: a pgoutput message (`data`, valid until the next read)
        /// at `walStart`, and the server's current end of WAL.
        case data(walStart: LSN, walEnd: LSN, data: UnsafeRawBufferPointer)
        /// The server's keepalive; `replyRequested` asks for a status update now.
        case keepalive(walEnd: LSN, replyRequested: Bool)
        /// Nothing arrived within the timeout.
        case timeout
    }

    private var buffer: UnsafeMutablePointer<CChar>?

    /// Reads the next message, waiting at most `timeout` seconds.
    public func read(timeout: Double) throws -> Message {
        precondition(streaming)
        let conn = connection.connectionHandle
        if let buffer { PQfreemem(buffer); self.buffer = nil }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            var pointer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(conn, &pointer, 1)
            if length > 0, let pointer {
                buffer = pointer
                let bytes = UnsafeRawBufferPointer(start: pointer, count: Int(length))
                return try Self.parse(bytes)
            }
            if length == -1 {
                // The server ended the stream (e.g. the slot was dropped).
                streaming = false
                var message = "the server ended the change stream"
                while let result = PQgetResult(conn) {
                    if PQresultStatus(result) == PGRES_FATAL_ERROR {
                        message = PostgresConnection.serverError(of: result).description
                    }
                    PQclear(result)
                }
                throw PostgresError.connectionLost(during: "reading the change stream", message: message)
            }
            if length == -2 { throw connection.lostOrFailed(during: "reading the change stream") }
            // 0: nothing complete yet; wait for the socket.
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return .timeout }
            var descriptor = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(remaining, 1) * 1000) + 1)
            if ready < 0, errno != EINTR { throw connection.lostOrFailed(during: "waiting for the change stream") }
            if ready > 0, PQconsumeInput(conn) == 0 { throw connection.lostOrFailed(during: "reading the change stream") }
        }
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) throws -> Message {
        var reader = BigEndianReader(bytes)
        switch try reader.byte() {
        case UInt8(ascii: "w"):
            let start = LSN(try reader.uint64()), end = LSN(try reader.uint64())
            _ = try reader.uint64()
            return .data(walStart: start, walEnd: end, data: reader.rest)
        case UInt8(ascii: "k"):
            let end = LSN(try reader.uint64())
            _ = try reader.uint64()
            return .keepalive(walEnd: end, replyRequested: try reader.byte() != 0)
        case let other:
            throw PostgresError.unexpectedResponse(during: "reading the change stream", message: "unknown message type \(other)")
        }
    }

    /// Tells the server what is durable: `flushed` and everything before it
    /// may be released by the slot (its confirmed position advances).
    public func sendStatus(written: LSN, flushed: LSN, replyRequested: Bool = false) throws {
        var message: [UInt8] = [UInt8(ascii: "r")]
        for value in [written.value, flushed.value, flushed.value, UInt64(bitPattern: PostgresTime.microseconds(Date()))] {
            withUnsafeBytes(of: value.bigEndian) { message.append(contentsOf: $0) }
        }
        message.append(replyRequested ? 1 : 0)
        let conn = connection.connectionHandle
        let sent = message.withUnsafeBytes {
            PQputCopyData(conn, $0.baseAddress!.assumingMemoryBound(to: CChar.self), Int32($0.count))
        }
        guard sent == 1, PQflush(conn) == 0 else { throw connection.lostOrFailed(during: "confirming the change stream's position") }
    }

    deinit { if let buffer { PQfreemem(buffer) } }
}

/// Reads big-endian numbers and NUL-terminated strings (the replication
/// protocol's), every read bounded by what is left.
public struct BigEndianReader {
    public private(set) var rest: UnsafeRawBufferPointer

    public init(_ bytes: UnsafeRawBufferPointer) { rest = bytes }

    public struct Truncated: Error {}

    public var isAtEnd: Bool { rest.isEmpty }

    mutating func take(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= rest.count else { throw Truncated() }
        let taken = UnsafeRawBufferPointer(rebasing: rest[..<count])
        rest = UnsafeRawBufferPointer(rebasing: rest[count...])
        return taken
    }

    public mutating func byte() throws -> UInt8 { try take(1)[0] }
    public mutating func uint16() throws -> UInt16 { try take(2).reduce(0) { $0 << 8 | UInt16($1) } }
    public mutating func uint32() throws -> UInt32 { try take(4).reduce(0) { $0 << 8 | UInt32($1) } }
    public mutating func uint64() throws -> UInt64 { try take(8).reduce(0) { $0 << 8 | UInt64($1) } }
    public mutating func int64() throws -> Int64 { Int64(bitPattern: try uint64()) }
    public mutating func bytes(_ count: Int) throws -> UnsafeRawBufferPointer { try take(count) }

    /// A NUL-terminated string, decoded as UTF-8 (names in the catalog).
    public mutating func string() throws -> String {
        guard let end = rest.firstIndex(of: 0) else { throw Truncated() }
        let text = String(decoding: rest[..<end], as: UTF8.self)
        rest = UnsafeRawBufferPointer(rebasing: rest[(end + 1)...])
        return text
    }
}
