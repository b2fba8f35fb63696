/// An error reported by the server, with the fields libpq gives us.
public struct ServerError: Sendable, Equatable, CustomStringConvertible {
    public var severity: String
    public var sqlState: String
    public var message: String
    public var detail: String?
    public var hint: String?

    public init(severity: String = "ERROR", sqlState: String, message: String, detail: String? = nil, hint: String? = nil) {
        self.severity = severity
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
    }

    public var description: String {
        var text = "\(message) (SQLSTATE \(sqlState))"
        if let detail { text += "; \(detail)" }
        if let hint { text += "; hint: \(hint)" }
        return text
    }
}

/// What can go wrong talking to PostgreSQL. `during` says what we were doing,
/// in words (never SQL containing data, never a password).
public enum PostgresError: Error, Sendable, CustomStringConvertible {
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
