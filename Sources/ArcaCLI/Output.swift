import ArcaEngine
import ArcaOperations
import ArcaPostgres
import ArgumentParser
import Foundation

struct RepositoryOption: ParsableArguments {
    @Option(name: .long, help: "The backup repository (default: $ARCA_REPO, else ./backups).")
    var repo: String?

    var repository: Repository { Repository.resolve(repo) }
}

/// `--verbose`: PostgreSQL's full error report, row values and all, for the
/// person at the terminal. Off by default everywhere; even on, the report
/// goes only to a terminal, never to a pipe or file (which may be a log), and
/// never into the audit trail, which records the redacted description.
struct VerboseOption: ParsableArguments {
    @Flag(name: .long, help: "On a terminal, also print PostgreSQL's full error report (DETAIL, HINT, CONTEXT), which can quote row values. Never logged or audited.")
    var verbose = false
}

struct JSONOption: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON object on stdout instead of text.")
    var json = false
}

enum Output {
    static func json(_ value: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    static func error(_ message: String) {
        clearProgress()
        FileHandle.standardError.write(Data("arca: \(message)\n".utf8))
    }

    /// Prints `error` and exits with the status its kind gives (ErrorKind).
    /// Every failure ends here, so every failure prints one sentence about
    /// what happened and what to do.
    static func fail(_ error: any Error, verbose: VerboseOption? = nil) -> ExitCode {
        // Already reported by a nested `fail`: keep its message and status.
        if let exit = error as? ExitCode { return exit }
        Output.error("\(error)")
        if verbose?.verbose == true { showServerReports(in: error) }
        return ExitCode(ErrorKind.of(error).exitStatus)
    }

    /// PostgreSQL's unredacted reports inside `error`, on stderr when it is a terminal.
    private static func showServerReports(in error: any Error) {
        let reports = ServerError.all(in: error)
        guard !reports.isEmpty else { return }
        guard isTerminal else {
            Output.error("--verbose: PostgreSQL's full report is shown on a terminal only (it can quote row values); stderr is not one.")
            return
        }
        for report in reports {
            FileHandle.standardError.write(Data("PostgreSQL's full report (it can quote row values; not recorded anywhere):\n\(report.unredactedReport)\n".utf8))
        }
    }

    static let isTerminal = isatty(STDERR_FILENO) == 1
    nonisolated(unsafe) private static var progressShown = false

    /// A live status line on stderr, only when stderr is a terminal.
    static func progress(_ line: String) {
        guard isTerminal else { return }
        progressShown = true
        FileHandle.standardError.write(Data("\r\u{1B}[2K\(line)".utf8))
    }

    /// One JSON object on a line of its own on stderr (`--progress json`).
    static func progressRecord(_ progress: OperationProgress) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(progress) else { return }
        FileHandle.standardError.write(data + Data("\n".utf8))
    }

    static func clearProgress() {
        guard progressShown else { return }
        progressShown = false
        FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
    }
}

/// `--progress`: how a long operation shows how far it has come.
struct ProgressOption: ParsableArguments {
    enum Mode: String, ExpressibleByArgument, CaseIterable {
        /// One line, refreshed a few times a second, when stderr is a terminal; nothing otherwise.
        case auto
        /// One JSON object per report on stderr, terminal or not (for scripts).
        case json
        case none
    }

    @Option(name: .long, help: "auto: a live line when stderr is a terminal; json: one JSON object per line on stderr; none.")
    var progress: Mode = .auto

    /// What the operation calls with each report.
    func display(_ progress: OperationProgress) {
        switch self.progress {
        case .none: return
        case .json: Output.progressRecord(progress)
        case .auto: Output.progress(Format.progress(progress))
        }
    }
}

enum Format {
    /// `backup  copying tables  42.5 %  tables 3/10  1.2 GB  310 MB/s  12 s left`
    static func progress(_ progress: OperationProgress) -> String {
        var parts = [progress.operation.rawValue, progress.phase]
        if let percent = progress.percent { parts.append(String(format: "%.1f %%", percent)) }
        if progress.tablesTotal > 0 { parts.append("tables \(progress.tablesDone)/\(progress.tablesTotal)") }
        parts.append(bytes(progress.bytesDone))
        if progress.bytesPerSecond > 0 { parts.append(bytes(UInt64(progress.bytesPerSecond)) + "/s") }
        if let left = progress.secondsLeft, progress.percent != 100 { parts.append(duration(left) + " left") }
        if let current = progress.current { parts.append(current) }
        return parts.joined(separator: "  ")
    }

    /// `45 s`, `12 min`, `3.2 h`.
    static func duration(_ seconds: Double) -> String {
        switch seconds {
        case ..<90: String(format: "%.0f s", seconds)
        case ..<5400: String(format: "%.0f min", seconds / 60)
        default: String(format: "%.1f h", seconds / 3600)
        }
    }

    static func bytes(_ count: UInt64) -> String { ByteCount.format(count) }

    static func rate(_ count: UInt64, seconds: Double) -> String {
        seconds > 0 ? bytes(UInt64(Double(count) / seconds)) + "/s" : "-"
    }

    static func seconds(_ value: Double) -> String { String(format: "%.1f s", value) }

    static func count(_ value: UInt64) -> String {
        let text = String(value)
        var result = ""
        for (index, character) in text.enumerated() {
            if index > 0, (text.count - index) % 3 == 0 { result.append(",") }
            result.append(character)
        }
        return result
    }
}

/// `--database-url`, else `$DATABASE_URL`.
/// A connection string given on the command line; a bad one is a usage error.
func connectionString(_ text: String, option: String) throws -> ConnectionString {
    do {
        return try ConnectionString(text)
    } catch {
        Output.error("\(option): \(error)")
        throw ExitCode(ExitStatus.usage.rawValue)
    }
}

/// The operations a command runs: the configuration from the environment,
/// with the command's own settings laid over it (`--repo`, and variables
/// such as `DATABASE_URL` for `--database-url`), as the requester
/// `cli:<user>`. A bad setting is a usage error naming the variable.
func commandLineOperations(_ repository: RepositoryOption, settings: [String: String?] = [:]) throws -> Operations {
    var environment = ProcessInfo.processInfo.environment
    for (name, value) in settings { if let value { environment[name] = value } }
    let configuration: ServiceConfiguration
    do {
        configuration = try ServiceConfiguration(environment: environment, repository: repository.repo)
    } catch {
        throw Output.fail(error)
    }
    return Operations(configuration: configuration, requester: .commandLine)
}

/// SIGINT and SIGTERM cancel the running operation instead of killing the
/// process, so it can remove its temp file, release its lock and record the
/// failure. A second signal is not needed: the operation stops at its next
/// chunk.
enum Signals {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    static func cancel(_ cancellation: Cancellation) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { cancellation.cancel() }
            source.resume()
            sources.append(source)
        }
    }
}

