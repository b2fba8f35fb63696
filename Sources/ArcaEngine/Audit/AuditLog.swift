import ArcaFormat
import Foundation
import Glibc

// Arca's audit trail: an append-only JSON-lines file in which every line carries the
// SHA-256 of the line before it, so that editing, removing, inserting or reordering
// lines breaks the chain and `verify()` can say where.
//
// Line format (one record per line, '\n' terminated, keys sorted by JSONEncoder's
// .sortedKeys, no other whitespace). The event is NESTED under "event"; fields that
// are nil are omitted:
//
//   {"event":{"action":"backup","actor":"cli:postgres","outcome":"success","target":"20241201T140518Z","time":"2024-12-01T14:05:30.123Z"},"previousHash":"<64 hex digits>","sequence":1}
//
// `previousHash` is the hex SHA-256 of the previous line's exact bytes without its
// newline (64 zeros for the first line). Hashing the stored bytes, not a re-encoding,
// means verification never depends on how a future Foundation formats JSON.
//
// What a hash chain cannot show on its own: an edit to the LAST line (nothing after it
// records its hash) or the removal of whole lines from the END of the file. Catching
// those needs the newest sequence/hash kept somewhere else (e.g. in backup manifests).

/// How an audited operation ended.
public enum AuditOutcome: String, Codable, Sendable {
    /// Recorded before an operation that changes something acts: when it
    /// cannot be written, the operation is refused (the audit fails closed).
    case started
    case success
    case failure
    /// Not attempted: refused by a rule (no confirmation, another writer running, a bad request).
    case refused
}

/// One thing that happened, as recorded in the audit trail.
public struct AuditEvent: Codable, Sendable, Equatable {
    public var time: String          // RFC 3339 UTC with milliseconds, e.g. 2024-12-01T14:05:30.123Z
    public var actor: String         // "cli:<os user>" or the API token subject
    public var clientIP: String?     // for API calls
    public var action: String        // backup, verify, restore, cleanup, list, login_failed, config_error, drill, ...
    public var target: String?       // e.g. backup id
    public var outcome: AuditOutcome
    public var durationSeconds: Double?
    public var error: String?
    public var details: [String: String]?   // small extra facts (sizes, counts); never secrets or row data

    public init(
        time: String = AuditEvent.timestamp(),
        actor: String,
        clientIP: String? = nil,
        action: String,
        target: String? = nil,
        outcome: AuditOutcome,
        durationSeconds: Double? = nil,
        error: String? = nil,
        details: [String: String]? = nil
    ) {
        self.time = time
        self.actor = actor
        self.clientIP = clientIP
        self.action = action
        self.target = target
        self.outcome = outcome
        self.durationSeconds = durationSeconds
        self.error = error
        self.details = details
    }

    /// `date` in the format of `time`: RFC 3339, UTC, milliseconds.
    public static func timestamp(_ date: Date = Date()) -> String {
        Manifest.timestamp(date)
    }

    /// Parses `time`; also accepts RFC 3339 without fractional seconds.
    static func date(fromTimestamp text: String) -> Date? { Manifest.date(fromTimestamp: text) }
}

/// One line of the audit file (the event is nested under "event").
public struct AuditRecord: Codable, Sendable, Equatable {
    public var sequence: UInt64      // 1, 2, 3, ... without gaps
    public var previousHash: String  // hex SHA-256 of the previous line's bytes; 64 zeros for the first
    public var event: AuditEvent

    public init(sequence: UInt64, previousHash: String, event: AuditEvent) {
        self.sequence = sequence
        self.previousHash = previousHash
        self.event = event
    }
}

/// The outcome of `AuditLog.verify()`.
public struct AuditVerification: Codable, Sendable, Equatable {
    public var intact: Bool
    /// All records when intact; otherwise the records before `line`, which are proven intact.
    public var records: Int
    /// What is wrong, naming the line and sequence; nil when intact.
    public var problem: String?
    /// 1-based line number of the first broken line; nil when intact.
    public var line: Int?

