import ArcaEngine
import ArcaOperations
import ArgumentParser
import Foundation

/// `--cloud`: read the archive from the bucket even when a local copy exists.
struct CloudFlag: ParsableArguments {
    @Flag(name: .long, help: "Read the archive from the bucket (AWS_S3_BUCKET) instead of the repository.")
    var cloud = false
}

struct SyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Upload the local backups the bucket lacks (or, with --download, the reverse).",
        discussion: """
            The bucket comes from AWS_S3_BUCKET, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and \
            AWS_SESSION_TOKEN, AWS_ENDPOINT_URL, ARCA_S3_PREFIX). Each archive is uploaded in parts and appears \
            only when complete; a download is checked against its sidecar before it appears in the repository. \
            Exit status 1 when any copy failed (the others are kept).
            """)

    @Flag(name: .long, help: "Download the bucket's backups that the repository lacks.")
    var download = false

    @Option(name: .long, help: "Bytes uploaded per second, e.g. 20MiB (default $ARCA_UPLOAD_MAX_RATE, else unlimited).")
    var uploadMaxRate: String?

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var key: KeyOption
    @OptionGroup var unencrypted: UnencryptedOption
    @OptionGroup var progress: ProgressOption
    @OptionGroup var output: JSONOption

    func validate() throws {
        _ = try BackupCommand.rate(uploadMaxRate, "--upload-max-rate")
    }

    func run() throws {
        let operations = try commandLineOperations(
            repository, settings: ["ARCA_KEY_FILE": key.keyFile, "ARCA_UPLOAD_MAX_RATE": uploadMaxRate])
        let result: SyncResult
        do {
            result = try operations.sync(download ? .download : .upload, allowUnencrypted: unencrypted.allowUnencrypted, progress: progress.display)
        } catch {
            throw Output.fail(error)
        }
        Output.clearProgress()
        if output.json {
            Output.json(result)
        } else {
            let verb = download ? "Downloaded" : "Uploaded"
            print("\(verb) \(result.copied.count) backup(s), \(Format.bytes(result.bytes)), \(download ? "from" : "to") \(result.location).")
            for id in result.copied { print("  + \(id)") }
            for (id, reason) in result.failed.sorted(by: { $0.key < $1.key }) { Output.error("\(id): \(reason)") }
        }
        if !result.failed.isEmpty { throw ExitCode(ExitStatus.failure.rawValue) }
    }
}
