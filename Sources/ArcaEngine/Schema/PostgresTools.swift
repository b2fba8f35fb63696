import ArcaPostgres
import Foundation

public enum SchemaError: Error, Sendable, CustomStringConvertible {
    case toolMissing(String, searched: [String])
    /// No candidate is new enough: `found` lists each one as "15.20 in /usr/lib/postgresql/15/bin".
    case toolTooOld(String, found: [String], required: PostgresTools.Requirement)
    case toolFailed(String, status: Int32, message: String)
    case unreadableScript(String)

    public var description: String {
        switch self {
        case .toolMissing(let tool, let searched):
            "\(tool) was not found (looked in \(searched.joined(separator: ", "))). Install postgresql-client, or set ARCA_PG_BINDIR to the folder holding \(tool)."
        case .toolTooOld(let tool, let found, let required):
            "\(tool) must be at least version \(required.major) to \(required.purpose), but only \(tool) \(found.joined(separator: ", ")) was found. Install postgresql-client-\(required.major), or set ARCA_PG_BINDIR to the bin folder of a \(tool) \(required.major) or newer."
        case .toolFailed(let tool, let status, let message):
            "\(tool) failed (exit status \(status)): \(message)"
        case .unreadableScript(let error):
            "pg_restore's script of the archive's schema dump cannot be cut into statements: \(error). The schema dump is not what pg_dump writes; nothing was run. Verify the archive (`arca verify`)."
        }
    }
}

/// pg_dump and pg_restore, which Arca uses for the schema instead of
/// generating DDL itself: they always match the server.
///
/// Which ones: the folder the caller names (`ARCA_PG_BINDIR` in the CLI) is
/// used or refused, never silently replaced. Otherwise every folder that
/// holds the tool is a candidate — `/usr/lib/postgresql/<major>/bin`, then
/// the folders of PATH — and the one with the lowest major version that is
/// still new enough wins (the newest minor within that major; the first
/// found among equals). Not the newest: a newer pg_dump can read an older
/// server, but it writes for its own version (pg_dump 17 and later set
/// `transaction_timeout`, which a 15 server does not know), and its archive
/// needs a pg_restore at least as new, so the closest version keeps a
/// backup restorable with the source server's own tools.
public struct PostgresTools: Sendable {
    /// What the tool must be new enough for.
    public struct Requirement: Sendable, CustomStringConvertible {
        public var major: Int
        /// "back up a PostgreSQL 18 server", "read a schema dump written by pg_dump 18.6".
        public var purpose: String

        /// pg_dump must be at least the server's version.
        public static func dumping(serverMajor: Int) -> Requirement {
            Requirement(major: serverMajor, purpose: "back up a PostgreSQL \(serverMajor) server")
        }

        /// pg_restore reads archives of its own and older pg_dumps only.
        /// `dumpVersion` comes from the archive's manifest: only a short run
        /// of version characters of it is ever shown.
        public static func reading(dumpVersion recorded: String, serverMajor: Int) -> Requirement {
            let dumpVersion = PostgresTools.shownVersion(recorded)
            let dumpMajor = PostgresTools.major(of: dumpVersion) ?? 0
            return dumpMajor >= serverMajor
                ? Requirement(major: dumpMajor, purpose: "read a schema dump written by pg_dump \(dumpVersion)")
                : Requirement(major: serverMajor, purpose: "read a schema dump of a PostgreSQL \(serverMajor) server")
        }

        public var description: String { purpose }
    }

    /// The folder the tools are run from.
    let directory: String
    /// The located tool's version ("15.20"), read when it was located.
    let version: String
    /// A backup's name for `version`: its tools are located for pg_dump.
    var pgDumpVersion: String { version }

    init(directory: String, version: String = "?") {
        self.directory = directory
        self.version = version
    }

    /// Where Debian's packages put each major version's programs.
    static let debianFolders = "/usr/lib/postgresql"
    /// Bounds on what is read from the environment and from the tools.
    static let maximumCandidates = 64
    static let maximumVersionOutput = 4096

