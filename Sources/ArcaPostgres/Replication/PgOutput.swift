import Foundation

/// The messages of PostgreSQL's `pgoutput` plugin, protocol version 1
/// ("Logical Replication Message Formats" in the PostgreSQL manual), as
/// Arca reads them: from the server and again from a change segment, where
/// they are hostile until checked. Every length is bounded by the message
/// it is read from; a malformed message is an error, never a trap.
public enum PgOutputMessage: Sendable, Equatable {
    case begin(finalLSN: UInt64, commitTime: Int64, xid: UInt32)
    case commit(commitLSN: UInt64, endLSN: UInt64, commitTime: Int64)
    case relation(Relation)
    case insert(relation: UInt32, new: Tuple)
    case update(relation: UInt32, old: Tuple?, oldIsKey: Bool, new: Tuple)
    case delete(relation: UInt32, old: Tuple, oldIsKey: Bool)
    case truncate(relations: [UInt32], cascade: Bool, restartIdentity: Bool)
    case message(transactional: Bool, lsn: UInt64, prefix: String, content: [UInt8])
    /// `O` (origin) and `Y` (type) messages: nothing to replay.
    case ignored(kind: UInt8)

    public struct Relation: Sendable, Equatable {
        public var oid: UInt32
        public var schema: String
        public var name: String
        /// `d` default (primary key), `n` nothing, `f` full, `i` index.
        public var replicaIdentity: UInt8
        public var columns: [Column]

        public struct Column: Sendable, Equatable {
            public var name: String
            public var isKey: Bool
            public var typeOID: UInt32
        }
    }

    /// A row's values in text form; `.unchanged` is a TOASTed value an
    /// UPDATE did not change, which pgoutput does not send.
    public enum Value: Sendable, Equatable {
        case null
        case unchanged
        case text([UInt8])
    }

    public typealias Tuple = [Value]

    public struct Malformed: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    /// The most columns a table can have (MaxHeapAttributeNumber).
    static let maximumColumns = 1600

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> PgOutputMessage {
        var reader = BigEndianReader(bytes)
        do {
            let kind = try reader.byte()
            let message: PgOutputMessage
            switch kind {
            case UInt8(ascii: "B"):
                message = .begin(finalLSN: try reader.uint64(), commitTime: try reader.int64(), xid: try reader.uint32())
            case UInt8(ascii: "C"):
                _ = try reader.byte()
                message = .commit(commitLSN: try reader.uint64(), endLSN: try reader.uint64(), commitTime: try reader.int64())
            case UInt8(ascii: "R"):
                let oid = try reader.uint32(), schema = try reader.string(), name = try reader.string()
                let identity = try reader.byte()
                let count = Int(try reader.uint16())
                guard count <= maximumColumns else { throw Malformed(reason: "a relation of \(count) columns") }
                var columns: [Relation.Column] = []
                for _ in 0..<count {
                    let flags = try reader.byte()
                    let column = try reader.string()
                    let type = try reader.uint32()
                    _ = try reader.uint32()
                    columns.append(.init(name: column, isKey: flags & 1 != 0, typeOID: type))
                }
                message = .relation(Relation(oid: oid, schema: schema, name: name, replicaIdentity: identity, columns: columns))
            case UInt8(ascii: "I"):
                let relation = try reader.uint32()
                guard try reader.byte() == UInt8(ascii: "N") else { throw Malformed(reason: "an insert without its new row") }
                message = .insert(relation: relation, new: try tuple(&reader))
            case UInt8(ascii: "U"):
                let relation = try reader.uint32()
                var marker = try reader.byte()
                var old: Tuple?
                let oldIsKey = marker == UInt8(ascii: "K")
                if marker == UInt8(ascii: "K") || marker == UInt8(ascii: "O") {
                    old = try tuple(&reader)
                    marker = try reader.byte()
                }
                guard marker == UInt8(ascii: "N") else { throw Malformed(reason: "an update without its new row") }
                message = .update(relation: relation, old: old, oldIsKey: oldIsKey, new: try tuple(&reader))
            case UInt8(ascii: "D"):
                let relation = try reader.uint32()
                let marker = try reader.byte()
                guard marker == UInt8(ascii: "K") || marker == UInt8(ascii: "O") else {
                    throw Malformed(reason: "a delete without the old row's key")
                }
                message = .delete(relation: relation, old: try tuple(&reader), oldIsKey: marker == UInt8(ascii: "K"))
            case UInt8(ascii: "T"):
                let count = Int(try reader.uint32())
                let options = try reader.byte()
                guard count <= reader.rest.count / 4 else { throw Malformed(reason: "a truncate of \(count) relations in a short message") }
                message = .truncate(
                    relations: try (0..<count).map { _ in try reader.uint32() }, cascade: options & 1 != 0,
                    restartIdentity: options & 2 != 0)
            case UInt8(ascii: "M"):
                let flags = try reader.byte()
                let lsn = try reader.uint64(), prefix = try reader.string()
                let length = Int(try reader.uint32())
                message = .message(transactional: flags & 1 != 0, lsn: lsn, prefix: prefix, content: Array(try reader.bytes(length)))
            case UInt8(ascii: "O"), UInt8(ascii: "Y"):
                return .ignored(kind: kind)
            default:
                throw Malformed(reason: "unknown message type \(kind)")
            }
            guard reader.isAtEnd else { throw Malformed(reason: "\(reader.rest.count) bytes after a message of type \(kind)") }
            return message
        } catch is BigEndianReader.Truncated {
            throw Malformed(reason: "a message cut short")
        }
    }

    private static func tuple(_ reader: inout BigEndianReader) throws -> Tuple {
        let count = Int(try reader.uint16())
        guard count <= maximumColumns else { throw Malformed(reason: "a row of \(count) columns") }
        var values: Tuple = []
        values.reserveCapacity(count)
        for _ in 0..<count {
            switch try reader.byte() {
            case UInt8(ascii: "n"): values.append(.null)
            case UInt8(ascii: "u"): values.append(.unchanged)
            case UInt8(ascii: "t"):
                let length = Int(try reader.uint32())
                values.append(.text(Array(try reader.bytes(length))))
            case let kind: throw Malformed(reason: "a column value of kind \(kind)")
            }
        }
        return values
    }

    /// The relation a change message applies to.
    public var relationOIDs: [UInt32] {
        switch self {
        case .insert(let relation, _), .update(let relation, _, _, _), .delete(let relation, _, _): [relation]
        case .truncate(let relations, _, _): relations
        default: []
        }
    }
}
