/// A SQL script cut into its statements by a lexer that knows what psql
/// knows: single-quoted strings (with `''`, and backslash escapes in
/// `E'…'` or when `standard_conforming_strings` is off), double-quoted
/// identifiers (`""`), dollar quoting (`$tag$…$tag$`), `--` and nested
/// `/* */` comments, parentheses, and the `BEGIN … END` body of a
/// SQL-standard function (`BEGIN ATOMIC`), inside all of which a `;` does
/// not end a statement.
///
/// Object names and string literals in a schema dump come from the source
/// database's users: a name may hold `;`, newlines, quotes or a line that
/// looks like pg_dump's `-- Name: …` comments. Cutting a script at line
/// ends would let such a name run its own SQL as the restoring role, so
/// every restore path that needs statements one at a time gets them from
/// here (`SchemaScripts`, `PostDataScript`), never from line heuristics.
struct SQLScript: Sendable {
    struct Statement: Sendable, Equatable {
        /// From the statement's first token to its `;`, comments inside included.
        var text: String
        /// What a restore needs to know of it, told by its first tokens,
        /// which are not kept: a schema of 10,000 tables has some 40,000
        /// statements, and their tokens were 10 MiB.
        var kind: Kind
    }

    enum Kind: Sendable, Equatable {
        /// `SET name …` or `SELECT pg_catalog.set_config('name', …)`, which
        /// pg_restore writes to prepare the session; the setting's identity
        /// (the name, or the whole statement for `set_config`).
        case setting(String)
        /// `CREATE [UNIQUE] INDEX …`, and `ALTER TABLE [ONLY] name ADD
        /// CONSTRAINT name PRIMARY KEY|UNIQUE|EXCLUDE …`: the slow builds
        /// that depend on nothing else of post-data.
        case indexBuild
        /// `CREATE [UNLOGGED|FOREIGN|MATERIALIZED] TABLE|SEQUENCE|VIEW …`.
        case relation
        /// `ALTER LARGE OBJECT …` (its owner).
        case largeObjectChange
        case other

        /// Whether the statement's transaction keeps a lock on the object
        /// it makes or changes until it ends.
        var locksItsObject: Bool { self == .relation || self == .indexBuild || self == .largeObjectChange }

        init(_ tokens: [Token], text: String) {
            func starts(with words: String...) -> Bool {
                tokens.count >= words.count && zip(tokens, words).allSatisfy { $0 == .word($1) }
            }
            if starts(with: "set"), tokens.count > 1, case .word(let name) = tokens[1] {
                self = .setting(name)
            } else if starts(with: "select", "pg_catalog"), tokens.count > 3, tokens[2] == .symbol(UInt8(ascii: ".")), tokens[3] == .word("set_config") {
                self = .setting(text)
            } else if Self.buildsIndex(tokens) {
                self = .indexBuild
            } else if starts(with: "create") {
                var words = tokens.dropFirst()
                if [.word("unlogged"), .word("foreign"), .word("materialized")].contains(words.first) { words = words.dropFirst() }
                self = [.word("table"), .word("sequence"), .word("view")].contains(words.first) ? .relation : .other
            } else if starts(with: "alter", "large", "object") {
                self = .largeObjectChange
            } else {
                self = .other
            }
        }

        private static func buildsIndex(_ tokens: [Token]) -> Bool {
            var rest = tokens[...]
            func take(_ word: String) -> Bool {
                guard rest.first == .word(word) else { return false }
                rest = rest.dropFirst()
                return true
            }
            guard take("create") || take("alter") else { return false }
            if tokens.first == .word("create") {
                _ = take("unique")
                return take("index")
            }
            guard take("table") else { return false }
            _ = take("only")
            guard skipName(&rest), take("add"), take("constraint"), let name = rest.first, isName(name) else { return false }
            rest = rest.dropFirst()
            return [.word("primary"), .word("unique"), .word("exclude")].contains(rest.first)
        }

        /// Skips `name [. name …]`.
        private static func skipName(_ tokens: inout ArraySlice<Token>) -> Bool {
            guard let first = tokens.first, isName(first) else { return false }
            tokens = tokens.dropFirst()
            while tokens.first == .symbol(UInt8(ascii: ".")) {
                tokens = tokens.dropFirst()
                guard let next = tokens.first, isName(next) else { return false }
                tokens = tokens.dropFirst()
            }
            return true
        }

        private static func isName(_ token: Token) -> Bool {
            switch token {
            case .word, .quotedIdentifier: true
            default: false
            }
        }
    }

