import ArcaEngine
import ArgumentParser
import Foundation

/// The bucket from the environment (`AWS_S3_BUCKET` and friends), or nil.
/// A half-configured bucket is a usage error, said before anything runs.
func configuredCloud() throws -> CloudStore? {
    do {
        return try CloudStore.fromEnvironment()
    } catch {
        throw Output.fail(error, status: .usage)
    }
}

/// `--cloud`: read the archive from the bucket even when a local copy exists.
struct CloudFlag: ParsableArguments {
    @Flag(name: .long, help: "Read the archive from the bucket (AWS_S3_BUCKET) instead of the repository.")
    var cloud = false

    /// Finds the archive; `bucket` is `configuredCloud()`, read before the
    /// operation starts so a configuration error is a usage error.
    func locate(_ backup: String, in repository: Repository, bucket: CloudStore?) throws -> ArchiveReference {
        try ArchiveReference.locate(backup, repository: repository, cloud: bucket, preferCloud: cloud)
    }
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

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var key: KeyOption
    @OptionGroup var unencrypted: UnencryptedOption
    @OptionGroup var output: JSONOption

    func run() throws {
        guard let cloud = try configuredCloud() else {
            throw Output.fail(OperationError.invalidConfiguration("No bucket is configured: set AWS_S3_BUCKET and the AWS_* credentials."), status: .usage)
        }
        var sync = CloudSync(repository: repository.repository, cloud: cloud)
        sync.key = try key.key()
        sync.allowUnencrypted = unencrypted.allowUnencrypted
        let trail = auditTrail(repository.repository, "sync")
        let result: SyncResult
        do {
            let report: (String) -> Void = { id in if !output.json { Output.progress("\(download ? "downloading" : "uploading") \(id)") } }
            result = try download ? sync.download(progress: report) : sync.upload(progress: report)
            try trail.record(
                outcome: result.failed.isEmpty ? "success" : "failure", error: result.failed.first.map { "\($0.key): \($0.value)" },
                details: ["direction": result.direction, "copied": String(result.copied.count), "location": result.location])
        } catch {
            trail.recordFailure(error)
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
