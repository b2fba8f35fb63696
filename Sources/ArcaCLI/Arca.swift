import ArcaEngine
import ArcaFormat
import ArgumentParser
import Foundation

/// `arca`: the command-line shell over ArcaEngine. Commands parse options,
/// call the engine and print; they hold no backup logic of their own.
@main
struct Arca: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arca",
        abstract: "Back up, verify and restore PostgreSQL databases.",
        version: ArcaVersion.current,
        subcommands: [
            BackupCommand.self, VerifyCommand.self, InspectCommand.self, ListCommand.self, RestoreCommand.self,
            CompareCommand.self, CleanupCommand.self, InitCommand.self, StartCommand.self, StatusCommand.self,
            AuditCommand.self, DrillCommand.self, ServeCommand.self, TokenCommand.self, KeygenCommand.self, SyncCommand.self,
        ])

    /// Exit statuses are part of the interface (README, "Exit codes"):
    /// 0 success, 1 the operation failed, 2 usage error or refused without
    /// confirmation, 3 an archive failed verification or two databases differ.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            // Usage errors from the parser: one line, a hint, status 2.
            let message = message(for: error)
            FileHandle.standardError.write(Data("arca: \(message)\nRun `arca help` for usage.\n".utf8))
            Foundation.exit(ExitStatus.usage.rawValue)
        }
    }
}

enum ExitStatus: Int32 {
    case success = 0
    case failure = 1
    case usage = 2
    case integrity = 3

    /// 3 when reading an archive found it damaged; a missing or wrong key
    /// is not damage (1).
    static func forArchive(_ error: any Error) -> ExitStatus {
        switch error as? ArchiveError {
        case .keyRequired?, .wrongKey?, .keyDerivationFailed?, nil: .failure
        default: .integrity
        }
    }
}
