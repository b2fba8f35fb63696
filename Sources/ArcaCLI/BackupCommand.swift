import ArcaEngine
import ArcaFormat
import ArcaOperations
import ArgumentParser
import Foundation

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Back up a database into a new archive in the repository.")

    @Option(name: .long, help: "The database to back up (default: $DATABASE_URL). URL or key=value conninfo.")
    var databaseURL: String?

    @OptionGroup var repository: RepositoryOption

    @Option(name: .customLong("table"), help: "Only tables matching this glob on schema.table (repeatable).")
    var tables: [String] = []

    @Option(name: .customLong("exclude-table"), help: "Skip tables matching this glob on schema.table (repeatable).")
    var excludedTables: [String] = []

    @Option(name: .long, help: "zstd compression level (1-19; default $ARCA_COMPRESSION_LEVEL, else 1); higher is smaller and slower.")
    var level: Int32?

    @Option(name: .long, help: "COPY format of the tables' rows: auto (binary where it is exact, else text), text or binary (default $ARCA_COPY_FORMAT, else auto).")
    var copyFormat: String?

    @Option(name: .long, help: "Raw bytes per chunk, in KiB (4-262144).")
    var chunkSizeKib: UInt32 = ArchiveFormat.defaultChunkSize / 1024

    @Option(name: .long, help: "Parallel connections (default $ARCA_JOBS, else the number of cores, at least 2).")
    var jobs: Int?

    @Option(name: .long, help: "Table data read per second, all connections together, e.g. 40MiB (default $ARCA_MAX_RATE, else unlimited).")
    var maxRate: String?

    @Option(name: .long, help: "Bytes uploaded to the bucket per second, e.g. 20MiB (default $ARCA_UPLOAD_MAX_RATE, else unlimited).")
    var uploadMaxRate: String?

    @Option(name: .long, help: "Copy tables larger than this many MiB as several ctid ranges in parallel.")
    var splitThresholdMib: UInt64 = 256

    @Option(name: .long, help: "Seconds to wait for a table lock held by another session.")
    var lockTimeout: Int = 60

    @Flag(name: .long, help: "Leave large objects out of the backup.")
    var noLargeObjects = false

    @OptionGroup var key: KeyOption

    @Flag(name: .long, help: "Write an unencrypted archive even though a key is configured.")
    var noEncrypt = false

    @Flag(name: .long, help: "Stream the archive to the bucket (AWS_S3_BUCKET) with no local copy.")
    var uploadOnly = false

    @Flag(name: .long, help: "Record the password hashes of the database's roles (encrypted archives only; needs a superuser).")
    var withRolePasswords = false

    @Flag(name: .long, help: "Read the backup back once published (and its bucket copy from the bucket) and record its integrity.")
    var verify = false

    @Flag(name: .long, help: "Store the tables unchanged since the newest backup as references to it (default: as $ARCA_FULL_BACKUP_EVERY says).")
    var incremental = false

    @Flag(name: .long, help: "Copy every table, whatever $ARCA_FULL_BACKUP_EVERY says.")
    var full = false

    @OptionGroup var progress: ProgressOption
    @OptionGroup var output: JSONOption
    @OptionGroup var verbosity: VerboseOption

    func validate() throws {
        if let level { guard (1...19).contains(level) else { throw ValidationError("--level must be between 1 and 19.") } }
        guard ArchiveFormat.chunkSizeRange.contains(chunkSizeKib &* 1024) else {
            throw ValidationError("--chunk-size-kib must be between 4 and 262144.")
        }
        guard lockTimeout > 0 else { throw ValidationError("--lock-timeout must be positive.") }
        if let jobs { guard (1...64).contains(jobs) else { throw ValidationError("--jobs must be between 1 and 64.") } }
        guard splitThresholdMib >= 1 else { throw ValidationError("--split-threshold-mib must be at least 1.") }
        guard !(incremental && full) else { throw ValidationError("--incremental and --full exclude each other.") }
        _ = try Self.rate(maxRate, "--max-rate")
        _ = try Self.rate(uploadMaxRate, "--upload-max-rate")
        _ = try Self.copyFormat(copyFormat)
    }

    /// `--copy-format`, or nil; a bad one is a usage error.
    static func copyFormat(_ text: String?) throws -> CopyFormatChoice? {
        do {
            return try text.map { try CopyFormatChoice(parsing: $0, setting: "--copy-format") }
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// A rate flag, or nil; a bad one is a usage error naming the flag.
    static func rate(_ text: String?, _ flag: String) throws -> ByteRate? {
        do {
            return try text.map { try ByteRate(parsing: $0, setting: flag) }
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() throws {
        let operations = try commandLineOperations(
            repository, settings: ["DATABASE_URL": databaseURL, "ARCA_KEY_FILE": key.keyFile, "ARCA_UPLOAD_MAX_RATE": uploadMaxRate])
        var request = BackupRequest()
        request.tables = TableFilter(include: tables, exclude: excludedTables)
        request.compressionLevel = level
        request.copyFormat = try Self.copyFormat(copyFormat)
        request.chunkSize = chunkSizeKib * 1024
        request.lockTimeoutMilliseconds = lockTimeout * 1000
        request.excludeLargeObjects = noLargeObjects
        request.jobs = jobs
        request.maxRate = try Self.rate(maxRate, "--max-rate")
        request.splitThresholdBytes = splitThresholdMib << 20
        request.encrypt = !noEncrypt
        request.uploadOnly = uploadOnly
        request.withRolePasswords = withRolePasswords
        // The service verifies by default (ARCA_VERIFY_AFTER_BACKUP); a command line asks.
        request.verify = verify
        request.incremental = incremental ? true : full ? false : nil
        // SIGINT and SIGTERM stop the backup cleanly: temp file removed, lock released, failure audited.
        Signals.cancel(operations.cancellation)
        let result: BackupResult
        do {
            result = try operations.backup(request, progress: progress.display)
        } catch {
            throw Output.fail(error, verbose: verbosity)
        }
        Output.clearProgress()
        let damaged = result.verified == false || result.cloudVerified == false
        if output.json {
            Output.json(result)
            if damaged { throw ExitCode(ExitStatus.integrity.rawValue) }
            return
        }
        let key = noEncrypt ? nil : operations.configuration.encryptionKey
        // What this archive holds: referenced tables' rows are in their own archives.
        let storedRaw = result.rawBytes - min(result.rawBytes, result.referencedRawBytes ?? 0)
        let ratio = result.bytes > 0 ? Double(storedRaw) / Double(result.bytes) : 0
        var incremental = ""
        if let base = result.base {
            incremental = "\n  based on \(base): \(result.referencedTables ?? 0) unchanged table(s) referenced, \(Format.bytes(result.referencedRawBytes ?? 0)) of COPY data not stored again"
        }
        if let note = result.note { incremental += "\n  note     \(note)" }
        print("""
            Backup \(result.backupId) complete.
              archive  \(result.path) (\(Format.bytes(result.bytes)))
              md5      \(result.md5)\(result.cloud.map { "\n  cloud    \($0)" } ?? "")
              sealed   \(key.map { "AES-256-GCM, with \($0)" } ?? "no (not encrypted)")
              tables   \(result.tables), rows \(Format.count(result.rows))\(incremental)
              data     \(Format.bytes(storedRaw)) of COPY data, stored at \(String(format: "%.1f", ratio))x compression
              time     \(Format.seconds(result.durationSeconds)) (\(Format.rate(result.rawBytes, seconds: result.durationSeconds)))
            """)
        if let verified = result.verified { print("  verify   \(verified ? "intact (read back from disk)" : "FAILED: see `arca verify \(result.backupId)`")") }
        if let verified = result.cloudVerified { print("  cloud    \(verified ? "intact (read back from the bucket)" : "FAILED: see `arca verify --cloud \(result.backupId)`")") }
        if damaged { throw ExitCode(ExitStatus.integrity.rawValue) }
    }
}
