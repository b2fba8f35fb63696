import ArcaEngine
import ArcaOperations
import ArgumentParser
import Foundation

struct StreamCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Stream the database's committed changes into change segments, for point-in-time restore.",
        discussion: """
            Runs in the foreground until SIGTERM or SIGINT. Needs wal_level = logical; the first run, as a \
            superuser, creates the publication arca_changes, the replication slot (ARCA_SLOT, default \
            arca_<database>) and event triggers that record schema changes (schema arca_stream). A segment \
            closes every ARCA_SEGMENT_SECONDS (default 60): written, fsynced and uploaded before the slot \
            lets its changes go. Backups taken while the slot exists are anchored in the stream. \
            `arca stream drop` removes the slot, the publication and the triggers.
            """,
        subcommands: [StreamRunCommand.self, StreamDropCommand.self],
        defaultSubcommand: StreamRunCommand.self)
}

struct StreamRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the change stream (the default).")

    @Option(name: .long, help: "The database to stream (default: $DATABASE_URL).")
    var databaseURL: String?

    @OptionGroup var repository: RepositoryOption

    @Option(name: .long, help: "The replication slot (default $ARCA_SLOT, else arca_<database>).")
    var slot: String?

    @Option(name: .long, help: "Seconds a change segment stays open (default $ARCA_SEGMENT_SECONDS, else 60).")
    var segmentSeconds: Double?

    @Flag(name: .long, help: "Set REPLICA IDENTITY FULL on tables without a primary key (else the stream refuses to start).")
    var replicaIdentityFull = false

    @OptionGroup var key: KeyOption
    @OptionGroup var verbosity: VerboseOption

    func validate() throws {
        if let slot, !ReplicationNames.isValidSlot(slot) {
            throw ValidationError("--slot must be lower-case letters, digits and underscores, at most 63.")
        }
        if let segmentSeconds { guard segmentSeconds >= 0.2, segmentSeconds <= 3600 else { throw ValidationError("--segment-seconds must be from 0.2 to 3600.") } }
    }

    func run() throws {
        let operations = try commandLineOperations(repository, settings: ["DATABASE_URL": databaseURL, "ARCA_KEY_FILE": key.keyFile])
        var request = StreamRequest()
        request.slot = slot
        request.segmentSeconds = segmentSeconds
        request.replicaIdentityFull = replicaIdentityFull
        Signals.cancel(operations.cancellation)
        do {
            try operations.stream(request) { event in
                let line: String
                switch event {
                case .started(let slot, let from): line = "streaming slot \(slot) from \(from)"
                case .segment(let id, let transactions, let rawBytes, let bytes, let lastCommitAt):
                    line = "segment \(id): \(transactions) transactions, \(Format.bytes(rawBytes)) decoded, \(Format.bytes(bytes)) stored\(lastCommitAt.map { ", restorable to \($0)" } ?? "")"
                case .retrying(let after, let reason): line = "\(reason) Retrying in \(Format.seconds(after))."
                case .ignoredMessage(let what): line = "ignored \(what)"
                case .backupForced(let reason): line = "taking a full backup now: \(reason)"
                }
                FileHandle.standardError.write(Data("arca stream: \(line)\n".utf8))
            }
        } catch {
            throw Output.fail(error, verbose: verbosity)
        }
    }
}

struct StreamDropCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drop",
        abstract: "Drop the change stream's slot, publication and schema-change triggers.",
        discussion: "The server then keeps no WAL for Arca. Change segments already written stay in the repository; point-in-time restore reaches up to the last of them.")

    @Option(name: .long, help: "The database (default: $DATABASE_URL).")
    var databaseURL: String?

    @OptionGroup var repository: RepositoryOption

    @Option(name: .long, help: "The replication slot (default $ARCA_SLOT, else arca_<database>).")
    var slot: String?

    @Flag(name: .long, help: "Confirm: without it nothing is dropped.")
    var confirm = false

    @OptionGroup var output: JSONOption

    func run() throws {
        guard confirm else {
            Output.error("`arca stream drop` drops the replication slot (changes not yet in a segment are lost to point-in-time restore). Add --confirm to do it.")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        let operations = try commandLineOperations(repository, settings: ["DATABASE_URL": databaseURL])
        let removed: [String]
        do {
            removed = try operations.dropStream(slot: slot)
        } catch {
            throw Output.fail(error)
        }
        if output.json {
            Output.json(["removed": removed])
        } else {
            print(removed.isEmpty ? "Nothing to drop: no slot, publication or triggers of Arca's stream." : "Dropped: " + removed.joined(separator: ", ") + ".")
        }
    }
}
