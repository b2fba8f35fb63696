import Foundation
import CLibpq

/// A connection string as the user gave it (`postgresql://` URL or
/// `key=value` conninfo), parsed by libpq itself so both forms mean exactly
/// what they mean to every other PostgreSQL tool.
public struct ConnectionString: Sendable, Equatable {
    /// The options the user set explicitly, in libpq's order.
    public let options: [(key: String, value: String)]

    public enum ParseError: Error, CustomStringConvertible {
        /// libpq's message, with the parts it quotes from the string withheld.
        case invalid(String)
        public var description: String {
            switch self {
            case .invalid(let message):
                "Invalid connection string: \(message) (what libpq quotes from the string is shown as \"…\": it can be the password). "
                    + "Use postgresql://user:password@host:port/database, with %25 for a % in the password, or host=… port=… dbname=… user=…."
            }
        }
    }

    public init(_ text: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(text, &error) else {
            let message = error.map { String(cString: $0).trimmingTrailingNewlines() } ?? "out of memory"
            if let error { PQfreemem(error) }
            throw ParseError.invalid(Self.withholdingQuotedText(message))
        }
        defer { PQconninfoFree(parsed) }
        var options: [(String, String)] = []
        var cursor = parsed
        while let keyword = cursor.pointee.keyword {
            if let value = cursor.pointee.val { options.append((String(cString: keyword), String(cString: value))) }
            cursor += 1
        }
        self.options = options
    }

    private init(options: [(key: String, value: String)]) { self.options = options }

    public static func == (lhs: ConnectionString, rhs: ConnectionString) -> Bool {
        lhs.options.elementsEqual(rhs.options) { $0.key == $1.key && $0.value == $1.value }
    }

    public func value(_ key: String) -> String? { options.last { $0.key == key }?.value }

    /// The same connection to another database on the same server.
    public func replacing(database: String) -> ConnectionString {
        ConnectionString(options: options.filter { $0.key != "dbname" } + [("dbname", database)])
    }

    /// The same connection with one option set (e.g. `replication=database`
    /// for the walsender protocol).
    public func setting(_ key: String, to value: String) -> ConnectionString {
        ConnectionString(options: options.filter { $0.key != key } + [(key, value)])
    }

    /// The same connection string without one option (e.g. the password,
    /// which child processes get through PGPASSWORD instead of argv).
    public func removing(_ key: String) -> ConnectionString {
        ConnectionString(options: options.filter { $0.key != key })
    }

    /// A conninfo string libpq accepts, password included: for connecting only.
    public var conninfo: String {
        options.map { "\($0.key)=\(Self.quoteValue($0.value))" }.joined(separator: " ")
    }

    /// What may be shown to people and written to logs: never the password.
    public var redacted: String {
        let shown = ["host", "hostaddr", "port", "dbname", "user"]
        let parts = shown.compactMap { key in value(key).map { "\(key)=\($0)" } }
        return parts.isEmpty ? "(libpq defaults)" : parts.joined(separator: " ")
    }

    /// libpq's parse errors quote the offending token, or the whole URI
    /// (`invalid percent-encoded token: "50%off"`), which can be the
    /// password: everything from the first quoted part that is not
    /// punctuation libpq itself names (`missing "=" after …`) to the last
    /// quote becomes "…" (a password may hold quotes itself).
    static func withholdingQuotedText(_ message: String) -> String {
        let kept: Set<Substring> = ["=", ":", "/", "]", "["]
        let parts = message.split(separator: "\"", omittingEmptySubsequences: false)
        // Odd-numbered parts are inside quotes.
        guard let first = parts.indices.first(where: { $0 % 2 == 1 && !kept.contains(parts[$0]) }) else { return message }
        let shown = parts[..<first].joined(separator: "\"")
        let last = parts.count - 1
        // An unpaired last quote leaves the tail inside the quoted text.
        return last % 2 == 1 ? shown + "\"…" : shown + "\"…\"" + parts[last]
    }

    public static func quoteValue(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}

extension String {
    /// This text with every occurrence of `secret` (a password libpq may have
    /// echoed) replaced.
    public func withoutSecret(_ secret: String?) -> String {
        guard let secret, !secret.isEmpty else { return self }
        return replacingOccurrences(of: secret, with: "<redacted>")
    }

    func trimmingTrailingNewlines() -> String {
        var text = self
        while text.last?.isNewline == true { text.removeLast() }
        return text
    }
}