    public init(intact: Bool, records: Int, problem: String? = nil, line: Int? = nil) {
        self.intact = intact
        self.records = records
        self.problem = problem
        self.line = line
    }

    static func broken(at line: Int, _ problem: String) -> AuditVerification {
        AuditVerification(intact: false, records: line - 1, problem: problem, line: line)
    }
}

public enum AuditError: Error, Sendable, CustomStringConvertible, LocalizedError {
    case cannotOpen(path: String, reason: String)
    case cannotLock(path: String, reason: String)
    case cannotRead(path: String, reason: String)
    case cannotWrite(path: String, reason: String)
    case cannotSync(path: String, reason: String)
    case cannotEncode(path: String, reason: String)
    case recordTooLarge(path: String, bytes: Int)
    /// `line` is nil when it is the last line (found by reading backwards).
    case lineTooLong(path: String, line: Int?)
    case unreadableRecord(path: String, line: Int?, reason: String)
    case incompleteLastLine(path: String)
    case invalidTime(path: String, line: Int, time: String)

    public var description: String {
        let inspect = "Run the audit verification to locate the damage, and move the file aside (keep it as evidence) to start a new chain."
        switch self {
        case let .cannotOpen(path, reason):
            return "Cannot open the audit log \(path): \(reason). Check that its directory exists and is writable by the Arca user; operations are refused until they can be audited."
        case let .cannotLock(path, reason):
            return "Cannot lock the audit log \(path): \(reason). Check that the file system supports flock and that no stuck process holds the file."
        case let .cannotRead(path, reason):
            return "Cannot read the audit log \(path): \(reason). Check the file's permissions and the disk."
        case let .cannotWrite(path, reason):
            return "Cannot write to the audit log \(path): \(reason). Free disk space or fix permissions; the event was not recorded, so the operation must not proceed."
        case let .cannotSync(path, reason):
            return "Cannot flush the audit log \(path) to disk: \(reason). The event may not be durable; check the disk and retry the operation."
        case let .cannotEncode(path, reason):
            return "Cannot encode an audit event for \(path): \(reason). This is a bug in Arca (for example a non-finite duration); please report it."
        case let .recordTooLarge(path, bytes):
            return "An audit record for \(path) would be \(bytes) bytes, over the 1 MiB line limit; it was not written. Keep `details` to small facts."
        case let .lineTooLong(path, line):
            return "\(line.map { "Line \($0)" } ?? "The last line") of the audit log \(path) is longer than 1 MiB, so it is not an Arca audit record. \(inspect)"
        case let .unreadableRecord(path, line, reason):
            return "\(line.map { "Line \($0)" } ?? "The last line") of the audit log \(path) is not a valid audit record (\(reason)). \(inspect)"
        case let .incompleteLastLine(path):
            return "The audit log \(path) ends with an incomplete line (no trailing newline), from an interrupted write or tampering; nothing more is appended to it. \(inspect)"
        case let .invalidTime(path, line, time):
            return "Line \(line) of the audit log \(path) has the time \"\(time)\", which is not an RFC 3339 timestamp. \(inspect)"
        }
    }

    public var errorDescription: String? { description }
}

/// The audit trail file. Every call opens the file itself and holds a flock while it
/// works, so several instances, threads and processes can share one file safely.
public final class AuditLog: Sendable {
    /// Longest accepted line. Records are small; anything longer is damage or an attack.
    public static let maxLineBytes = 1 << 20
    static let firstPreviousHash = String(repeating: "0", count: 64)

    public let path: String
    private let sha256: @Sendable ([UInt8]) -> [UInt8]

    public init(path: String, sha256: @escaping @Sendable ([UInt8]) -> [UInt8]) {
        self.path = path
        self.sha256 = sha256
    }

    // MARK: Appending

