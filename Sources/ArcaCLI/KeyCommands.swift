import ArcaEngine
import ArcaFormat
import ArgumentParser
import Foundation

/// `--key-file`, and the environment's key (KeyConfiguration), for every
/// command that reads or writes archives.
struct KeyOption: ParsableArguments {
    @Option(name: .long, help: "A file holding the encryption key (mode 0600; default: $ARCA_KEY_FILE, else $ARCA_ENCRYPTION_KEY or $ARCA_PASSPHRASE).")
    var keyFile: String?
}

/// With a key configured, an unencrypted archive is refused by restore,
/// drill, verify and `sync --download` (see ArchiveTrust) unless this is given.
struct UnencryptedOption: ParsableArguments {
    @Flag(name: .long, help: "Accept an unencrypted archive although a key is configured (only one you made yourself with --no-encrypt).")
    var allowUnencrypted = false
}

struct OtherSourceOption: ParsableArguments {
    @Flag(name: .long, help: "Accept a backup of another database than DATABASE_URL's (one a service sharing the bucket or repository made).")
    var allowOtherSource = false
}

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create a new encryption key (32 random bytes, base64).",
        discussion: """
            Prints the key on stdout, or writes it to a new file with mode 0600 (--output). Use it as \
            ARCA_ENCRYPTION_KEY or with --key-file. Keep a copy somewhere other than the backups: without \
            the key, encrypted backups cannot be restored.
            """)

    @Option(name: .long, help: "Write the key to this new file (mode 0600) instead of printing it.")
    var output: String?

    func run() throws {
        let key = ArchiveKey.generate()
        guard let text = key.base64, let id = key.keyID else { return }
        if let output {
            do {
                try KeyConfiguration.writeKeyFile(key, to: output)
            } catch {
                throw Output.fail(error)
            }
            print("Wrote a new key (id \(id)) to \(output).")
        } else {
            print(text)
            FileHandle.standardError.write(Data("arca: key id \(id). Store it safely: encrypted backups cannot be restored without it.\n".utf8))
        }
    }
}
