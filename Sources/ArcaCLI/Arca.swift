import ArcaEngine
import ArcaFormat
import ArcaOperations
import ArgumentParser
import Foundation

#if canImport(CMalloc)
import CMalloc
#endif

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
            StreamCommand.self,
        ])

    /// Exit statuses are part of the interface (README, "Exit codes"):
    /// 0 success, 1 the operation failed, 2 usage error or refused without
    /// confirmation, 3 an archive failed verification or two databases differ.
    static func main() {
        giveLargeBuffersBackWhenFreed()
        do {
            var command = try parseAsRoot()
            try command.run()
            deliverNotifications()
        } catch let exit as ExitCode {
            deliverNotifications()
            Foundation.exit(exit.rawValue)
        } catch {
            deliverNotifications()
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

/// Notifications are delivered by a background thread: a run from cron
/// waits for them before it exits, at most 10 s, so a dead webhook delays
/// the exit a little and never hangs it.
private func deliverNotifications() {
    Notifier.waitForDeliveries(upTo: 10)
}

enum ExitStatus: Int32 {
    case success = 0
    case failure = 1
    case usage = 2
    case integrity = 3
}

/// glibc raises its mmap threshold each time a large block is freed, up to
/// 32 MiB; from then on the multi-MiB chunk buffers, upload parts and
/// response buffers come from per-thread arenas, where freed memory stays
/// resident and a thread that did not free it cannot reuse it, so each
/// phase of a backup (pipeline, upload) adds to the peak of the last. A
/// fixed threshold keeps every block of 256 KiB or more (chunk buffers,
/// the 256 KiB pieces an upload reads and sends, the HTTP client's
/// buffers) in its own mapping, unmapped when freed: resident memory is
/// what is in use. At 1 MiB, `--upload-only` peaked 5–10 MiB higher.
private func giveLargeBuffersBackWhenFreed() {
    #if canImport(CMalloc)
    _ = mallopt(M_MMAP_THRESHOLD, 256 << 10)
    #endif
}
