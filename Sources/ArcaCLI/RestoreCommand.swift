import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaOperations
import ArgumentParser
import Foundation

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore an archive into a database, all or nothing.",
        discussion: """
            By default the target must be empty (--create makes it): the schema, every table's rows, keys, \
            indexes, triggers, sequence values and large objects are restored in one transaction. --clean drops \
            the archive's objects from a non-empty target first; --data-only reloads rows into existing tables. \
            On any failure nothing changes. Without --confirm, arca only says what it would replace.
            """)

    @Argument(help: "A backup id in the repository, or the path of an .arca file (not with --target-time or --target-lsn).")
    var backup: String?

    @Option(name: .long, help: "Restore the database as it was at this instant (RFC 3339, e.g. 2026-11-30T10:15:00Z): the newest backup before it and the change stream up to it.")
    var targetTime: String?

    @Option(name: .long, help: "Restore up to this LSN of the change stream (e.g. 16/B374D848).")
    var targetLsn: String?

    @Option(name: .long, help: "The database to restore into (default: $DATABASE_URL).")
    var targetURL: String?

    @Flag(name: .long, help: "Confirm that the target's tables may be replaced.")
    var confirm = false

    @Option(name: .customLong("table"), help: "Only tables matching this glob on schema.table (repeatable; with --data-only).")
    var tables: [String] = []

    @Flag(name: .long, help: "Create the target database first.")
    var create = false

    @Flag(name: .long, help: "Drop the archive's objects from the target before restoring them.")
    var clean = false

    @Flag(name: .long, help: "Only reload rows into tables that already exist.")
    var dataOnly = false

    @Flag(name: .long, help: "Make the restoring role own every object (for a server without the source's roles).")
    var noOwner = false

    @Flag(name: .long, help: "Do not restore privileges (GRANT/REVOKE).")
    var noPrivileges = false

    @Flag(name: .long, help: "Do not restore large objects.")
    var noLargeObjects = false

    @Flag(name: .long, help: "Create the roles the archive records that the server lacks (dropped again if the restore fails).")
    var createRoles = false

    @Option(name: .long, help: "Parallel connections; with --create only (default 1).")
    var jobs: Int = 1

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var cloud: CloudFlag
    @OptionGroup var key: KeyOption
    @OptionGroup var unencrypted: UnencryptedOption
    @OptionGroup var otherSource: OtherSourceOption
    @OptionGroup var progress: ProgressOption
    @OptionGroup var output: JSONOption
    @OptionGroup var verbosity: VerboseOption

    func validate() throws {
        guard (1...64).contains(jobs) else { throw ValidationError("--jobs must be between 1 and 64.") }
        let points = [targetTime, targetLsn].compactMap { $0 }.count
        guard points <= 1 else { throw ValidationError("Give --target-time or --target-lsn, not both.") }
        guard (backup == nil) != (points == 0) else {
            throw ValidationError(backup == nil ? "Name a backup, or give --target-time or --target-lsn." : "A point-in-time restore chooses its backup: leave out the backup id.")
        }
        if let targetTime, Manifest.date(fromTimestamp: targetTime) == nil {
            throw ValidationError("--target-time must be an RFC 3339 instant with its offset, such as 2026-11-30T10:15:00Z.")
        }
        if let targetLsn, LSN(targetLsn) == nil { throw ValidationError("--target-lsn must be an LSN such as 16/B374D848.") }
    }

    /// The point in time asked for, if any (validated above).
    var pointInTime: ReplayTarget? {
        if let targetTime, let date = Manifest.date(fromTimestamp: targetTime) { return .time(date) }
        if let targetLsn, let lsn = LSN(targetLsn) { return .lsn(lsn.value) }
        return nil
    }

    func run() throws {
        let operations = try commandLineOperations(repository, settings: ["ARCA_KEY_FILE": key.keyFile])
        var request = RestoreRequest(backup: backup ?? "")
        request.pointInTime = pointInTime
        request.fromCloud = cloud.cloud
        request.target = try targetURL.map { try connectionString($0, option: "--target-url") }
        request.confirmed = confirm
        request.tables = TableFilter(include: tables)
        request.create = create
        request.clean = clean
        request.dataOnly = dataOnly
        request.noOwner = noOwner
        request.noPrivileges = noPrivileges
        request.excludeLargeObjects = noLargeObjects
        request.createRoles = createRoles
        request.jobs = jobs
        request.allowUnencrypted = unencrypted.allowUnencrypted
        request.allowOtherSource = otherSource.allowOtherSource
        // Said to a person; scripts (--json, --progress json) get only what they parse.
        if !output.json, progress.progress != .json, confirm, let target = request.target ?? operations.configuration.database {
            let how = jobs > 1 && create
                ? "with \(jobs) connections into a staging database, renamed to the target only when complete: on any failure the target is not created"
                : create
                ? "in one transaction (or, with more objects than one transaction can lock, in a staging database renamed to the target only when complete): on any failure the target is not created"
                : "in one transaction: on any failure nothing changes"
            FileHandle.standardError.write(Data("Restoring into \(target.redacted) \(how).\n".utf8))
            if jobs > 1, !create {
                FileHandle.standardError.write(Data("Note: --jobs needs --create (a parallel restore cannot share one transaction); restoring with one connection.\n".utf8))
            }
        }
        let result: RestoreResult
        do {
            result = try operations.restore(request, progress: progress.display)
        } catch {
            throw Output.fail(error, verbose: verbosity)
        }
        Output.clearProgress()
        if output.json {
            Output.json(result)
        } else {
            if let target = result.target {
                print("Point in time \(target): backup \(result.backupId) and \(result.replayedTransactions ?? 0) transactions of the change stream\(result.restoredTo.map { ", the last committed at \($0)" } ?? "").")
            }
            print("""
                Restored \(result.backupId) into database \(result.database) (\(result.mode)\(result.createdDatabase ? ", database created" : "")).
                  tables  \(result.restoredTables.count), rows \(Format.count(result.rows)), large objects \(result.largeObjects)
                  data    \(Format.bytes(result.rawBytes)) in \(Format.seconds(result.durationSeconds)) (\(Format.rate(result.rawBytes, seconds: result.durationSeconds)))
                """)
            if let created = result.createdRoles {
                print("  roles   \(created.count) created\(created.isEmpty ? "" : ": " + created.map(DisplayName.role).joined(separator: ", "))")
            }
            if let existing = result.existingRoles, !existing.isEmpty {
                print("          \(existing.count) existed and were left as they are: " + existing.map(DisplayName.role).joined(separator: ", "))
            }
            for notice in result.roleNotices ?? [] { print("  note    \(notice)") }
        }
    }
}
