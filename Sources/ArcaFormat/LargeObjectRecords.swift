/// What reading the large objects hands on, in order: for each object its
/// OID, its bytes in pieces (none for an empty object), then its end.
public enum LargeObjectEvent {
    case begin(UInt32)
    case bytes(UnsafeRawBufferPointer)
    case end(UInt32)
}

/// Reads the records of the large-object stream (FORMAT.md, "Large
/// objects"): each a u32 OID, then segments of a u32 length and that many
/// bytes, ended by a segment of length 0. Fed the stream's raw bytes in
/// pieces cut anywhere (chunk boundaries fall inside records), it checks
/// every rule as it goes, without buffering more than a 4-byte field: OIDs
/// not 0 and strictly ascending, a segment no longer than the chunk size
/// nor than what remains of the stream, no more records than `count`; and
/// at `finish`, that the stream ended at a record's end after exactly
/// `count` of them. Every violation is `ArchiveError.malformed`.
public struct LargeObjectRecords {
    public static let streamName = "the large-object stream"

    private let count: UInt64
    private let maximumSegment: UInt32
    /// Bytes of the stream not yet fed (the manifest's `rawBytes` at first).
    private var remaining: UInt64
    private var records: UInt64 = 0
    private var oid: UInt32 = 0
    private var state = State.oid
    /// A u32 field being assembled across pieces.
    private var field: UInt32 = 0
    private var fieldBytes = 0

    private enum State {
        /// Before a record's OID (between records).
        case oid
        /// Before a segment's length, inside a record.
        case length
        /// Inside a segment, with this many bytes left.
        case data(UInt32)
    }

    public init(_ data: Manifest.LargeObjectData, chunkSize: UInt32) {
        count = data.count
        remaining = data.rawBytes
        maximumSegment = chunkSize
    }

    private func fail(_ detail: String) -> ArchiveError {
        .malformed(.stream(Self.streamName), detail)
    }

    /// Parses `bytes`, the next piece of the stream, calling `handle` with
    /// what it finds; `handle`'s errors pass through unchanged.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ handle: (LargeObjectEvent) throws -> Void) throws {
        guard UInt64(bytes.count) <= remaining else {
            throw fail("it is longer than the \(remaining) bytes the manifest leaves for it")
        }
        remaining -= UInt64(bytes.count)
        var position = 0
        while position < bytes.count {
            if case .data(let left) = state {
                let taken = min(Int(left), bytes.count - position)
                try handle(.bytes(UnsafeRawBufferPointer(rebasing: bytes[position..<position + taken])))
                position += taken
                state = left == UInt32(taken) ? .length : .data(left - UInt32(taken))
                continue
            }
            field |= UInt32(bytes[position]) << (8 * UInt32(fieldBytes))
            fieldBytes += 1
            position += 1
            guard fieldBytes == 4 else { continue }
            let value = field
            field = 0
            fieldBytes = 0
            // What is left of the stream after this field.
            let after = remaining + UInt64(bytes.count - position)
            switch state {
            case .oid:
                guard records < count else { throw fail("it holds more than the \(count) records the manifest counts") }
                guard value != 0 else { throw fail("record \(records + 1) has OID 0") }
                guard records == 0 || value > oid else {
                    throw fail("record \(records + 1) has OID \(value), not above the previous record's \(oid)")
                }
                records += 1
                oid = value
                state = .length
                try handle(.begin(value))
            case .length where value == 0:
                state = .oid
                try handle(.end(oid))
            case .length:
                guard value <= maximumSegment else {
                    throw fail("a segment of large object \(oid) is \(value) bytes long, above the chunk size \(maximumSegment)")
                }
                guard UInt64(value) <= after else {
                    throw fail("a segment of large object \(oid) is \(value) bytes long, but only \(after) bytes of the stream remain")
                }
                state = .data(value)
            case .data:
                break
            }
        }
    }

    /// Checks that the stream ended where a record ends, after `count` records.
    public func finish() throws {
        switch state {
        case .oid where fieldBytes > 0: throw fail("it ends inside the OID of record \(records + 1)")
        case .oid: break
        case .length, .data: throw fail("it ends inside the record of large object \(oid)")
        }
        guard records == count else { throw fail("it holds \(records) records, the manifest counts \(count)") }
    }

    /// The record framing of one object's bytes, for the writer: its OID;
    /// then `segmentHeader` before each piece of bytes; then `end`.
    public static func recordHeader(_ oid: UInt32) -> [UInt8] { le32(oid) }
    public static func segmentHeader(_ length: UInt32) -> [UInt8] { le32(length) }
    public static let end: [UInt8] = [0, 0, 0, 0]

    private static func le32(_ value: UInt32) -> [UInt8] {
        [UInt8(truncatingIfNeeded: value), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 24)]
    }
}