    /// The pg_dump for a backup of a `serverMajor` server.
    static func locate(
        serverMajor: Int, directory explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> PostgresTools {
        try locate("pg_dump", for: .dumping(serverMajor: serverMajor), directory: explicit, environment: environment)
    }

    /// `tool` ("pg_dump" or "pg_restore") of a version that meets `required`.
    static func locate(
        _ tool: String, for required: Requirement, directory explicit: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> PostgresTools {
        if let explicit, !explicit.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: explicit + "/" + tool) else {
                throw SchemaError.toolMissing(tool, searched: [explicit])
            }
            let version = try PostgresTools(directory: explicit).readVersion(tool)
            guard let major = Self.major(of: version), major >= required.major else {
                throw SchemaError.toolTooOld(tool, found: ["\(version) in \(explicit)"], required: required)
            }
            return PostgresTools(directory: explicit, version: version)
        }
        let folders = candidateFolders(holding: tool, environment: environment)
        guard !folders.isEmpty else {
            throw SchemaError.toolMissing(tool, searched: [debianFolders + "/<major>/bin", "PATH"])
        }
        var found: [(tools: PostgresTools, version: (major: Int, minor: Int))] = []
        for folder in folders {
            // A candidate that does not run or answer is left out (and
            // listed), as long as another one fits.
            let tools = PostgresTools(directory: folder, version: (try? PostgresTools(directory: folder).readVersion(tool)) ?? "?")
            found.append((tools, Self.versionNumbers(tools.version)))
        }
        let suitable = found.enumerated()
            .filter { $0.element.version.major >= required.major }
            .min { a, b in
                (a.element.version.major, -a.element.version.minor, a.offset) < (b.element.version.major, -b.element.version.minor, b.offset)
            }
        guard let chosen = suitable?.element.tools else {
            throw SchemaError.toolTooOld(tool, found: found.map { "\($0.tools.version) in \($0.tools.directory)" }, required: required)
        }
        return chosen
    }

    /// The folders that hold an executable `tool`: Debian's version folders
    /// (newest first), then PATH's absolute entries, each once.
    static func candidateFolders(holding tool: String, environment: [String: String]) -> [String] {
        let installed = ((try? FileManager.default.contentsOfDirectory(atPath: debianFolders)) ?? [])
            .filter { !$0.isEmpty && $0.count <= 4 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
            .compactMap { Int($0) }.sorted(by: >).map { "\(debianFolders)/\($0)/bin" }
        // Relative PATH entries (".", "") would make the choice depend on
        // the working folder: left out.
        let path = (environment["PATH"] ?? "").split(separator: ":").map(String.init).filter { $0.hasPrefix("/") }
        var seen = Set<String>()
        var folders: [String] = []
        for folder in installed + path where folders.count < maximumCandidates {
            let normalized = URL(fileURLWithPath: folder).standardizedFileURL.path
            guard seen.insert(normalized).inserted, FileManager.default.isExecutableFile(atPath: normalized + "/" + tool) else { continue }
            folders.append(normalized)
        }
        return folders
    }

    /// Which pg_dump a backup of a `serverMajor` server would use: "pg_dump 15.20 (/usr/lib/postgresql/15/bin)".
    public static func describe(serverMajor: Int, directory: String?) throws -> String {
        let tools = try locate(serverMajor: serverMajor, directory: directory)
        return "pg_dump \(tools.version) (\(tools.directory))"
    }

    /// The tool's version as it prints it ("pg_dump (PostgreSQL) 15.20
    /// (Debian 15.20-0+deb12u1)" gives "15.20"), kept to a short run of
    /// version characters: the output is the tool's, not ours.
    private func readVersion(_ tool: String) throws -> String {
        var output = Data()
        struct TooLong: Error {}
        do {
            try run(tool, ["--version"]) { data in
                output.append(data)
                if output.count > Self.maximumVersionOutput { throw TooLong() }
            }
        } catch is TooLong {
            return "?"
        }
        let words = String(decoding: output, as: UTF8.self).split(whereSeparator: \.isWhitespace)
        return words.count > 2 ? Self.shownVersion(words[2]) : "?"
    }

    /// A version read from a tool or an archive, as it may be shown: its
    /// leading run of letters, digits and dots, at most 32 characters.
    public static func shownVersion(_ text: some StringProtocol) -> String {
        let version = text.prefix(32).prefix { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == ".") }
        return version.isEmpty ? "?" : String(version)
    }

