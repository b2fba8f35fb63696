import Foundation

extension Manifest {
    /// Where a full backup stands in the change stream: its snapshot sees
    /// exactly the transactions whose commit record lies before `lsn`, and
    /// the stream's transactions committed at or after `lsn` continue it
    /// (FORMAT.md, "Change segments").
    public struct Anchor: Codable, Sendable, Equatable {
        /// The replication slot of the change stream.
        public var slot: String
        public var lsn: UInt64
        public init(slot: String, lsn: UInt64) {
            self.slot = slot
            self.lsn = lsn
        }
    }

    /// The change stream of a change segment: `records` records, each a
    /// u32 length and one pgoutput message (FORMAT.md, "Change segments"),
    /// holding the transactions committed in `(startLSN, endLSN]`.
    public struct ChangeData: Codable, Sendable, Equatable, StreamDescriptor {
        public var slot: String
        /// Where the slot's stream began (its consistent point when it was
        /// made): segments with the same `slotStart` form one stream
        /// without gaps, each starting where the one before ended.
        public var slotStart: UInt64
        /// The stream position the previous segment ended at (the slot's
        /// confirmed position when this one began).
        public var startLSN: UInt64
        /// The end of the last transaction this segment holds (its commit
        /// record's end); the next segment starts here.
        public var endLSN: UInt64
        public var transactions: UInt64
        public var records: UInt64
        /// The first and last commit times, absent when no transaction is held.
        public var firstCommitAt: String?
        public var lastCommitAt: String?
        /// The tables the transactions changed (rows or TRUNCATE), sorted.
        public var tables: [TableName]
        /// The schema changes recorded in the stream, in commit order.
        public var schemaChanges: [SchemaChange]
        public var stream: UInt32
        public var rawBytes: UInt64
        public var storedBytes: UInt64
        public var md5: String
        public var sha256: String
        public var chunks: [Chunk]

        public struct TableName: Codable, Sendable, Hashable, Comparable {
            public var schema: String
            public var name: String
            public init(schema: String, name: String) {
                self.schema = schema
                self.name = name
            }
            public static func < (lhs: TableName, rhs: TableName) -> Bool {
                (lhs.schema, lhs.name) < (rhs.schema, rhs.name)
            }
        }

        /// A schema change: replayable in order, or not (the reason says
        /// why), in which case no instant from its commit on can be
        /// restored from an earlier full backup.
        public struct SchemaChange: Codable, Sendable, Equatable {
            public var commitLSN: UInt64
            public var commitAt: String
            public var tag: String
            public var replayable: Bool
            public var reason: String?
            public init(commitLSN: UInt64, commitAt: String, tag: String, replayable: Bool, reason: String?) {
                self.commitLSN = commitLSN
                self.commitAt = commitAt
                self.tag = tag
                self.replayable = replayable
                self.reason = reason
            }
        }

        public init(
            slot: String, slotStart: UInt64, startLSN: UInt64, endLSN: UInt64, transactions: UInt64, records: UInt64, firstCommitAt: String?,
            lastCommitAt: String?, tables: [TableName], schemaChanges: [SchemaChange], stream: UInt32, summary: StreamSummary
        ) {
            self.slot = slot
            self.slotStart = slotStart
            self.startLSN = startLSN
            self.endLSN = endLSN
            self.transactions = transactions
            self.records = records
            self.firstCommitAt = firstCommitAt
            self.lastCommitAt = lastCommitAt
            self.tables = tables
            self.schemaChanges = schemaChanges
            self.stream = stream
            rawBytes = summary.rawBytes
            storedBytes = summary.storedBytes
            md5 = summary.md5
            sha256 = summary.sha256
            chunks = summary.chunks
        }

        public static let streamName = "the change stream"
        /// The shortest record: a length and a one-byte message.
        public static let minimumRecordLength: UInt64 = 5
        /// The longest record a writer stores and a reader accepts.
        public static let maximumRecordLength: UInt32 = 1 << 30

