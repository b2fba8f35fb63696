/// An error reported by the server, with the fields libpq gives us.
///
/// `description` is what Arca shows, logs, audits and answers over the API:
/// the SQLSTATE, the message where its wording cannot carry row values, and
/// the names of the schema, table, column, data type and constraint. The
/// DETAIL ("Failing row contains (…)", "Key (id)=(7) already exists"), the
/// CONTEXT (COPY quotes the offending line) and messages that can quote
/// values are kept out of it: they hold patient data. `unredactedReport` has
/// everything, for an interactive terminal with `--verbose` only.
public struct ServerError: Sendable, Equatable, CustomStringConvertible {
    public var severity: String
    public var sqlState: String
    public var message: String
    public var detail: String?
    public var hint: String?
    public var context: String?
    public var schema: String?
    public var table: String?
    public var column: String?
    public var dataType: String?
    public var constraint: String?
    /// The server's source file and function that raised the error: tells a
    /// built-in message from one a procedural-language function wrote.
    public var sourceFile: String?
    public var sourceFunction: String?

    public init(
        severity: String = "ERROR", sqlState: String, message: String, detail: String? = nil, hint: String? = nil,
        context: String? = nil, schema: String? = nil, table: String? = nil, column: String? = nil,
        dataType: String? = nil, constraint: String? = nil, sourceFile: String? = nil, sourceFunction: String? = nil
    ) {
        self.severity = severity
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.context = context
        self.schema = schema
        self.table = table
        self.column = column
        self.dataType = dataType
        self.constraint = constraint
        self.sourceFile = sourceFile
        self.sourceFunction = sourceFunction
    }

    public var description: String {
        var text = "\(safeMessage) (SQLSTATE \(sqlState)"
        if !names.isEmpty { text += "; " + names.joined(separator: ", ") }
        text += ")"
        if messageIsSafe, let hint { text += "; hint: \(hint)" }
        return text
    }

    /// Everything the server said, row values included. Only for a person at
    /// a terminal who asked for it (`--verbose`): never for logs, the audit
    /// trail, the API or files.
    public var unredactedReport: String {
        var lines = ["\(severity):  \(message) (SQLSTATE \(sqlState))"]
        if let detail { lines.append("DETAIL:  \(detail)") }
        if let hint { lines.append("HINT:  \(hint)") }
        if let context { lines.append("CONTEXT:  \(context)") }
        return lines.joined(separator: "\n")
    }

    /// The primary message, or a fixed sentence for its SQLSTATE when the
    /// message can quote values.
    public var safeMessage: String {
        messageIsSafe ? message : Self.withheldMessage(sqlState: sqlState, raisedByFunction: raisedByFunction)
    }

    /// The names the server reported, which identify objects, never rows.
    var names: [String] {
        var names: [String] = []
        if let constraint { names.append("constraint \(SQLIdentifier.quote(constraint))") }
        if let table {
            names.append("table " + (schema.map { SQLIdentifier.qualified($0, table) } ?? SQLIdentifier.quote(table)))
        } else if let schema {
            names.append("schema \(SQLIdentifier.quote(schema))")
        }
        if let column { names.append("column \(SQLIdentifier.quote(column))") }
        if let dataType { names.append("type \(SQLIdentifier.quote(dataType))") }
        return names
    }

    /// SQLSTATE classes whose built-in messages name objects and quote no
    /// values (PostgreSQL's errcodes.txt). Class 22 (data exception) is not
    /// here: its messages quote the rejected input (`invalid input syntax for
    /// type integer: "PATIENT-1"`); nor are P0, 38, 39, 2F and HV, whose
    /// messages functions, external routines and foreign servers write, nor
    /// codes a user invented.
    static let classesWithSafeMessages: Set<Substring> = [
        "08", "0A", "0B", "0F", "0L", "0P", "0Z", "21", "23", "24", "25", "26", "27", "28", "2B", "2D",
        "34", "3B", "3D", "3F", "40", "42", "44", "53", "54", "55", "57", "58", "72", "F0", "XX",
    ]

    var messageIsSafe: Bool {
        Self.classesWithSafeMessages.contains(sqlState.prefix(2)) && !raisedByFunction
    }