    enum Token: Sendable, Equatable {
        /// An unquoted word (keyword or identifier), lowercased.
        case word(String)
        /// A quoted identifier.
        case quotedIdentifier
        /// A string, dollar-quoted, bit-string or numeric constant.
        case constant
        case symbol(UInt8)
    }

    enum LexError: Error, Sendable, CustomStringConvertible, Equatable {
        case unterminated(String, line: Int)
        case metaCommand(String, line: Int)

        var description: String {
            switch self {
            case .unterminated(let what, let line):
                "the script ends inside \(what) that starts on line \(line)"
            case .metaCommand(let command, let line):
                "the script holds the psql meta-command \(command) on line \(line), which pg_restore does not write there"
            }
        }
    }

    var statements: [Statement] = []

    /// How many of a statement's first tokens tell its kind.
    static let leadingWordLimit = 12

    /// Cuts `text` into statements. The psql meta-commands `\restrict` and
    /// `\unrestrict` that pg_dump 15.14 and later write around a plain
    /// script, alone on their lines between statements, are left out; any
    /// other backslash outside a literal is an error.
    init(_ text: String) throws(LexError) {
        var lexer = Lexer(bytes: Array(text.utf8), final: true)
        statements = try lexer.run()
    }

    /// Cuts a script that arrives in pieces (pg_restore's output, read as it
    /// is written) into the same statements `init` finds in the whole, and
    /// hands each on as soon as its `;` arrives: what is held is the
    /// statement under way, never the script.
    struct Stream {
        private var pending: [UInt8] = []
        private var line = 1
        private var standardConformingStrings = true

        /// Adds the next piece; `body` receives the statements it completes.
        mutating func feed(_ piece: some Collection<UInt8>, _ body: (Statement) throws -> Void) throws {
            pending.append(contentsOf: piece)
            // Without a `;` in the new bytes no statement can have ended.
            guard piece.contains(UInt8(ascii: ";")) else { return }
            try lex(final: false, body)
        }

        /// The end of the script: the rest must be complete.
        mutating func finish(_ body: (Statement) throws -> Void) throws {
            try lex(final: true, body)
        }

        private mutating func lex(final: Bool, _ body: (Statement) throws -> Void) throws {
            var lexer = Lexer(bytes: pending, final: final, line: line, standardConformingStrings: standardConformingStrings)
            let statements = try lexer.run()
            pending.removeFirst(lexer.resume.position)
            line = lexer.resume.line
            standardConformingStrings = lexer.standardConformingStrings
            for statement in statements { try body(statement) }
        }
    }

    /// The statements joined back into one script.
    static func joined(_ statements: some Sequence<Statement>) -> String {
        statements.map(\.text).joined(separator: "\n")
    }
}

extension SQLScript {
    private struct Lexer {
        let bytes: [UInt8]
        /// Whether `bytes` end the script. When not, what runs into their
        /// end (a statement without its `;`, a comment, a literal) is left
        /// for the next piece: `resume` says where to start again.
        let final: Bool
        var position = 0
        var line: Int
        /// `SET standard_conforming_strings = off` makes backslashes in
        /// plain string literals escapes; pg_dump writes the setting first.
        var standardConformingStrings: Bool
        var resume: (position: Int, line: Int) = (0, 1)

        init(bytes: [UInt8], final: Bool, line: Int = 1, standardConformingStrings: Bool = true) {
            self.bytes = bytes
            self.final = final
            self.line = line
            self.standardConformingStrings = standardConformingStrings
        }

        // The current statement.
        var start: Int?
        var startLine = 1
        var parenDepth = 0
        var beginDepth = 0
        var tokens: [Token] = []
        /// First letters of the first words, as psql keeps them, to
        /// recognise `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
        var wordCount = 0
        var wordInitials: [UInt8] = []

        mutating func run() throws(LexError) -> [Statement] {
            var statements: [Statement] = []
            while position < bytes.count {
                let byte = bytes[position]
                let item = (position: position, line: line)
                do throws(LexError) {
                    try step(byte, into: &statements)
                } catch .unterminated where !final {
                    // Only the end of the bytes leaves something unterminated.
                    resume = start == nil ? item : (start!, startLine)
                    return statements
                }
                if incomplete {
                    resume = start == nil ? item : (start!, startLine)
                    return statements
                }
            }
            if let start {
                if !final {
                    resume = (start, startLine)
                    return statements
                }
                // A last statement without `;` (pg_restore always writes one).
                let text = String(decoding: bytes[start..<position], as: UTF8.self)
                if !text.allSatisfy(\.isWhitespace) { statements.append(Statement(text: text, kind: Kind(tokens, text: text))) }
            }
            resume = (position, line)
            return statements
        }

