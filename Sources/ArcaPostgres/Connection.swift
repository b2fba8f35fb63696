import Foundation
import CLibpq

/// Rows of a finished query, copied out of libpq so no `PGresult` outlives
/// the call that produced it.
public struct QueryResult: Sendable {
    public let columns: [String]
    public let rows: [[String?]]
    /// The command tag's row count (`INSERT 0 5`, `COPY 12`), when there is one.
    public let affectedRows: UInt64?

    public subscript(row: Int, column: String) -> String? {
        guard let index = columns.firstIndex(of: column) else { preconditionFailure("no column \(column)") }
        return rows[row][index]
    }

    public var singleValue: String? { rows.first?.first ?? nil }
}

/// One libpq connection. Owns its `PGconn` and closes it on `close()` or
/// deinit. Blocking and not thread-safe, like libpq: one thread uses a
/// connection at a time, and parallel work opens one connection per worker.
public final class PostgresConnection {
    private var handle: OpaquePointer?
    public let target: String

    /// Connects with a URL or conninfo string. `applicationName` shows in
    /// `pg_stat_activity`, so operators can see (and tests can find) Arca.
    public init(_ connection: ConnectionString, applicationName: String = "arca") throws {
        target = connection.redacted
        let conninfo = connection.conninfo + " application_name=\(ConnectionString.quoteValue(applicationName))"
            + (connection.value("connect_timeout") == nil ? " connect_timeout=10" : "")
        let conn = PQconnectdb(conninfo)
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            let message = conn.map { String(cString: PQerrorMessage($0)).trimmingTrailingNewlines() } ?? "out of memory"
            PQfinish(conn)
            throw PostgresError.connectionFailed(
                target: target, message: Self.oneLine(message).withoutSecret(connection.value("password")))
        }
        handle = conn
        // libpq's own texts (PQerrorMessage, used after a failed lo_* call or
        // a lost connection) then carry no DETAIL or CONTEXT, which quote rows.
        PQsetErrorVerbosity(conn, PQERRORS_TERSE)
        // NOTICEs (e.g. "truncate cascades") would go to stderr by default and
        // interleave with Arca's own output; nothing in them needs action.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
    }

    deinit { PQfinish(handle) }

    public func close() {
        PQfinish(handle)
        handle = nil
    }

    private var conn: OpaquePointer { connectionHandle }

    var connectionHandle: OpaquePointer {
        guard let handle else { preconditionFailure("connection used after close()") }
        return handle
    }

    public var isAlive: Bool { handle != nil && PQstatus(handle) == CONNECTION_OK }
    public var serverVersionNumber: Int { Int(PQserverVersion(conn)) }
    public var backendPID: Int32 { PQbackendPID(conn) }
    public var database: String { String(cString: PQdb(conn)) }
    public var user: String { String(cString: PQuser(conn)) }

    /// Runs one or more statements (simple query protocol) and returns the
    /// last result.
    @discardableResult
    public func execute(_ sql: String, during: @autoclosure () -> String? = nil) throws -> QueryResult {
        let result = PQexec(conn, sql)
        defer { PQclear(result) }
        return try consume(result, during: during() ?? Self.summary(of: sql))
    }

    /// Runs one statement with text parameters (`$1`, `$2`, …).
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?], during: @autoclosure () -> String? = nil) throws -> QueryResult {
        let cStrings = parameters.map { $0.flatMap { strdup($0) } }
        defer { cStrings.forEach { free($0) } }
        let values = cStrings.map { UnsafePointer($0) }
        let result = values.withUnsafeBufferPointer {
            PQexecParams(conn, sql, Int32(parameters.count), nil, $0.baseAddress, nil, nil, 0)
        }
        defer { PQclear(result) }
        return try consume(result, during: during() ?? Self.summary(of: sql))
    }

    /// Prepares statement `name` (text parameters, their types inferred
    /// by the server from where they stand).
    public func prepare(_ name: String, _ sql: String, parameterCount: Int, during: @autoclosure () -> String) throws {
        let result = PQprepare(conn, name, sql, Int32(parameterCount), nil)
        defer { PQclear(result) }
        _ = try consume(result, during: during())
    }

    /// Runs prepared statement `name` with text parameters given as bytes
    /// in the session's client encoding (nil: NULL), and returns the rows
    /// it affected. The bytes go to the server as they are: no text is
    /// decoded or pasted into SQL.
    @discardableResult
    public func executePrepared(_ name: String, _ values: [[UInt8]?], during: @autoclosure () -> String) throws -> UInt64 {
        let result = Self.withParameters(values) { count, pointers in
            PQexecPrepared(conn, name, count, pointers, nil, nil, 0)
        }
        defer { PQclear(result) }
        return try consume(result, during: during()).affectedRows ?? 0
    }

    /// `values` as the NUL-terminated C strings libpq takes, for `body`.
    static func withParameters<T>(_ values: [[UInt8]?], _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> T) -> T {
        var storage: [UInt8] = []
        var offsets: [Int?] = []
        for value in values {
            guard let value else { offsets.append(nil); continue }
            offsets.append(storage.count)
            storage.append(contentsOf: value)
            storage.append(0)
        }
        return storage.withUnsafeBufferPointer { bytes in
            let base = UnsafeRawPointer(bytes.baseAddress).map { $0.assumingMemoryBound(to: CChar.self) }
            let pointers: [UnsafePointer<CChar>?] = offsets.map { offset in
                guard let offset, let base else { return nil }
                return base + offset
            }
            return pointers.withUnsafeBufferPointer { body(Int32(values.count), $0.baseAddress) }
        }
    }

    // MARK: Pipeline

    /// libpq's pipeline mode: statements are sent without waiting for
    /// each one's result, and their results read in order after a sync
    /// point. While in it, only `sendPrepared`, `pipelineSync`,
    /// `pipelineResult` and `awaitSync` may be used.
    public func enterPipelineMode(during: @autoclosure () -> String) throws {
        guard PQenterPipelineMode(conn) == 1 else { throw lostOrFailed(during: during()) }
    }

    /// Leaves pipeline mode; every result must have been read.
    public func exitPipelineMode(during: @autoclosure () -> String) throws {
        guard PQexitPipelineMode(conn) == 1 else { throw lostOrFailed(during: during()) }
    }

    /// Queues prepared statement `name` with text parameters (as `executePrepared`).
    public func sendPrepared(_ name: String, _ values: [[UInt8]?], during: @autoclosure () -> String) throws {
        let sent = Self.withParameters(values) { count, pointers in
            PQsendQueryPrepared(conn, name, count, pointers, nil, nil, 0)
        }
        guard sent == 1 else { throw lostOrFailed(during: during()) }
    }

    /// Marks a sync point and sends what is queued.
    public func pipelineSync(during: @autoclosure () -> String) throws {
        guard PQpipelineSync(conn) == 1 else { throw lostOrFailed(during: during()) }
    }

    /// The outcome of the next queued statement: the rows it affected, or
    /// its error (a statement after a failed one is skipped by the server,
    /// and reported as nil).
    public func pipelineResult(during: @autoclosure () -> String) throws -> Result<UInt64, PostgresError>? {
        guard let result = PQgetResult(conn) else { throw lostOrFailed(during: during()) }
        defer {
            PQclear(result)
            // Each statement's results end with a NULL.
            while let extra = PQgetResult(conn) { PQclear(extra) }
        }
        if PQresultStatus(result) == PGRES_PIPELINE_ABORTED { return nil }
        do {
            return .success(try consume(result, during: during()).affectedRows ?? 0)
        } catch let error as PostgresError {
            return .failure(error)
        }
    }

    /// Reads up to the sync point's result.
    public func awaitSync(during: @autoclosure () -> String) throws {
        guard let result = PQgetResult(conn) else { throw lostOrFailed(during: during()) }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_PIPELINE_SYNC else {
            throw PostgresError.unexpectedResponse(during: during(), message: "a result where the pipeline's sync point was expected")
        }
    }

    /// After a failure in pipeline mode: marks a sync point, reads every
    /// result up to it whatever they are, and leaves pipeline mode, so the
    /// connection can run ROLLBACK. False when that could not be done (the
    /// connection is then of no more use; closing it rolls back).
    @discardableResult
    public func abandonPipeline() -> Bool {
        guard PQpipelineSync(conn) == 1 else { return false }
        // Each statement's results end with a NULL; the sync point's result
        // ends the queue. A bounded number of reads: a broken connection
        // answers NULL for ever.
        var nulls = 0
        while nulls < 100_000, PQstatus(conn) == CONNECTION_OK {
            guard let result = PQgetResult(conn) else {
                nulls += 1
                continue
            }
            let status = PQresultStatus(result)
            PQclear(result)
            if status == PGRES_PIPELINE_SYNC { break }
        }
        return PQexitPipelineMode(conn) == 1
    }

    // MARK: COPY

    /// Runs `COPY … TO STDOUT` and hands each row's bytes to `body` (the
    /// buffer is freed after `body` returns). Returns the server's row count.
    /// If `body` throws, the COPY is cancelled and the error rethrown; the
    /// connection stays usable when the server is still there.
    public func copyOut(_ sql: String, during: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> UInt64 {
        let start = PQexec(conn, sql)
        defer { PQclear(start) }
        guard PQresultStatus(start) == PGRES_COPY_OUT else {
            _ = try consume(start, during: during)
            throw PostgresError.unexpectedResponse(during: during, message: "the server did not start COPY OUT")
        }
        var buffer: UnsafeMutablePointer<CChar>?
        while true {
            let length = PQgetCopyData(conn, &buffer, 0)
            if length > 0, let row = buffer {
                defer { PQfreemem(row) }
                do {
                    try body(UnsafeRawBufferPointer(start: row, count: Int(length)))
                } catch {
                    cancelRunningCopyOut()
                    throw error
                }
            } else if length == -1 {
                break
            } else {
                // -2: the read failed; the result queue says why.
                break
            }
        }
        return try finishCommand(during: during)
    }

    /// Runs `COPY … FROM STDIN` and lets `body` send data through the writer.
    /// Returns the server's row count. If `body` throws, the COPY is aborted
    /// (the server rolls back the statement) and the error rethrown.
    public func copyIn(_ sql: String, during: String, _ body: (CopyInWriter) throws -> Void) throws -> UInt64 {
        let start = PQexec(conn, sql)
        defer { PQclear(start) }
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            _ = try consume(start, during: during)
            throw PostgresError.unexpectedResponse(during: during, message: "the server did not start COPY IN")
        }
        let writer = CopyInWriter(conn: conn, during: during)
        do {
            try body(writer)
        } catch {
            if PQputCopyEnd(conn, "aborted by arca: \(error)".prefix(500).description) == 1 {
                _ = try? finishCommand(during: during)
            }
            throw error
        }
        guard PQputCopyEnd(conn, nil) == 1 else { throw lostOrFailed(during: during) }
        return try finishCommand(during: during)
    }

    // MARK: Results

    /// Drains the result queue after COPY, returning the `COPY n` count.
    private func finishCommand(during: String) throws -> UInt64 {
        var count: UInt64 = 0
        var failure: Error?
        while let result = PQgetResult(conn) {
            defer { PQclear(result) }
            if failure != nil { continue }
            do {
                count = try consume(result, during: during).affectedRows ?? 0
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        if PQstatus(conn) != CONNECTION_OK { throw lostOrFailed(during: during) }
        return count
    }

    private func cancelRunningCopyOut() {
        if let cancel = PQgetCancel(conn) {
            var errorBuffer = [CChar](repeating: 0, count: 256)
            _ = PQcancel(cancel, &errorBuffer, Int32(errorBuffer.count))
            PQfreeCancel(cancel)
        }
        var buffer: UnsafeMutablePointer<CChar>?
        while PQgetCopyData(conn, &buffer, 0) > 0 {
            PQfreemem(buffer)
        }
        while let result = PQgetResult(conn) { PQclear(result) }
    }

    private func consume(_ result: OpaquePointer?, during: String) throws -> QueryResult {
        guard let result else { throw lostOrFailed(during: during) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_COPY_OUT, PGRES_COPY_IN:
            let columnCount = Int(PQnfields(result))
            let rowCount = Int(PQntuples(result))
            let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
            var rows: [[String?]] = []
            rows.reserveCapacity(rowCount)
            for row in 0..<rowCount {
                rows.append((0..<columnCount).map { column in
                    PQgetisnull(result, Int32(row), Int32(column)) == 1
                        ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
                })
            }
            let tuples = String(cString: PQcmdTuples(result))
            return QueryResult(columns: columns, rows: rows, affectedRows: UInt64(tuples))
        default:
            if PQstatus(conn) != CONNECTION_OK { throw lostOrFailed(during: during) }
            let error = Self.serverError(of: result)
            // Class 57P: the server is shutting down or the backend was
            // terminated; the connection is gone even if libpq has not noticed.
            if error.sqlState.hasPrefix("57P") { throw PostgresError.connectionLost(during: during, message: error.safeMessage) }
            throw PostgresError.server(error, during: during)
        }
    }

    /// The error for a failed libpq call: a lost connection, or the server's
    /// message (libpq keeps the last one, e.g. after a failed `lo_*` call).
    func lostOrFailed(during: String) -> PostgresError {
        let message = Self.oneLine(String(cString: PQerrorMessage(conn)))
        if PQstatus(conn) != CONNECTION_OK {
            return .connectionLost(during: during, message: message.isEmpty ? "server closed the connection" : message)
        }
        return .unexpectedResponse(during: during, message: message.isEmpty ? "no result" : message)
    }

    static func serverError(of result: OpaquePointer) -> ServerError {
        func field(_ code: Character) -> String? {
            PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) }
        }
        return ServerError(
            severity: field("V") ?? field("S") ?? "ERROR",
            sqlState: field("C") ?? "XX000",
            message: field("M") ?? oneLine(String(cString: PQresultErrorMessage(result))),
            detail: field("D"), hint: field("H"), context: field("W"),
            schema: field("s"), table: field("t"), column: field("c"), dataType: field("d"), constraint: field("n"),
            sourceFile: field("F"), sourceFunction: field("R"))
    }

    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }

    /// A short description of a statement for error messages: its first
    /// words, never its data.
    static func summary(of sql: String) -> String {
        let words = sql.split(whereSeparator: \.isWhitespace).prefix(4).joined(separator: " ")
        return "\"\(words)\(sql.count > words.count ? " …" : "")\""
    }
}

/// Sends data during `COPY … FROM STDIN`. Only valid inside `copyIn`'s body.
public final class CopyInWriter {
    private let conn: OpaquePointer
    private let during: String

    init(conn: OpaquePointer, during: String) {
        self.conn = conn
        self.during = during
    }

    public func send(_ bytes: UnsafeRawBufferPointer) throws {
        guard !bytes.isEmpty else { return }
        var remaining = bytes
        // In pieces: libpq copies each call's bytes into its output buffer,
        // which grows to the largest piece and never shrinks (a whole 4 MiB
        // chunk made it 8 MiB per connection).
        while !remaining.isEmpty {
            let count = min(remaining.count, 64 << 10)
            let sent = remaining.baseAddress!.withMemoryRebound(to: CChar.self, capacity: count) {
                PQputCopyData(conn, $0, Int32(count))
            }
            guard sent == 1 else {
                let message = PostgresConnection.oneLine(String(cString: PQerrorMessage(conn)))
                if PQstatus(conn) != CONNECTION_OK { throw PostgresError.connectionLost(during: during, message: message) }
                throw PostgresError.unexpectedResponse(during: during, message: message)
            }
            remaining = UnsafeRawBufferPointer(rebasing: remaining[count...])
        }
    }
}