    /// A message written by a function (PL/pgSQL's RAISE and ASSERT, PL/Perl,
    /// PL/Tcl, PL/Python) can say anything, under any SQLSTATE it chooses.
    var raisedByFunction: Bool {
        if let sourceFunction, ["exec_stmt_raise", "exec_stmt_assert"].contains(sourceFunction) { return true }
        guard let sourceFile else { return false }
        return sourceFile.hasPrefix("pl_") || sourceFile.hasPrefix("plpy") || ["plperl.c", "pltcl.c"].contains(sourceFile)
    }

    static func withheldMessage(sqlState: String, raisedByFunction: Bool) -> String {
        let withheld = "the server's message is withheld because it can contain row values"
        if raisedByFunction { return "a function raised an error (\(withheld))" }
        let what: String = switch sqlState {
        case "22001": "a value is too long for its column's type"
        case "22003": "a numeric value is out of range for its type"
        case "22007", "22008": "a date or time value is malformed or out of range"
        case "22012": "division by zero"
        case "22021": "a value contains bytes that are not valid in the database's encoding"
        case "22P02": "a value is not valid input for its type"
        case "22P04": "the COPY data is malformed"
        case "22P05": "a character has no equivalent in the target encoding"
        case "2200N": "a value is not well-formed XML"
        case "22032": "a value is not valid JSON"
        default:
            switch sqlState.prefix(2) {
            case "22": "a value was rejected as invalid data"
            case "P0": "a PL/pgSQL function raised an error"
            case "38", "39": "an external routine raised an error"
            case "2F": "an SQL function raised an error"
            case "HV": "a foreign data wrapper reported an error"
            default: "the server reported an error with an SQLSTATE Arca does not know"
            }
        }
        return "\(what) (\(withheld))"
    }

    /// The server errors inside `error`, however deeply other errors wrap it
    /// (`RestoreError.table(_, PostgresError.server(…))`), outermost first.
    public static func all(in error: Any) -> [ServerError] {
        var found: [ServerError] = []
        func visit(_ value: Any, depth: Int) {
            if let server = value as? ServerError { found.append(server); return }
            guard depth < 8 else { return }
            for child in Mirror(reflecting: value).children { visit(child.value, depth: depth + 1) }
        }
        visit(error, depth: 0)
        return found
    }
}

/// What can go wrong talking to PostgreSQL. `during` says what we were doing,
/// in words (never SQL containing data, never a password).
public enum PostgresError: Error, Sendable, CustomStringConvertible {
    /// The connection could not be made or broke (class 08, or the server
    /// shutting down or ending the session, class 57P): worth a retry.
    public var isConnectionProblem: Bool {
        switch self {
        case .connectionFailed, .connectionLost: true
        case .server(let error, _): error.sqlState.hasPrefix("08") || error.sqlState.hasPrefix("57P")
        case .unexpectedResponse: false
        }
    }

    /// Could not connect. `target` is the redacted connection string.
    case connectionFailed(target: String, message: String)
    /// The connection broke while we used it (server stopped, backend terminated, network).
    case connectionLost(during: String, message: String)
    /// The server refused a statement.
    case server(ServerError, during: String)
    /// The server answered something the protocol does not allow here.
    case unexpectedResponse(during: String, message: String)

    public var description: String {
        switch self {
        case .connectionFailed(let target, let message):
            "Cannot connect to PostgreSQL at \(target): \(message). Check the host, port, user and password, and that the server is running."
        case .connectionLost(let during, let message):
            "The connection to PostgreSQL was lost during \(during): \(Self.sentence(message)) Check that the server is running and reachable."
        case .server(let error, let during):
            "PostgreSQL refused \(during): \(error)."
        case .unexpectedResponse(let during, let message):
            "Unexpected answer from PostgreSQL during \(during): \(message)."
        }
    }

    /// libpq's messages sometimes end with a full stop and sometimes not.
    private static func sentence(_ text: String) -> String {
        text.hasSuffix(".") ? text : text + "."
    }

    /// The server's SQLSTATE, when the server reported the error.
    public var sqlState: String? {
        if case .server(let error, _) = self { return error.sqlState }
        return nil
    }
}