    /// Appends one event: takes an exclusive flock so that two writers never interleave or
    /// fork the chain, reads the last line from the end of the file for its hash and
    /// sequence, writes the new line with O_APPEND, fsyncs the file (and the directory when
    /// the file was just created, mode 0600), then releases the lock.
    /// Throws `AuditError` on any failure: an operation that cannot be audited must fail.
    public func append(_ event: AuditEvent) throws {
        let (fd, created) = try openForAppending()
        defer { close(fd) }
        try lock(fd, LOCK_EX)
        defer { _ = flock(fd, LOCK_UN) }

        let sizeBefore = try fileSize(fd)
        var record = AuditRecord(sequence: 1, previousHash: Self.firstPreviousHash, event: event)
        if let lastLine = try lastLine(fd, fileSize: sizeBefore) {
            let last = try decodeRecord(lastLine, line: nil)
            record.sequence = last.sequence + 1
            record.previousHash = hashHex(lastLine)
        }

        var line = try encodeRecord(record)
        guard line.count <= Self.maxLineBytes else {
            throw AuditError.recordTooLarge(path: path, bytes: line.count)
        }
        line.append(newline)
        try writeAll(fd, line, sizeBefore: sizeBefore)
        guard fsync(fd) == 0 else { throw AuditError.cannotSync(path: path, reason: errnoText()) }
        // A new file is only durable once its directory entry is.
        if created { try syncDirectory() }
    }

