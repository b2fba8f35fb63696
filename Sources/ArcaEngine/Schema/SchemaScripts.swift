import Foundation

/// The SQL that rebuilds the schema around the data, produced by pg_restore
/// from the schema dump an archive carries:
///
/// - `clean`: DROP statements for every object of the dump (`--clean`),
/// - `preData`: what must exist before rows are loaded (types, functions,
///   tables, sequences, views),
/// - `postData`: what is built after (keys, indexes, triggers, rules,
///   policies, materialized view refreshes).
struct SchemaScripts: Sendable {
    var clean = ""
    var preData = ""
    var postData = ""

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
    /// object list of a partial restore.
    static func generate(dump: @escaping PostgresTools.Input, workDirectory: String, tools: PostgresTools, options: Options) throws -> SchemaScripts {
        var common: [String] = []
        if options.noOwner { common.append("--no-owner") }
        if options.noPrivileges { common.append("--no-privileges") }
        if options.keptObjects != nil || !options.largeObjects {
            let listing = String(decoding: try tools.run("pg_restore", ["--list"], input: dump), as: UTF8.self)
            let contents = TableOfContents(listing: listing)
            let list = contents.selecting(objects: options.keptObjects, largeObjects: options.largeObjects)
            let listPath = workDirectory + "/restore.list"
            try Data(list.utf8).write(to: URL(fileURLWithPath: listPath))
            common.append("--use-list=\(listPath)")
        }
        func script(_ extra: [String]) throws -> [Substring] {
            let output = try tools.run("pg_restore", common + extra + ["--file=-"], input: dump)
            return withoutMetaCommands(String(decoding: output, as: UTF8.self))
        }
        var scripts = SchemaScripts()
        scripts.preData = try script(["--section=pre-data"]).joined(separator: "\n")
        scripts.postData = try script(["--section=post-data"]).joined(separator: "\n")
        if options.clean {
            // pg_restore --clean prints the same script with one block of
            // DROP statements (for every section, in dependency order)
            // inserted after the header: that block is the clean script.
            scripts.clean = insertedBlock(plain: try script([]), withClean: try script(["--clean", "--if-exists"]))
                .joined(separator: "\n")
        }
        return scripts
    }

    /// Plain scripts from PostgreSQL 15.14 on are wrapped in `\restrict KEY`
    /// and `\unrestrict KEY`: psql meta-commands that the server itself does
    /// not accept. Nothing else in a pg_restore script is a meta-command.
    static func withoutMetaCommands(_ script: String) -> [Substring] {
        script.split(separator: "\n", omittingEmptySubsequences: false).filter {
            !$0.hasPrefix("\\restrict ") && !$0.hasPrefix("\\unrestrict ")
        }
    }

    /// The lines `withClean` has between its common prefix and suffix with `plain`.
    static func insertedBlock(plain: [Substring], withClean: [Substring]) -> ArraySlice<Substring> {
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

/// A post-data script cut into pg_restore's entries, so that the slow ones
/// (index builds, primary and unique keys, checks) can run in parallel, on
/// several connections, before the rest (foreign keys, which need those keys;
/// partition index attachments; triggers; rules; policies; comments;
/// privileges; materialized view refreshes), which runs in order.
struct PostDataScript: Sendable {
    /// The `SET` statements every connection runs first.
    var header = ""
    var parallel: [String] = []
    var serial: [String] = []

    init(_ script: String) {
        var entries: [(type: String, text: String)] = []
        var headerLines: [Substring] = []
        var current: (type: String, lines: [Substring])?
        for line in script.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("-- Name: "), let typeRange = line.range(of: "; Type: ") {
                if let current { entries.append((current.type, current.lines.joined(separator: "\n"))) }
                let type = line[typeRange.upperBound...].prefix { $0 != ";" }
                current = (String(type), [])
            } else if current != nil {
                current!.lines.append(line)
            } else {
                headerLines.append(line)
            }
        }
        if let current { entries.append((current.type, current.lines.joined(separator: "\n"))) }
        header = headerLines.filter { !$0.hasPrefix("--") }.joined(separator: "\n")
        for entry in entries where !entry.text.allSatisfy({ $0.isWhitespace || $0 == "-" }) {
            if entry.type == "INDEX" || entry.type == "CONSTRAINT" {
                parallel.append(entry.text)
            } else {
                serial.append(entry.text)
            }
        }
    }
}
