import ArcaFormat
import Foundation

/// A schema change as the event triggers record it (StreamSetup): the
/// command's tag, the statement text the client sent, the search_path it
/// ran under and the role that logged in. Decoded from a logical message
/// `arca.ddl` whose content is a MAC (64 hex digits) and this JSON.
struct SchemaChangeMessage: Decodable, Equatable {
    /// `ddl`, or `rewrite` when a table's rows were rewritten (table_rewrite).
    var kind: String
    var tag: String
    var query: String
    var searchPath: String
    var role: String

    /// The message, if its MAC is right under `key`; nil for a message
    /// that did not come from the triggers (any role can emit one).
    static func authenticated(_ content: [UInt8], key: String) -> SchemaChangeMessage? {
        guard content.count > 64, content.count <= 16 << 20 else { return nil }
        let mac = String(decoding: content[0..<64], as: UTF8.self)
        let body = Array(content[64...])
        let digest = Digest(.sha256)
        digest.update(Array(key.utf8))
        digest.update(body)
        digest.update(Array(key.utf8))
        let expected = Hex.encode(digest.finish())
        // Compared in full whatever differs: no early exit to time.
        guard zip(mac.utf8, expected.utf8).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0, mac.utf8.count == expected.utf8.count else { return nil }
        return try? JSONDecoder().decode(SchemaChangeMessage.self, from: Data(body))
    }

    /// Tags whose statement cannot be run again exactly: it also wrote
    /// rows that the stream carries on its own (CREATE TABLE AS, SELECT
    /// INTO), or it installs code whose version the target decides.
    static let unreplayableTags: Set<String> = [
        "CREATE TABLE AS", "SELECT INTO", "CREATE EXTENSION", "ALTER EXTENSION", "IMPORT FOREIGN SCHEMA",
    ]
    static let replayableVerbs: Set<String> = ["create", "alter", "drop", "comment", "grant", "revoke", "refresh", "security"]

    /// The statement to run again, or why it cannot be: replay runs the
    /// statement the client sent only when it is one statement, and that
    /// statement is the command itself (not a function or DO block that
    /// ran it, whose other effects the stream already holds).
    var replayStatement: Result<String, Reason> {
        if kind == "rewrite" { return .failure(Reason("\(tag) rewrote a table's rows, which the stream does not carry")) }
        if Self.unreplayableTags.contains(tag) { return .failure(Reason("\(tag) cannot be run again exactly")) }
        let statements: [SQLScript.Statement]
        do {
            statements = try SQLScript(query).statements
        } catch {
            return .failure(Reason("the text of the \(tag) statement could not be read"))
        }
        guard statements.count == 1, let statement = statements.first else {
            return .failure(Reason("\(tag) ran in a query of \(statements.count) statements"))
        }
        let verb = tag.split(separator: " ").first.map { $0.lowercased() } ?? ""
        let first = statement.text.prefix { $0.isLetter }.lowercased()
        guard Self.replayableVerbs.contains(verb), first == verb else {
            return .failure(Reason("\(tag) ran inside another statement (a function, DO block or prepared statement)"))
        }
        return .success(statement.text)
    }

    struct Reason: Error, Equatable {
        let text: String
        init(_ text: String) { self.text = text }
    }
}