        /// Set when a piece ends inside a line comment or meta-command.
        var incomplete = false

        mutating func step(_ byte: UInt8, into statements: inout [Statement]) throws(LexError) {
            switch byte {
            case UInt8(ascii: "\n"):
                line += 1
                position += 1
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), 0x0C:
                position += 1
            case UInt8(ascii: "-") where peek(1) == UInt8(ascii: "-"):
                while position < bytes.count, bytes[position] != UInt8(ascii: "\n") { position += 1 }
                if position == bytes.count, !final { incomplete = true }
            case UInt8(ascii: "/") where peek(1) == UInt8(ascii: "*"):
                try skipBlockComment()
            case UInt8(ascii: "\\") where start == nil:
                try skipMetaCommand()
            case UInt8(ascii: "\\"):
                let command = bytes[position...].prefix { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: " ") }
                // Named whole in the error, not as far as a piece goes.
                if command.endIndex == bytes.count, !final {
                    incomplete = true
                    return
                }
                throw .metaCommand(String(decoding: command, as: UTF8.self), line: line)
            case UInt8(ascii: ";"):
                begin()
                position += 1
                if parenDepth == 0 && beginDepth == 0 {
                    statements.append(finish())
                }
            default:
                begin()
                try token()
            }
        }

        func peek(_ offset: Int) -> UInt8? {
            position + offset < bytes.count ? bytes[position + offset] : nil
        }

        mutating func begin() {
            guard start == nil else { return }
            start = position
            startLine = line
            parenDepth = 0
            beginDepth = 0
            tokens = []
            wordCount = 0
            wordInitials = []
        }

        mutating func finish() -> Statement {
            let text = String(decoding: bytes[start!..<position], as: UTF8.self)
            let statement = Statement(text: text, kind: Kind(tokens, text: text))
            start = nil
            if statement.kind == .setting("standard_conforming_strings") {
                let value = statement.text.lowercased()
                if value.contains("off") { standardConformingStrings = false } else if value.contains("on") { standardConformingStrings = true }
            }
            return statement
        }

        mutating func note(_ token: Token) {
            if tokens.count < SQLScript.leadingWordLimit { tokens.append(token) }
        }

        mutating func token() throws(LexError) {
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "'"):
                note(.constant)
                try skipQuoted(UInt8(ascii: "'"), backslashEscapes: !standardConformingStrings, what: "a string literal")
            case UInt8(ascii: "\""):
                note(.quotedIdentifier)
                try skipQuoted(UInt8(ascii: "\""), backslashEscapes: false, what: "a quoted identifier")
            case UInt8(ascii: "$") where dollarTag() != nil:
                note(.constant)
                try skipDollarQuoted(dollarTag()!)
            case UInt8(ascii: "("):
                note(.symbol(byte))
                parenDepth += 1
                position += 1
            case UInt8(ascii: ")"):
                note(.symbol(byte))
                parenDepth = max(0, parenDepth - 1)
                position += 1
            case _ where Self.isIdentifierStart(byte):
                try word()
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                note(.constant)
                while position < bytes.count, Self.isIdentifierPart(bytes[position]) || bytes[position] == UInt8(ascii: ".") { position += 1 }
            default:
                note(.symbol(byte))
                position += 1
            }
        }

        /// An unquoted word, or the prefix of `E'…'`, `U&'…'`, `U&"…"`, `B'…'`, `X'…'`, `N'…'`.
        mutating func word() throws(LexError) {
            let first = bytes[position] | 0x20
            if peek(1) == UInt8(ascii: "'"), first == UInt8(ascii: "e") {
                note(.constant)
                position += 1
                try skipQuoted(UInt8(ascii: "'"), backslashEscapes: true, what: "a string literal")
                return
            }
            if peek(1) == UInt8(ascii: "'"), first == UInt8(ascii: "b") || first == UInt8(ascii: "x") || first == UInt8(ascii: "n") {
                note(.constant)
                position += 1
                try skipQuoted(UInt8(ascii: "'"), backslashEscapes: !standardConformingStrings, what: "a string literal")
                return
            }
            if first == UInt8(ascii: "u"), peek(1) == UInt8(ascii: "&"), let quote = peek(2), quote == UInt8(ascii: "'") || quote == UInt8(ascii: "\"") {
                note(quote == UInt8(ascii: "'") ? .constant : .quotedIdentifier)
                position += 2
                try skipQuoted(quote, backslashEscapes: false, what: quote == UInt8(ascii: "'") ? "a string literal" : "a quoted identifier")
                return
            }
            let wordStart = position
            while position < bytes.count, Self.isIdentifierPart(bytes[position]) { position += 1 }
            let text = String(decoding: bytes[wordStart..<position], as: UTF8.self).lowercased()
            note(.word(text))
            trackFunctionBody(text)
        }

        /// psql's rule for SQL-standard function bodies: in a statement that
        /// starts `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, outside
        /// parentheses, `BEGIN` opens a block, `CASE` inside one opens
        /// another, and `END` closes one; `;` inside does not end the statement.
        mutating func trackFunctionBody(_ word: String) {
            if wordCount < 4 { wordInitials.append(["create", "function", "procedure", "or", "replace"].contains(word) ? word.utf8.first! : 0) }
            wordCount += 1
            let initials = wordInitials
            func initial(_ index: Int) -> UInt8 { index < initials.count ? initials[index] : 0 }
            let c = UInt8(ascii: "c"), f = UInt8(ascii: "f"), p = UInt8(ascii: "p"), o = UInt8(ascii: "o"), r = UInt8(ascii: "r")
            let routine = initial(0) == c
                && (initial(1) == f || initial(1) == p || (initial(1) == o && initial(2) == r && (initial(3) == f || initial(3) == p)))
            guard routine, parenDepth == 0 else { return }
            switch word {
            case "begin": beginDepth += 1
            case "case" where beginDepth >= 1: beginDepth += 1
            case "end" where beginDepth > 0: beginDepth -= 1
            default: break
            }
        }

        /// `$tag$` at the current position, or nil when the `$` starts a
        /// parameter (`$1`) or is not followed by a tag and `$`.
        func dollarTag() -> ArraySlice<UInt8>? {
            var end = position + 1
            if end < bytes.count, Self.isIdentifierStart(bytes[end]) {
                end += 1
                while end < bytes.count, Self.isIdentifierPart(bytes[end]), bytes[end] != UInt8(ascii: "$") { end += 1 }
            }
            guard end < bytes.count, bytes[end] == UInt8(ascii: "$") else { return nil }
            return bytes[position...end]
        }

        mutating func skipDollarQuoted(_ tag: ArraySlice<UInt8>) throws(LexError) {
            let openedOn = line
            position += tag.count
            while position < bytes.count {
                if bytes[position] == UInt8(ascii: "$"), bytes[position...].starts(with: tag) {
                    position += tag.count
                    return
                }
                if bytes[position] == UInt8(ascii: "\n") { line += 1 }
                position += 1
            }
            throw .unterminated("a dollar-quoted string", line: openedOn)
        }

        mutating func skipQuoted(_ quote: UInt8, backslashEscapes: Bool, what: String) throws(LexError) {
            let openedOn = line
            position += 1
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\n") { line += 1 }
                if backslashEscapes, byte == UInt8(ascii: "\\") {
                    if peek(1) == UInt8(ascii: "\n") { line += 1 }
                    position += 2
                    continue
                }
                position += 1
                if byte == quote {
                    // A doubled quote stands for itself.
                    guard position < bytes.count, bytes[position] == quote else { return }
                    position += 1
                }
            }
            throw .unterminated(what, line: openedOn)
        }

        mutating func skipBlockComment() throws(LexError) {
            let openedOn = line
            var depth = 0
            while position < bytes.count {
                if bytes[position] == UInt8(ascii: "/"), peek(1) == UInt8(ascii: "*") {
                    depth += 1
                    position += 2
                } else if bytes[position] == UInt8(ascii: "*"), peek(1) == UInt8(ascii: "/") {
                    depth -= 1
                    position += 2
                    if depth == 0 { return }
                } else {
                    if bytes[position] == UInt8(ascii: "\n") { line += 1 }
                    position += 1
                }
            }
            throw .unterminated("a comment", line: openedOn)
        }

        /// `\restrict KEY` / `\unrestrict KEY`, which run to the end of their line.
        mutating func skipMetaCommand() throws(LexError) {
            var end = position
            while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
            if end == bytes.count, !final {
                incomplete = true
                return
            }
            let command = bytes[position..<end].split(separator: UInt8(ascii: " "), maxSplits: 1).first.map { String(decoding: $0, as: UTF8.self) } ?? "\\"
            guard command == "\\restrict" || command == "\\unrestrict" else { throw .metaCommand(command, line: line) }
            position = end
        }

        static func isIdentifierStart(_ byte: UInt8) -> Bool {
            (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") || byte == UInt8(ascii: "_") || byte >= 0x80
        }

        static func isIdentifierPart(_ byte: UInt8) -> Bool {
            isIdentifierStart(byte) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "$")
        }
    }
}
