import Foundation

/// The SQL that rebuilds the schema around the data, produced by pg_restore
/// from the schema dump an archive carries:
///
/// - `clean`: DROP statements for every object of the dump (`--clean`),
/// - `preData`: what must exist before rows are loaded (types, functions,
///   tables, sequences, views; two statements per large object). Not held:
///   pg_restore writes it again as it is run (see `ScriptSource`).
/// - `postData`: what is built after (keys, indexes, triggers, rules,
///   policies, materialized view refreshes).
struct SchemaScripts: Sendable {
    var clean: [SQLScript.Statement] = []
    var preData = ScriptSource()
    var postData: [SQLScript.Statement] = []
    /// At least how many objects a restore of these scripts locks until its
    /// transaction ends: the relations it creates (tables, sequences, views,
    /// indexes and keys) and the large objects whose owner it sets. A lower
    /// bound: a table's TOAST table and index are locked too, and a
    /// statement locks the objects it refers to.
    var lockedObjects = 0

    struct Options: Sendable {
        var clean = false
        var noOwner = false
        var noPrivileges = false
        /// Restore only these tables' relation-level objects (see `TableOfContents`).
        var keptObjects: Set<UInt32>?
        var largeObjects = true
    }

    /// `dump` produces the schema dump (pg_dump's custom format), which
    /// pg_restore reads from its standard input each time, so the dump is
    /// never written to disk. `workDirectory` is a private folder for the
    /// object list of a partial restore; it must last as long as the scripts.
    /// The pre-data script is read through once here, counting its locks,
    /// so that a script that cannot be cut into statements fails before
    /// anything is done on the target.
    static func generate(dump: @escaping PostgresTools.Input, workDirectory: String, tools: PostgresTools, options: Options) throws -> SchemaScripts {
        var common: [String] = []
        if options.noOwner { common.append("--no-owner") }
        if options.noPrivileges { common.append("--no-privileges") }
        if options.keptObjects != nil || !options.largeObjects {
            // --verbose adds each entry's dependencies to the listing.
            let listing = String(decoding: try tools.run("pg_restore", ["--list", "--verbose"], input: dump), as: UTF8.self)
            let contents = TableOfContents(listing: listing)
            let list = contents.selecting(objects: options.keptObjects, largeObjects: options.largeObjects)
            let listPath = workDirectory + "/restore.list"
            try Data(list.utf8).write(to: URL(fileURLWithPath: listPath))
            common.append("--use-list=\(listPath)")
        }
        func script(_ extra: [String]) throws -> [SQLScript.Statement] {
            var statements: [SQLScript.Statement] = []
            try ScriptSource(tools: tools, arguments: common + extra, dump: dump).statements { statements.append($0) }
            return statements
        }
        var scripts = SchemaScripts()
        scripts.preData = ScriptSource(tools: tools, arguments: common + ["--section=pre-data"], dump: dump)
        var locks = 0
        try scripts.preData.statements { locks += $0.kind.locksItsObject ? 1 : 0 }
        scripts.postData = try script(["--section=post-data"])
        scripts.lockedObjects = scripts.postData.reduce(locks) { $0 + ($1.kind.locksItsObject ? 1 : 0) }
        if options.clean {
            // pg_restore --clean prints the same script with one block of
            // DROP statements (for every section, in dependency order)
            // inserted after the header: those statements are the clean
            // script. Compared statement by statement, never line by line.
            scripts.clean = Array(insertedStatements(plain: try script([]), withClean: try script(["--clean", "--if-exists"])))
        }
        return scripts
    }

    /// The statements `withClean` has between its common prefix and suffix with `plain`.
    static func insertedStatements<Element: Equatable>(plain: [Element], withClean: [Element]) -> ArraySlice<Element> {
        var prefix = 0
        while prefix < plain.count, prefix < withClean.count, plain[prefix] == withClean[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < plain.count - prefix, suffix < withClean.count - prefix,
              plain[plain.count - 1 - suffix] == withClean[withClean.count - 1 - suffix] {
            suffix += 1
        }
        return withClean[prefix..<(withClean.count - suffix)]
    }
}

/// A script pg_restore writes from the schema dump, cut into statements as
/// it comes (`SQLScript.Stream`): each run of pg_restore streams it anew,
/// so a script of millions of statements is never held. Empty by default.
struct ScriptSource: Sendable {
    var tools: PostgresTools?
    var arguments: [String] = []
    var dump: PostgresTools.Input?

    /// Runs pg_restore and hands on each statement of its script, in order.
    func statements(_ body: (SQLScript.Statement) throws -> Void) throws {
        guard let tools, let dump else { return }
        var stream = SQLScript.Stream()
        do {
            try tools.run("pg_restore", arguments + ["--file=-"], input: dump) { data in
                try stream.feed(data, body)
            }
            try stream.finish(body)
        } catch let error as SQLScript.LexError {
            throw SchemaError.unreadableScript("\(error)")
        }
    }

    /// The statements in batches of at most `size` statements and about
    /// `bytes` bytes of text, each handed on as soon as it is full.
    func batches(of size: Int, bytes: Int = 1 << 20, _ body: ([SQLScript.Statement]) throws -> Void) throws {
        var batch: [SQLScript.Statement] = []
        var length = 0
        try statements { statement in
            batch.append(statement)
            length += statement.text.utf8.count
            if batch.count >= max(1, size) || length >= bytes {
                try body(batch)
                batch.removeAll(keepingCapacity: true)
                length = 0
            }
        }
        if !batch.isEmpty { try body(batch) }
    }
}

/// A post-data script cut into its statements (by `SQLScript`'s lexer),
/// so that the slow ones (index builds, primary and unique keys) can run in
/// parallel, on several connections, before the rest (foreign keys, which
/// need those keys; partition index attachments; triggers; rules;
/// policies; comments; privileges; materialized view refreshes), which runs
/// in order.
struct PostDataScript: Sendable {
    /// The session settings every connection runs first.
    var header: [SQLScript.Statement] = []
    /// Index and key builds, each with the settings in force where it stood.
    var parallel: [String] = []
    /// Everything else, settings included, in the script's order.
    var serial: [SQLScript.Statement] = []

    init(_ statements: [SQLScript.Statement]) {
        // Settings met after the header, latest per setting, in order.
        var settings: [(key: String, statement: SQLScript.Statement)] = []
        var inHeader = true
        for statement in statements {
            if case .setting(let key) = statement.kind {
                if inHeader {
                    header.append(statement)
                } else {
                    settings.removeAll { $0.key == key }
                    settings.append((key, statement))
                    serial.append(statement)
                }
                continue
            }
            inHeader = false
            if statement.kind == .indexBuild {
                parallel.append(SQLScript.joined(settings.map(\.statement) + [statement]))
            } else {
                serial.append(statement)
            }
        }
    }
}
