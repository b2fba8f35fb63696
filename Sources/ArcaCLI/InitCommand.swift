import ArcaEngine
import ArcaOperations
import ArgumentParser
import Foundation

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Check the environment and prepare the repository; say what to fix.",
        discussion: "Safe to run again. Exit status 1 when something required is missing.")

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var output: JSONOption

    func run() throws {
        let report = Initialization(repository: repository.repo).run()
        if output.json {
            Output.json(report)
        } else {
            for check in report.checks {
                let mark = check.state == "ok" ? "ok  " : check.state == "warning" ? "warn" : "FAIL"
                print("[\(mark)] \(check.name): \(check.detail)")
                if let fix = check.fix, check.state != "ok" { print("       fix: \(fix)") }
            }
            print(report.ready ? "Ready." : "Not ready: fix the FAIL lines above and run `arca init` again.")
        }
        if !report.ready { throw ExitCode(ExitStatus.failure.rawValue) }
    }
}
