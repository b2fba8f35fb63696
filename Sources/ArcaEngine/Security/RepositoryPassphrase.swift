import ArcaFormat
import Foundation

/// `<repo>/passphrase.json`: the scrypt salt and cost that every
/// passphrase-encrypted archive written into the repository shares, so that
/// a reader stretches the passphrase once for all of them instead of once
/// per archive (scrypt is slow on purpose). Each archive still carries its
/// salt and cost in its key envelope: a host with only the archives (the
/// bucket) reads them without this file.
///
/// The file is hostile input like an archive: it is read with a size limit,
/// and a cost other than the configured one is not used (someone who can
/// write the folder must not be able to weaken the stretching).
struct RepositoryPassphraseSalt: Codable, Equatable {
    /// 32 lowercase hex digits.
    var salt: String
    var log2N: UInt8
    var r: UInt32
    var p: UInt32

    static let fileName = "passphrase.json"
    static let sizeLimit = 4096

    var cost: ScryptCost { ScryptCost(log2N: log2N, r: r, p: p) }
}

extension Repository {
    public var passphraseSaltPath: String { "\(root)/\(RepositoryPassphraseSalt.fileName)" }

    /// The key a backup into this repository writes with: a passphrase
    /// shares the repository's salt (created, 0600 and atomically, by the
    /// first backup that needs it, or anew when the configured cost
    /// changes); a key is used as it is. Call with the repository locked for
    /// writing.
    public func writingKey(_ key: ArchiveKey?) throws -> ArchiveKey? {
        guard case .passphrase(let passphrase)? = key else { return key }
        if let recorded = try passphraseSalt(), recorded.cost == passphrase.cost, let salt = Hex.decode(recorded.salt) {
            return .passphrase(passphrase.sharingSalt(salt, cost: recorded.cost))
        }
        let salt = SecureRandom.bytes(Passphrase.saltLength)
        let cost = passphrase.cost
        let record = RepositoryPassphraseSalt(salt: Hex.encode(salt), log2N: cost.log2N, r: cost.r, p: cost.p)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try prepare()
        try FileSystem.writeAtomically(Array(try encoder.encode(record)) + [0x0A], to: passphraseSaltPath, temporaryDirectory: temporaryDirectory)
        return .passphrase(passphrase.sharingSalt(salt, cost: cost))
    }

    /// The recorded salt and cost, nil when there is no file; a file that
    /// is too large, not this JSON, or has a salt or cost out of bounds is
    /// an error that names it.
    func passphraseSalt() throws -> RepositoryPassphraseSalt? {
        let path = passphraseSaltPath
        guard let bytes = try FileSystem.readSmallFile(path, limit: RepositoryPassphraseSalt.sizeLimit) else { return nil }
        let record: RepositoryPassphraseSalt
        do {
            record = try JSONDecoder().decode(RepositoryPassphraseSalt.self, from: Data(bytes))
        } catch {
            throw RepositoryError.malformedFile(path: path, detail: "it is not the JSON of a salt and scrypt cost")
        }
        guard record.salt.count == 2 * Passphrase.saltLength, Hex.decode(record.salt) != nil else {
            throw RepositoryError.malformedFile(path: path, detail: "the salt is not \(2 * Passphrase.saltLength) hex digits")
        }
        guard record.cost.isAcceptable else {
            throw RepositoryError.malformedFile(path: path, detail: "\(Scrypt.Failure.unacceptableCost(record.cost))")
        }
        return record
    }
}
