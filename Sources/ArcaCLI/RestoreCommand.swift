import ArcaEngine
import ArgumentParser
import Foundation

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore an archive's table data into a database, all or nothing.",
        discussion: """
            The target must already have the tables. All restored tables are emptied and reloaded in one \
            transaction: on any failure nothing changes. Without --confirm, arca only says what it would replace.
            """)

    @Argument(help: "A backup id in the repository, or the path of an .arca file.")
    var backup: String

    @Option(name: .long, help: "The database to restore into (default: $DATABASE_URL).")
    var targetURL: String?

    @Flag(name: .long, help: "Confirm that the target's tables may be replaced.")
    var confirm = false

    @Option(name: .customLong("table"), help: "Only tables matching this glob on schema.table (repeatable).")
    var tables: [String] = []

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var output: JSONOption

    func run() throws {
        let target = try connectionString(targetURL, option: "--target-url")
        let result: RestoreResult
        do {
            var options = RestoreOptions(archivePath: try repository.repository.locate(backup), target: target)
            options.confirmed = confirm
            options.tables = TableFilter(include: tables)
            if !output.json, confirm {
                FileHandle.standardError.write(Data("Restoring into \(target.redacted) in one transaction: on any failure nothing changes.\n".utf8))
            }
            result = try RestoreRunner(options: options).run { progress in
                guard !output.json else { return }
                Output.progress("tables \(progress.tablesDone)/\(progress.tablesTotal)  \(Format.bytes(progress.rawBytes))  \(progress.currentTable ?? "")")
            }
        } catch let error as RestoreError {
            if case .notConfirmed = error { throw Output.fail(error, status: .usage) }
            throw Output.fail(error)
        } catch {
            throw Output.fail(error)
        }
        Output.clearProgress()
        if output.json {
            Output.json(result)
        } else {
            print("""
                Restored \(result.backupId) into database \(result.database).
                  tables  \(result.restoredTables.count), rows \(Format.count(result.rows))
                  data    \(Format.bytes(result.rawBytes)) in \(Format.seconds(result.durationSeconds)) (\(Format.rate(result.rawBytes, seconds: result.durationSeconds)))
                """)
        }
    }
}
