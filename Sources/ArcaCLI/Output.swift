import ArcaEngine
import ArcaPostgres
import ArgumentParser
import Foundation

struct RepositoryOption: ParsableArguments {
    @Option(name: .long, help: "The backup repository (default: $ARCA_REPO, else ./backups).")
    var repo: String?

    var repository: Repository { Repository.resolve(repo) }
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

    /// Prints `error` and exits with `status`. Every failure ends here, so
    /// every failure prints one sentence about what happened and what to do.
    static func fail(_ error: any Error, status: ExitStatus = .failure) -> ExitCode {
        // Already reported by a nested `fail` (a bad key or bucket setting
        // found inside an operation): keep its message and status.
        if let exit = error as? ExitCode { return exit }
        Output.error("\(error)")
        // An archive refused as untrusted is an integrity failure wherever it surfaces.
        if error is ArchiveTrustError { return ExitCode(ExitStatus.integrity.rawValue) }
        return ExitCode(status.rawValue)
    }

    static let isTerminal = isatty(STDERR_FILENO) == 1
    nonisolated(unsafe) private static var progressShown = false

    /// A live status line on stderr, only when stderr is a terminal.
    static func progress(_ line: String) {
        guard isTerminal else { return }
        progressShown = true
        FileHandle.standardError.write(Data("\r\u{1B}[2K\(line)".utf8))
    }

    static func clearProgress() {
        guard progressShown else { return }
        progressShown = false
        FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
    }
}

enum Format {
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
func connectionString(_ explicit: String?, option: String = "--database-url") throws -> ConnectionString {
    guard let text = explicit ?? ProcessInfo.processInfo.environment["DATABASE_URL"], !text.isEmpty else {
        Output.error("No database given. Set DATABASE_URL or pass \(option) (a postgresql:// URL or a key=value connection string).")
        throw ExitCode(ExitStatus.usage.rawValue)
    }
    do {
        return try ConnectionString(text)
    } catch {
        Output.error("\(error) Use postgresql://user@host:port/database or host=... dbname=... .")
        throw ExitCode(ExitStatus.usage.rawValue)
    }
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

/// The audit trail of a CLI command: the repository's log, mirrored to
/// `ARCA_AUDIT_DATABASE_URL` when it is set.
func auditTrail(_ repository: Repository, _ action: String) -> AuditTrail {
    AuditTrail(repository: repository, action: action, mirror: AuditTrail.mirror(from: ProcessInfo.processInfo.environment))
}
