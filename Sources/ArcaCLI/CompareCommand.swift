import ArcaEngine
import ArgumentParser
import Foundation

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare two databases: tables, columns, rows, sequences, owners, privileges and the databases' own properties.",
        discussion: "Exit status 0 when equal, 3 when they differ. Use it to prove a restore equals its source.")

    @Argument(help: "The first database (URL or key=value conninfo).")
    var first: String

    @Argument(help: "The second database.")
    var second: String

    @OptionGroup var output: JSONOption
    @OptionGroup var verbosity: VerboseOption

    func run() throws {
        let result: DatabaseComparisonResult
        do {
            result = try DatabaseComparison(try connectionString(first, option: "the first database"), try connectionString(second, option: "the second database")).run()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw Output.fail(error, verbose: verbosity)
        }
        if output.json {
            Output.json(result)
        } else if result.equal {
            print("equal (\(result.tables) tables, \(result.sequences) sequences)")
        } else {
            print("different:")
            for line in result.differences { print("  \(line)") }
        }
        if !result.equal { throw ExitCode(ExitStatus.integrity.rawValue) }
    }
}