        func validate() throws {
            func fail(_ detail: String) -> ArchiveError { .invalidManifest("changes: \(detail)") }
            guard slotStart <= startLSN, startLSN <= endLSN else {
                throw fail("slotStart \(slotStart), startLSN \(startLSN) and endLSN \(endLSN) are not in order")
            }
            guard records <= rawBytes / Self.minimumRecordLength else {
                throw fail("records is \(records), but a stream of \(rawBytes) bytes holds at most \(rawBytes / Self.minimumRecordLength)")
            }
            guard transactions <= records / 2 else { throw fail("\(transactions) transactions need more than \(records) records") }
            guard (firstCommitAt == nil) == (transactions == 0), (lastCommitAt == nil) == (transactions == 0) else {
                throw fail("commit times are given if and only if it holds transactions")
            }
            for text in [firstCommitAt, lastCommitAt].compactMap({ $0 }) where Manifest.date(fromTimestamp: text) == nil {
                throw fail("\"\(text)\" is not a timestamp")
            }
            for change in schemaChanges where Manifest.date(fromTimestamp: change.commitAt) == nil || change.commitLSN > endLSN {
                throw fail("a schema change at \(change.commitLSN) lies outside the segment or has no valid time")
            }
        }
    }
}

/// A change segment's name: `changes_` and its start and end LSNs as 16
/// hexadecimal digits each, so names sort in stream order. Also a file
/// name: nothing else is accepted.
public struct SegmentID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let startLSN: UInt64
    public let endLSN: UInt64

    public init(startLSN: UInt64, endLSN: UInt64) {
        self.startLSN = startLSN
        self.endLSN = endLSN
    }

    public init?(_ text: String) {
        let utf8 = Array(text.utf8)
        guard utf8.count == 41, text.hasPrefix("changes_"), utf8[24] == UInt8(ascii: "_") else { return nil }
        func hex(_ range: Range<Int>) -> UInt64? {
            let digits = utf8[range]
            guard digits.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x46).contains($0) }) else { return nil }
            return UInt64(String(decoding: digits, as: UTF8.self), radix: 16)
        }
        guard let start = hex(8..<24), let end = hex(25..<41), start <= end else { return nil }
        startLSN = start
        endLSN = end
    }

    public var description: String {
        func hex(_ value: UInt64) -> String {
            let digits = String(value, radix: 16, uppercase: true)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        return "changes_\(hex(startLSN))_\(hex(endLSN))"
    }

    public static func < (lhs: SegmentID, rhs: SegmentID) -> Bool {
        (lhs.startLSN, lhs.endLSN) < (rhs.startLSN, rhs.endLSN)
    }
}

/// Reads the records of a change stream (FORMAT.md, "Change segments"):
/// each a u32 length `n` (1 ≤ n ≤ 2^30, and no longer than what remains)
/// and `n` bytes. Fed the stream in pieces cut anywhere, it hands on each
/// whole record, holding at most one record; at `finish` the stream must
/// end at a record's end after exactly `count` records.
public struct ChangeRecords {
    private let count: UInt64
    private var remaining: UInt64
    private var records: UInt64 = 0
    private var header: [UInt8] = []
    private var record: [UInt8] = []
    private var recordLength = 0

    public init(_ data: Manifest.ChangeData) {
        count = data.records
        remaining = data.rawBytes
    }

    private func fail(_ detail: String) -> ArchiveError {
        .malformed(.stream(Manifest.ChangeData.streamName), detail)
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ handle: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard UInt64(bytes.count) <= remaining else {
            throw fail("it is longer than the \(remaining) bytes the manifest leaves for it")
        }
        remaining -= UInt64(bytes.count)
        var position = 0
        while position < bytes.count {
            if header.count < 4 {
                header.append(bytes[position])
                position += 1
                guard header.count == 4 else { continue }
                let length = header.reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                let after = remaining + UInt64(bytes.count - position)
                guard records < count else { throw fail("it holds more than the \(count) records the manifest counts") }
                guard length >= 1, length <= Manifest.ChangeData.maximumRecordLength, UInt64(length) <= after else {
                    throw fail("record \(records + 1) is \(length) bytes long; 1 to \(min(UInt64(Manifest.ChangeData.maximumRecordLength), after)) are possible here")
                }
                recordLength = Int(length)
                record.removeAll(keepingCapacity: true)
                record.reserveCapacity(recordLength)
                continue
            }
            let taken = min(recordLength - record.count, bytes.count - position)
            record.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[position..<position + taken]))
            position += taken
            if record.count == recordLength {
                records += 1
                header.removeAll(keepingCapacity: true)
                try record.withUnsafeBytes { try handle($0) }
            }
        }
    }

    public func finish() throws {
        guard header.isEmpty else { throw fail("it ends inside record \(records + 1)") }
        guard records == count else { throw fail("it holds \(records) records, the manifest counts \(count)") }
    }

    /// A record's framing, for the writer: the length before the message.
    public static func recordHeader(_ length: UInt32) -> [UInt8] {
        [UInt8(truncatingIfNeeded: length), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 24)]
    }
}