    /// Opens the file for appending, creating it with mode 0600 if needed.
    /// Returns whether this call created it.
    /// Whether an event could be appended now (the file opens for writing,
    /// or can be created): what `status` checks, as every operation that
    /// changes something is refused while it cannot.
    public func checkAppendable() throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        if fd >= 0 {
            close(fd)
            return
        }
        guard errno == ENOENT else { throw AuditError.cannotOpen(path: path, reason: errnoText()) }
        let folder = (path as NSString).deletingLastPathComponent
        guard access(folder.isEmpty ? "." : folder, W_OK | X_OK) == 0 else { throw AuditError.cannotOpen(path: path, reason: errnoText()) }
    }

    private func openForAppending() throws -> (fd: Int32, created: Bool) {
        while true {
            let fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC)
            if fd >= 0 { return (fd, false) }
            guard errno == ENOENT else { throw AuditError.cannotOpen(path: path, reason: errnoText()) }
            // O_EXCL tells us reliably whether we created it; if another writer won the race, open theirs.
            let createdFD = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(0o600))
            if createdFD >= 0 { return (createdFD, true) }
            guard errno == EEXIST else { throw AuditError.cannotOpen(path: path, reason: errnoText()) }
        }
    }

    /// The last line without its newline, or nil for an empty file. Reads backwards from the
    /// end in chunks, so appending costs the same however long the log grows.
    private func lastLine(_ fd: Int32, fileSize: off_t) throws -> [UInt8]? {
        guard fileSize > 0 else { return nil }
        guard try read(fd, at: fileSize - 1, count: 1) == [newline] else {
            throw AuditError.incompleteLastLine(path: path)
        }
        let chunkSize: off_t = 64 * 1024
        var chunks: [[UInt8]] = []   // collected back to front
        var collected = 0
        var cursor = fileSize - 1    // exclusive end of the line: the final newline
        while cursor > 0 {
            let start = max(0, cursor - chunkSize)
            let chunk = try read(fd, at: start, count: Int(cursor - start))
            if let previousNewline = chunk.lastIndex(of: newline) {
                chunks.append(Array(chunk[(previousNewline + 1)...]))
                collected += chunk.count - previousNewline - 1
                cursor = 0
            } else {
                chunks.append(chunk)
                collected += chunk.count
                cursor = start
            }
            if collected > Self.maxLineBytes { throw AuditError.lineTooLong(path: path, line: nil) }
        }
        return Array(chunks.reversed().joined())
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8], sizeBefore: off_t) throws {
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer in
                Glibc.write(fd, buffer.baseAddress! + written, buffer.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                let reason = errnoText()
                // Cut off a partially written line so the file stays a valid chain (we still hold the lock).
                _ = ftruncate(fd, sizeBefore)
                throw AuditError.cannotWrite(path: path, reason: reason)
            }
            written += result
        }
    }

    private func syncDirectory() throws {
        let directory = (path as NSString).deletingLastPathComponent
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw AuditError.cannotSync(path: path, reason: "cannot open its directory: \(errnoText())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw AuditError.cannotSync(path: path, reason: "cannot sync its directory: \(errnoText())") }
    }

    // MARK: Reading

    /// All records, oldest first, optionally only those at or after `since` and with the given
    /// `action`. Streams the file line by line; a line over 1 MiB, an unparsable line or an
    /// incomplete last line throws, naming the line.
    public func records(since: Date? = nil, action: String? = nil) throws -> [AuditRecord] {
        guard let fd = try openForReading() else { return [] }
        defer { close(fd) }
        // A shared lock: never read a line that a writer is halfway through.
        try lock(fd, LOCK_SH)
        defer { _ = flock(fd, LOCK_UN) }

        var reader = LineReader(fd: fd, path: path)
        var result: [AuditRecord] = []
        while let line = try reader.next() {
            guard !line.tooLong else { throw AuditError.lineTooLong(path: path, line: line.number) }
            guard line.terminated else { throw AuditError.incompleteLastLine(path: path) }
            let record = try decodeRecord(line.bytes, line: line.number)
            if let action, record.event.action != action { continue }
            if let since {
                guard let time = AuditEvent.date(fromTimestamp: record.event.time) else {
                    throw AuditError.invalidTime(path: path, line: line.number, time: record.event.time)
                }
                if time < since { continue }
            }
            result.append(record)
        }
        return result
    }

    // MARK: Verifying

    /// Proves the chain is unbroken: every line parses, sequences run 1...n without gaps, and
    /// each previousHash is the SHA-256 of the previous line's bytes. Otherwise reports the
    /// first broken line and what happened to it. Throws only when the file cannot be read.
    public func verify() throws -> AuditVerification {
        guard let fd = try openForReading() else { return AuditVerification(intact: true, records: 0) }
        defer { close(fd) }
        try lock(fd, LOCK_SH)
        defer { _ = flock(fd, LOCK_UN) }

        var reader = LineReader(fd: fd, path: path)
        var previous: ChainLink?
        while let line = try reader.next() {
            let current: ChainLink
            switch inspect(line) {
            case .broken(let problem): return .broken(at: line.number, problem)
            case .link(let link): current = link
            }
            let chains = current.sequence == (previous?.sequence ?? 0) + 1
                && current.previousHash == (previous?.hash ?? Self.firstPreviousHash)
            guard chains else { return try diagnose(current, after: previous, rest: &reader) }
            previous = current
        }
        return AuditVerification(intact: true, records: previous?.line ?? 0)
    }

    /// What verification needs to know about one parsed line.
    private struct ChainLink {
        var line: Int
        var sequence: UInt64
        var previousHash: String
        var hash: String
    }

    private enum Inspection {
        case link(ChainLink)
        case broken(String)

        var link: ChainLink? {
            if case .link(let link) = self { return link }
            return nil
        }
    }

    private func inspect(_ line: Line) -> Inspection {
        let n = line.number
        if line.tooLong { return .broken("line \(n) is unparsable: it is longer than 1 MiB") }
        if !line.terminated {
            return .broken("line \(n) is truncated: the last line has no trailing newline (an interrupted write or a cut-off file)")
        }
        do {
            let record = try JSONDecoder().decode(AuditRecord.self, from: Data(line.bytes))
            return .link(ChainLink(line: n, sequence: record.sequence, previousHash: record.previousHash, hash: hashHex(line.bytes)))
        } catch {
            return .broken("line \(n) is unparsable: \(Self.explain(error))")
        }
    }

    /// `current` does not chain onto `previous`. Both surrounding lines decide which line is
    /// at fault: a genuine line is one its successor chains to.
    private func diagnose(_ current: ChainLink, after previous: ChainLink?, rest reader: inout LineReader) throws -> AuditVerification {
        let n = current.line
        let sequence = current.sequence
        let expectedSequence = (previous?.sequence ?? 0) + 1
        let expectedHash = previous?.hash ?? Self.firstPreviousHash
        let predecessor = previous.map { "line \($0.line)" } ?? "the start of the log"
        let next = try reader.next().flatMap { inspect($0).link }

        // The next line continues the chain from `previous`: `current` sits where it does not belong.
        if let next, next.sequence == expectedSequence, next.previousHash == expectedHash {
            if sequence == expectedSequence + 1, current.previousHash == next.hash {
                return .broken(at: n, "lines \(n) and \(n + 1) are reordered: sequence \(sequence) comes before sequence \(next.sequence), but they chain the other way round")
            }
            return .broken(at: n, "line \(n) (sequence \(sequence)) was inserted: line \(n + 1) chains directly to \(predecessor)")
        }
        // `current` repeats the sequence and chain position of `previous`: one of them is a forgery,
        // and since `previous` passed the chain checks the forger computed its hash. Report that one.
        if let previous, sequence == previous.sequence, current.previousHash == previous.previousHash {
            return .broken(at: previous.line, "line \(previous.line) (sequence \(sequence)) was inserted: line \(n) has the same sequence and chains to the same predecessor")
        }
        if sequence == expectedSequence {
            // Only the hash is wrong. If the next line still chains to `current`, `current` is
            // unchanged and the line before it was edited; otherwise `current` itself was.
            if let next, next.previousHash != current.hash {
                return .broken(at: n, "line \(n) (sequence \(sequence)) was edited: its previousHash does not match \(predecessor) and line \(n + 1) does not chain to it")
            }
            guard let previous else {
                return .broken(at: n, "line 1 (sequence \(sequence)) was edited: the first record's previousHash must be 64 zeros")
            }
            let alternative = next == nil ? " (or the previousHash of line \(n) was altered)" : ""
            return .broken(at: previous.line, "line \(previous.line) (sequence \(previous.sequence)) was edited: its hash no longer matches the previousHash recorded in line \(n)\(alternative)")
        }
        if sequence > expectedSequence {
            var laterLine: Int? = next?.sequence == expectedSequence ? next?.line : nil
            while laterLine == nil, let line = try reader.next() {
                if let link = inspect(line).link, link.sequence == expectedSequence { laterLine = link.line }
            }
            if let laterLine {
                return .broken(at: n, "line \(n) (sequence \(sequence)) is out of order: sequence \(expectedSequence) comes later, at line \(laterLine) (lines were reordered)")
            }
            let missing = sequence - 1 == expectedSequence
                ? "sequence \(expectedSequence) is" : "sequences \(expectedSequence)-\(sequence - 1) are"
            return .broken(at: n, "records were removed: \(missing) missing before line \(n) (sequence \(sequence))")
        }
        if let previous, sequence == previous.sequence {
            return .broken(at: n, "line \(n) was inserted: it repeats sequence \(sequence) of line \(previous.line)")
        }
        return .broken(at: n, "line \(n) (sequence \(sequence)) is out of order: it follows sequence \(expectedSequence - 1) (lines were reordered or inserted)")
    }

    // MARK: Helpers

    private func openForReading() throws -> Int32? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { return fd }
        if errno == ENOENT { return nil }   // no log yet: nothing recorded, nothing broken
        throw AuditError.cannotOpen(path: path, reason: errnoText())
    }

    private func lock(_ fd: Int32, _ operation: Int32) throws {
        while flock(fd, operation) != 0 {
            guard errno == EINTR else { throw AuditError.cannotLock(path: path, reason: errnoText()) }
        }
    }

    private func fileSize(_ fd: Int32) throws -> off_t {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw AuditError.cannotRead(path: path, reason: errnoText()) }
        return info.st_size
    }

    /// Exactly `count` bytes at `offset`, fewer only at the end of the file.
    private func read(_ fd: Int32, at offset: off_t, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let result = bytes.withUnsafeMutableBytes { buffer in
                pread(fd, buffer.baseAddress! + filled, count - filled, offset + off_t(filled))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw AuditError.cannotRead(path: path, reason: errnoText())
            }
            if result == 0 { break }
            filled += result
        }
        return Array(bytes[..<filled])
    }

    private func encodeRecord(_ record: AuditRecord) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            return Array(try encoder.encode(record))
        } catch {
            throw AuditError.cannotEncode(path: path, reason: String(describing: error))
        }
    }

    private func decodeRecord(_ bytes: [UInt8], line: Int?) throws -> AuditRecord {
        do {
            return try JSONDecoder().decode(AuditRecord.self, from: Data(bytes))
        } catch {
            throw AuditError.unreadableRecord(path: path, line: line, reason: Self.explain(error))
        }
    }

    /// A short reason instead of DecodingError's long debug description.
    private static func explain(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return String(describing: error) }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing field \"\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))\""
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "field \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type"
        case .dataCorrupted:
            return "not valid JSON"
        @unknown default:
            return "not an audit record"
        }
    }

    private func hashHex(_ bytes: [UInt8]) -> String {
        Hex.encode(sha256(bytes))
    }

    private func errnoText() -> String {
        String(cString: strerror(errno))
    }
}

