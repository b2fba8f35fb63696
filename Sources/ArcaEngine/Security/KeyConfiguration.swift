import ArcaFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where the encryption key comes from: `--key-file` (or `ARCA_KEY_FILE`),
/// `ARCA_ENCRYPTION_KEY`, or `ARCA_PASSPHRASE` (stretched with scrypt at the
/// cost `ARCA_PASSPHRASE_COST`, log2 of N, 10 to 16, default 15). At most one may be set.
public enum KeyConfiguration {
    public static let variables = ["ARCA_KEY_FILE", "ARCA_ENCRYPTION_KEY", "ARCA_PASSPHRASE", "ARCA_PASSPHRASE_COST"]

    /// The configured key, or nil when none is configured.
    public static func resolve(
        keyFile explicit: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ArchiveKey? {
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        let keyFile = explicit ?? value("ARCA_KEY_FILE")
        let sources = [keyFile.map { _ in "--key-file / ARCA_KEY_FILE" }, value("ARCA_ENCRYPTION_KEY").map { _ in "ARCA_ENCRYPTION_KEY" },
                       value("ARCA_PASSPHRASE").map { _ in "ARCA_PASSPHRASE" }].compactMap { $0 }
        guard sources.count <= 1 else {
            throw OperationError.invalidConfiguration("Both \(sources.joined(separator: " and ")) are set. Configure one key source only.")
        }
        do {
            if let keyFile { return try readKeyFile(keyFile) }
            if let text = value("ARCA_ENCRYPTION_KEY") { return try ArchiveKey(base64: text) }
            if let passphrase = value("ARCA_PASSPHRASE") {
                var cost = ScryptCost.standard
                if let text = value("ARCA_PASSPHRASE_COST") {
                    guard let log2N = UInt8(text) else {
                        throw OperationError.invalidConfiguration("ARCA_PASSPHRASE_COST must be log2 of scrypt's N (\(ScryptCost.log2NRange)), not \"\(text)\".")
                    }
                    cost.log2N = log2N
                }
                return try ArchiveKey.passphrase(passphrase, cost: cost)
            }
        } catch let error as ArchiveKey.KeyError {
            throw OperationError.invalidConfiguration("\(error)")
        }
        return nil
    }

    /// A key file holds the base64 key (what `arca keygen` prints). It must
    /// be a regular file readable by its owner only.
    public static func readKeyFile(_ path: String) throws -> ArchiveKey {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw OperationError.invalidConfiguration("Cannot read the key file \(path): \(String(cString: strerror(errno))).")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw OperationError.invalidConfiguration("The key file \(path) is not a regular file.")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw OperationError.invalidConfiguration(
                "The key file \(path) can be read by other users (mode \(String(status.st_mode & 0o777, radix: 8))). Run `chmod 600 \(path)` and try again.")
        }
        // A key file is one line of 45 bytes: a larger file is not one, and is not read whole.
        guard let data = try? FileSystem.readSmallFile(path, limit: 4096) else {
            throw OperationError.invalidConfiguration("Cannot read the key file \(path), or it is larger than a key file can be.")
        }
        do {
            return try ArchiveKey(base64: String(decoding: data, as: UTF8.self))
        } catch {
            throw OperationError.invalidConfiguration("The key file \(path) does not hold a key: \(error)")
        }
    }

    /// Writes a new key file with mode 0600; never replaces an existing file.
    public static func writeKeyFile(_ key: ArchiveKey, to path: String) throws {
        guard let text = key.base64 else { preconditionFailure("only keys are written to key files") }
        let sink = try FileSink(creatingExclusively: path)
        try Array((text + "\n").utf8).withUnsafeBytes { try sink.write($0) }
        try sink.syncAndClose()
    }
}
