import ArcaPostgres
import Foundation

public enum SchemaError: Error, Sendable, CustomStringConvertible {
    case toolMissing(String, searched: [String])
    case toolTooOld(String, version: String, serverMajor: Int)
    case toolFailed(String, status: Int32, message: String)
    case unreadableScript(String)

    public var description: String {
        switch self {
        case .toolMissing(let tool, let searched):
            "\(tool) was not found (looked in \(searched.joined(separator: ", "))). Install postgresql-client, or set ARCA_PG_BINDIR to the folder holding \(tool)."
        case .toolTooOld(let tool, let version, let serverMajor):
            "\(tool) \(version) cannot handle a PostgreSQL \(serverMajor) server: it must be at least version \(serverMajor). Install postgresql-client-\(serverMajor), or set ARCA_PG_BINDIR to its bin folder."
        case .toolFailed(let tool, let status, let message):
            "\(tool) failed (exit status \(status)): \(message)"
        case .unreadableScript(let error):
            "pg_restore's script of the archive's schema dump cannot be cut into statements: \(error). The schema dump is not what pg_dump writes; nothing was run. Verify the archive (`arca verify`)."
        }
    }
}

/// pg_dump and pg_restore, which Arca uses for the schema instead of
/// generating DDL itself: they always match the server. Found in the
/// folder the caller names (`ARCA_PG_BINDIR` in the CLI), else the newest
/// `/usr/lib/postgresql/N/bin`, else PATH, and checked to be at least as new
/// as the server.
public struct PostgresTools: Sendable {
    let directory: String?
    /// pg_dump's version ("15.20"), read once when the tools were located.
    private(set) var pgDumpVersion = "?"

    static func locate(serverMajor: Int, directory explicit: String?) throws -> PostgresTools {
        var searched: [String] = []
        var candidates: [String] = []
        if let explicit, !explicit.isEmpty {
            // An explicit folder is used or refused, never silently replaced.
            guard FileManager.default.isExecutableFile(atPath: explicit + "/pg_dump") else {
                throw SchemaError.toolMissing("pg_dump", searched: [explicit])
            }
            var tools = PostgresTools(directory: explicit)
            tools.pgDumpVersion = try tools.checkVersion("pg_dump", serverMajor: serverMajor)
            return tools
        }
        let installed = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? [])
            .compactMap(Int.init).sorted(by: >).map { "/usr/lib/postgresql/\($0)/bin" }
        candidates += installed
        for directory in candidates {
            searched.append(directory)
            if FileManager.default.isExecutableFile(atPath: directory + "/pg_dump") {
                var tools = PostgresTools(directory: directory)
                tools.pgDumpVersion = try tools.checkVersion("pg_dump", serverMajor: serverMajor)
                return tools
            }
        }
        searched.append("PATH")
        var onPath = PostgresTools(directory: nil)
        do {
            onPath.pgDumpVersion = try onPath.checkVersion("pg_dump", serverMajor: serverMajor)
        } catch SchemaError.toolFailed {
            throw SchemaError.toolMissing("pg_dump", searched: searched)
        }
        return onPath
    }

    /// Which pg_dump a backup of a `serverMajor` server would use: "pg_dump 15.20 (/usr/lib/postgresql/15/bin)".
    public static func describe(serverMajor: Int, directory: String?) throws -> String {
        let tools = try locate(serverMajor: serverMajor, directory: directory)
        return "pg_dump \(tools.pgDumpVersion) (\(tools.directory ?? "PATH"))"
    }

    /// The tool's version, refused when older than the server.
    private func checkVersion(_ tool: String, serverMajor: Int) throws -> String {
        let output = try run(tool, ["--version"])
        // "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
        let words = String(decoding: output, as: UTF8.self).split(separator: " ")
        let version = words.count > 2 ? String(words[2]).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
        let major = Int(version.prefix { $0.isNumber }) ?? 0
        guard major >= serverMajor else { throw SchemaError.toolTooOld(tool, version: version, serverMajor: serverMajor) }
        return version
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
        if let directory {
            process.executableURL = URL(fileURLWithPath: directory + "/" + tool)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [tool] + arguments
        }
        process.environment = environment
        let stdout = Pipe(), stderr = Pipe()
        let stdin = input == nil ? nil : Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = stdin ?? FileHandle.nullDevice
        // A tool that exits before reading all its input must give the
        // writer EPIPE, not kill this process with SIGPIPE.
        if stdin != nil { signal(SIGPIPE, SIG_IGN) }
        // Process.waitUntilExit polls every 50 ms; the handler fires at once.
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        do {
            try process.run()
        } catch {
            throw SchemaError.toolMissing(tool, searched: [directory ?? "PATH"])
        }
        // Drain stderr (and feed stdin) on other threads so no pipe can fill
        // and block the tool.
        let errors = ErrorCollector()
        let reader = Thread { errors.data = stderr.fileHandleForReading.readDataToEndOfFile(); errors.done.signal() }
        reader.start()
        var inputError: (any Error)?
        if let input, let stdin {
            let feeder = InputFeeder(handle: stdin.fileHandleForWriting, body: input)
            Thread { feeder.run() }.start()
            let drained = Result { try drain(stdout.fileHandleForReading, into: output, process: process, exited: exited) }
            feeder.done.wait()
            try drained.get()
            inputError = feeder.error
        } else {
            try drain(stdout.fileHandleForReading, into: output, process: process, exited: exited)
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
            process.terminate()
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