private let newline = UInt8(ascii: "\n")

/// One line as read from the file, without its newline.
private struct Line {
    var number: Int
    var bytes: [UInt8]
    /// False for a last line that lacks its newline.
    var terminated: Bool
    /// Over `AuditLog.maxLineBytes`; `bytes` is then empty because the line was not kept.
    var tooLong: Bool
}

/// Splits a file into lines while holding at most about one maximal line plus one read chunk.
private struct LineReader {
    let fd: Int32
    let path: String
    private var buffer: [UInt8] = []
    private var start = 0            // where the next line begins in `buffer`
    private var scanned = 0          // `buffer[start..<scanned]` holds no newline
    private var lineNumber = 0
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    mutating func next() throws -> Line? {
        var tooLong = false
        while true {
            if let end = buffer[scanned...].firstIndex(of: newline) {
                lineNumber += 1
                let isTooLong = tooLong || end - start > AuditLog.maxLineBytes
                let line = Line(number: lineNumber, bytes: isTooLong ? [] : Array(buffer[start..<end]), terminated: true, tooLong: isTooLong)
                start = end + 1
                scanned = start
                return line
            }
            if buffer.count - start > AuditLog.maxLineBytes {
                // Too long to be a record: drop what we have and skip ahead to the next newline.
                tooLong = true
                buffer.removeAll(keepingCapacity: true)
            } else {
                buffer.removeFirst(start)    // compact once per read, not once per line
            }
            start = 0
            scanned = buffer.count
            let count = try readChunk()
            if count == 0 {
                guard !buffer.isEmpty || tooLong else { return nil }
                lineNumber += 1
                let line = Line(number: lineNumber, bytes: tooLong ? [] : buffer, terminated: false, tooLong: tooLong)
                buffer.removeAll()
                scanned = 0
                return line
            }
            buffer.append(contentsOf: chunk[..<count])
        }
    }

    private mutating func readChunk() throws -> Int {
        while true {
            let result = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if result >= 0 { return result }
            guard errno == EINTR else {
                throw AuditError.cannotRead(path: path, reason: String(cString: strerror(errno)))
            }
        }
    }
}