    /// The major version of "15.20", "18.6", "18devel", "9.6.24" (9 is
    /// older than any server Arca supports, so the first number serves).
    static func major(of version: String) -> Int? {
        let digits = version.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, digits.count <= 4 else { return nil }
        return Int(digits)
    }

    /// (major, minor), (-1, 0) when unreadable, so it never qualifies.
    private static func versionNumbers(_ version: String) -> (major: Int, minor: Int) {
        guard let major = major(of: version) else { return (-1, 0) }
        let rest = version.drop { $0.isNumber }
        let minor = rest.first == "." ? Int(rest.dropFirst().prefix { $0.isASCII && $0.isNumber }.prefix(6)) ?? 0 : 0
        return (major, minor)
    }

    /// Runs a tool against `connection` without putting the password on its
    /// command line (where `ps` would show it): it goes in PGPASSWORD.
    /// Returns what it printed.
    @discardableResult
    func run(_ tool: String, _ arguments: [String], connection: ConnectionString? = nil, input: Input? = nil) throws -> Data {
        var output = Data()
        try run(tool, arguments, connection: connection, input: input) { output.append($0) }
        return output
    }

    /// Produces a tool's standard input by calling `write` with each piece.
    typealias Input = @Sendable (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void

    /// Runs a tool and streams what it prints to `output` as it comes, so a
    /// large dump never sits in memory or on disk. `input`, when given,
    /// produces the tool's standard input on another thread; if it fails,
    /// its error (not the tool's complaint about cut-off input) is thrown.
    func run(
        _ tool: String, _ arguments: [String], connection: ConnectionString? = nil,
        input: Input? = nil, output: (Data) throws -> Void
    ) throws {
        var arguments = arguments
        if let connection { arguments.append("--dbname=\(connection.removing("password").conninfo)") }
        let password = connection?.value("password")
        let environment = Self.childEnvironment(ProcessInfo.processInfo.environment, password: password)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: directory + "/" + tool)
        process.arguments = arguments
        process.environment = environment
        let stdout = try ChildPipe(), stderr = try ChildPipe()
        let stdin = input == nil ? nil : try ChildPipe()
        process.standardOutput = stdout.writing
        process.standardError = stderr.writing
        process.standardInput = stdin?.reading ?? FileHandle.nullDevice
        // A tool that exits before reading all its input must give the
        // writer EPIPE, not kill this process with SIGPIPE.
        if stdin != nil { signal(SIGPIPE, SIG_IGN) }
        // Process.waitUntilExit polls every 50 ms; the handler fires at once.
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        do {
            try process.run()
        } catch {
            throw SchemaError.toolMissing(tool, searched: [directory])
        }
        // The child's ends are the child's: with this process's copies
        // closed, the tool's exit ends its output.
        try? stdout.writing.close()
        try? stderr.writing.close()
        try? stdin?.reading.close()
        // Drain stderr (and feed stdin) on other threads so no pipe can fill
        // and block the tool.
        let errors = ErrorCollector()
        let reader = Thread { errors.data = stderr.reading.readDataToEndOfFile(); errors.done.signal() }
        reader.start()
        var inputError: (any Error)?
        if let input, let stdin {
            let feeder = InputFeeder(handle: stdin.writing, body: input)
            Thread { feeder.run() }.start()
            let drained = Result { try drain(stdout.reading, into: output, process: process, exited: exited) }
            feeder.done.wait()
            try drained.get()
            inputError = feeder.error
        } else {
            try drain(stdout.reading, into: output, process: process, exited: exited)
        }
        errors.done.wait()
        exited.wait()
        if let inputError { throw inputError }
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.data, as: UTF8.self)
                .split(whereSeparator: \.isNewline).prefix(5).joined(separator: " ")
            throw SchemaError.toolFailed(
                tool, status: process.terminationStatus, message: message.isEmpty ? "no message" : message.withoutSecret(password))
        }
    }

    /// The variables libpq reads (https://www.postgresql.org/docs/current/libpq-envars.html),
    /// named one by one: a `PG` prefix would also pass other tools' secrets
    /// (`PGBACKREST_REPO1_CIPHER_PASS`).
    static let libpqVariables: Set<String> = [
        "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE",
        "PGSYSCONFDIR", "PGOPTIONS", "PGAPPNAME", "PGSSLMODE", "PGREQUIRESSL", "PGSSLCOMPRESSION", "PGSSLCERT", "PGSSLKEY",
        "PGSSLCERTMODE", "PGSSLROOTCERT", "PGSSLCRL", "PGSSLCRLDIR", "PGSSLSNI", "PGREQUIREPEER", "PGSSLMINPROTOCOLVERSION",
        "PGSSLMAXPROTOCOLVERSION", "PGGSSENCMODE", "PGKRBSRVNAME", "PGGSSLIB", "PGGSSDELEGATION", "PGCONNECT_TIMEOUT",
        "PGCLIENTENCODING", "PGTARGETSESSIONATTRS", "PGLOADBALANCEHOSTS", "PGREQUIREAUTH", "PGCHANNELBINDING",
        "PGDATESTYLE", "PGTZ", "PGGEQO", "PGLOCALEDIR",
    ]

    /// What else pg_dump and pg_restore need: finding programs and shared
    /// libraries, `~/.pgpass` and `~/.pg_service.conf` (HOME), messages and
    /// encodings (locale), time zone, Kerberos tickets for GSSAPI logins.
    static let systemVariables: Set<String> = [
        "PATH", "HOME", "LD_LIBRARY_PATH", "TZ", "LANG", "LANGUAGE", "KRB5CCNAME", "KRB5_CONFIG",
    ]

    /// The environment of a child tool: only the variables above (and
    /// `LC_*`), never Arca's own secrets (`JWT_SECRET`, `AWS_SECRET_ACCESS_KEY`,
    /// `ARCA_ENCRYPTION_KEY`, `ARCA_PASSPHRASE`, …). A password from the
    /// connection string goes in PGPASSWORD, never on the command line.
    static func childEnvironment(_ parent: [String: String], password: String?) -> [String: String] {
        var environment = parent.filter { name, _ in
            libpqVariables.contains(name) || systemVariables.contains(name) || name.hasPrefix("LC_")
        }
        if let password { environment["PGPASSWORD"] = password }
        return environment
    }

    /// Reads the tool's output to its end. When `output` throws, the tool is
    /// stopped (it would otherwise block on a full pipe forever).
    private func drain(_ handle: FileHandle, into output: (Data) throws -> Void, process: Process, exited: DispatchSemaphore) throws {
        do {
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                try output(data)
            }
        } catch {
            // SIGKILL, not SIGTERM: a child inherits its parent's blocked
            // signals, and where SIGTERM is blocked (seen under the test
            // runner) the tool would never end and this wait never return.
            kill(process.processIdentifier, SIGKILL)
            exited.wait()
            throw error
        }
    }

    /// Writes a tool's standard input. A write the tool refuses (it exited)
    /// ends the input quietly: the tool's exit status tells what happened.
    private final class InputFeeder: @unchecked Sendable {
        let handle: FileHandle
        let body: Input
        var error: (any Error)?
        let done = DispatchSemaphore(value: 0)

        struct PipeClosed: Error {}

        init(handle: FileHandle, body: @escaping Input) {
            self.handle = handle
            self.body = body
        }

        func run() {
            do {
                try body { bytes in
                    do { try handle.write(contentsOf: Data(bytes)) } catch { throw PipeClosed() }
                }
            } catch is PipeClosed {
            } catch {
                self.error = error
            }
            try? handle.close()
            done.signal()
        }
    }

    private final class ErrorCollector: @unchecked Sendable {
        var data = Data()
        let done = DispatchSemaphore(value: 0)
    }
}
