import ArcaEngine
import ArcaOperations
import ArgumentParser
import Foundation

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Read an archive completely and check every checksum and digest.",
        discussion: "Exit status 0 when everything matches, 3 when the archive is damaged.")

    @Argument(help: "A backup id in the repository, or the path of an .arca file.")
    var backup: String

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var cloud: CloudFlag
    @OptionGroup var key: KeyOption
    @OptionGroup var unencrypted: UnencryptedOption

    @Flag(name: .long, help: "Check an encrypted archive without its key: only that the stored bytes are the ones written.")
    var noKey = false

    @OptionGroup var progress: ProgressOption
    @OptionGroup var output: JSONOption

    func run() throws {
        let operations = try commandLineOperations(repository, settings: ["ARCA_KEY_FILE": key.keyFile])
        var request = VerifyRequest(backup: backup)
        request.fromCloud = cloud.cloud
        request.withoutKey = noKey
        request.allowUnencrypted = unencrypted.allowUnencrypted
        let result: VerifyResult
        do {
            result = try operations.verify(request, progress: progress.display)
        } catch {
            throw Output.fail(error)
        }
        Output.clearProgress()
        if output.json {
            Output.json(result)
        } else if result.intact {
            print("""
                \(result.backupId ?? result.path): intact.
                  \(result.depth == "full"
                    ? "\(result.tables) tables, \(result.chunks) chunks, \(Format.bytes(result.rawBytes)) of data checked (MD5, SHA-256, CRC-32C\(result.encrypted ? ", AES-GCM tags" : ""))"
                    : "stored bytes checked against the trailer's MD5 and SHA-256 (without the key: contents not checked)")
                  sidecar md5: \(result.sidecar)\(result.chain.map { "\n  through the chain: the tables stored in \($0.joined(separator: ", ")) read and checked there too" } ?? "")
                """)
        } else {
            Output.error("\(result.backupId ?? result.path) is damaged:")
            for problem in result.problems {
                FileHandle.standardError.write(Data("  - \(problem)\n".utf8))
            }
        }
        if !result.intact { throw ExitCode(ExitStatus.integrity.rawValue) }
    }
}
