import Foundation

/// Encrypted archives (FORMAT.md, "Encryption"). The key hierarchy:
///
///     archive key (32 random bytes)      or   passphrase ──scrypt(salt, cost)──┐
///          │                                                                  │
///          └──────────────── master secret (32 bytes) ◀──────────────────────┘
///                 ├─ HMAC-SHA256(master, "arca key id")[0..<8]   key id (stored, public)
///                 └─ HMAC-SHA256(master, "arca key wrap")         key-encryption key
///                          └─ AES-256-GCM wraps ─▶ data key (random, one per archive)
///                                                   └─ AES-256-GCM seals every chunk and the manifest
///
/// Rotating the archive key re-wraps 48 bytes per archive; the data never
/// needs re-encrypting.

/// What unlocks encrypted archives: a 32-byte key or a passphrase.
public enum ArchiveKey: Sendable, CustomStringConvertible {
    case key(SecretBytes)
    case passphrase(Passphrase)

    public static let keyLength = 32

    /// A key from its base64 text (what `arca keygen` prints).
    public init(base64 text: String) throws(KeyError) {
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == Self.keyLength else {
            throw .malformedKey
        }
        self = .key(SecretBytes(Array(data)))
    }

    public static func passphrase(_ text: String, cost: ScryptCost = .standard) throws(KeyError) -> ArchiveKey {
        guard text.utf8.count >= 8 else { throw .passphraseTooShort }
        guard cost.isAcceptable else { throw .unacceptableCost(cost) }
        return .passphrase(Passphrase(secret: SecretBytes(Array(text.utf8)), cost: cost, salt: nil, derivations: DerivationCache()))
    }

    public static func generate() -> ArchiveKey { .key(SecretBytes(SecureRandom.bytes(keyLength))) }

    /// The key's base64 text; for `.passphrase` nil (a passphrase is not a key).
    public var base64: String? {
        guard case .key(let secret) = self else { return nil }
        return Data(secret.bytes).base64EncodedString()
    }

    /// The public identifier of a key (not of a passphrase, whose identifier
    /// depends on each archive's salt): lets a person tell keys apart.
    public var keyID: String? {
        guard case .key(let secret) = self else { return nil }
        return Hex.encode(KeyEnvelope.derive(master: secret.bytes).keyID)
    }

    public var description: String {
        switch self {
        case .key: "an encryption key"
        case .passphrase: "a passphrase"
        }
    }

    public enum KeyError: Error, Sendable, Equatable, CustomStringConvertible {
        case malformedKey
        case passphraseTooShort
        case unacceptableCost(ScryptCost)

        public var description: String {
            switch self {
            case .malformedKey:
                "The encryption key is not the base64 text of 32 bytes. Create one with `arca keygen`."
            case .passphraseTooShort:
                "The passphrase is shorter than 8 bytes. Use a long passphrase, or a key from `arca keygen`."
            case .unacceptableCost(let cost):
                Scrypt.Failure.unacceptableCost(cost).description
            }
        }
    }
}

/// A passphrase, the scrypt cost and salt a writer uses with it, and the
/// master secrets derived from it so far. scrypt is deliberately slow, so
/// each (salt, cost) is derived once per process: archives that share their
/// repository's salt (see `sharingSalt`) cost one derivation for all of them.
public struct Passphrase: Sendable {
    let secret: SecretBytes
    /// What a writer uses; a reader uses the cost stored in the archive.
    public let cost: ScryptCost
    /// The salt a writer puts in every archive; nil: a new random salt for each.
    public let salt: [UInt8]?
    let derivations: DerivationCache

    public static let saltLength = 16

    /// The same passphrase (and derivation cache), writing with `salt` and `cost`.
    public func sharingSalt(_ salt: [UInt8], cost: ScryptCost) -> Passphrase {
        precondition(salt.count == Self.saltLength)
        return Passphrase(secret: secret, cost: cost, salt: salt, derivations: derivations)
    }

    /// How many times scrypt ran for this passphrase (and the copies made
    /// from it) in this process: what the cache saves is measurable.
    public var derivationCount: Int { derivations.count }

    /// The master secret for `salt` and `cost`, derived at most once.
    func master(salt: [UInt8], cost: ScryptCost) throws(Scrypt.Failure) -> [UInt8] {
        try derivations.master(salt: salt, cost: cost) { () throws(Scrypt.Failure) in
            try Scrypt.deriveKey(password: secret.bytes, salt: salt, cost: cost)
        }
    }
}

/// Master secrets by (salt, cost), shared by the copies of one passphrase.
/// Thread-safe; a derivation runs under the lock, so that readers of
/// archives with the same salt on several threads wait for one derivation
/// instead of each running their own.
final class DerivationCache: @unchecked Sendable {
    private struct Parameters: Hashable {
        let salt: [UInt8]
        let cost: ScryptCost
    }

    /// Archives with distinct salts (written before repositories shared
    /// theirs, or forged) each add an entry; past this many the cache starts
    /// over, so a hostile folder cannot make it grow without end.
    static let capacity = 1024

    private let lock = NSLock()
    private var secrets: [Parameters: [UInt8]] = [:]
    private var derived = 0

    var count: Int { lock.withLock { derived } }

    func master(salt: [UInt8], cost: ScryptCost, derive: () throws(Scrypt.Failure) -> [UInt8]) throws(Scrypt.Failure) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        let parameters = Parameters(salt: salt, cost: cost)
        if let secret = secrets[parameters] { return secret }
        let secret = try derive()
        derived += 1
        if secrets.count >= Self.capacity { secrets.removeAll() }
        secrets[parameters] = secret
        return secret
    }
}

/// An archive's data key, unwrapped, with the archive it belongs to.
public struct DataKey: Sendable {
    public let secret: SecretBytes
    public let archiveID: ArchiveID
}

/// The key envelope (FORMAT.md, "Key envelope frame"): how to find the
/// master secret, and the data key wrapped under it. 96 bytes.
public struct KeyEnvelope: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case key = 1
        case passphrase = 2
    }

    public static let length = 96
    static let authenticatedPrefixLength = 36

    public var kind: Kind
    /// scrypt's parameters and salt; zero for `.key`.
    public var cost: ScryptCost
    public var salt: [UInt8]
    public var keyID: [UInt8]
    public var nonce: [UInt8]
    /// The data key sealed with the key-encryption key: 32 bytes and a 16-byte tag.
    public var wrappedKey: [UInt8]

    /// Makes a new data key for the archive whose header is `header` and
    /// wraps it under `key`.
    public static func seal(with key: ArchiveKey, header: FileHeader) throws(Scrypt.Failure) -> (KeyEnvelope, DataKey) {
        let (kind, cost, salt, master): (Kind, ScryptCost, [UInt8], [UInt8])
        switch key {
        case .key(let secret):
            (kind, cost, salt, master) = (.key, ScryptCost(log2N: 0, r: 0, p: 0), [UInt8](repeating: 0, count: Passphrase.saltLength), secret.bytes)
        case .passphrase(let passphrase):
            let chosen = passphrase.salt ?? SecureRandom.bytes(Passphrase.saltLength)
            (kind, cost, salt, master) = (.passphrase, passphrase.cost, chosen, try passphrase.master(salt: chosen, cost: passphrase.cost))
        }
        let derived = derive(master: master)
        var envelope = KeyEnvelope(
            kind: kind, cost: cost, salt: salt, keyID: derived.keyID, nonce: SecureRandom.bytes(AESGCM.nonceLength),
            wrappedKey: [UInt8](repeating: 0, count: 32 + AESGCM.tagLength))
        let dataKey = SecureRandom.bytes(32)
        let aad = envelope.associatedData(header)
        _ = dataKey.withUnsafeBytes { plain in
            envelope.wrappedKey.withUnsafeMutableBytes {
                AESGCM(key: derived.keyEncryptionKey).seal(plain, nonce: envelope.nonce, associatedData: aad, into: $0)
            }
        }
        return (envelope, DataKey(secret: SecretBytes(dataKey), archiveID: header.archiveID))
    }

    /// What the wrapping authenticates: the file header and the envelope up to its nonce.
    func associatedData(_ header: FileHeader) -> [UInt8] {
        header.encoded() + Array(encoded()[0..<Self.authenticatedPrefixLength])
    }

    /// Unwraps the data key: `.keyRequired` without a key, `.wrongKey` when
    /// the key's identifier is not the archive's, `.authenticationFailed`
    /// when the identifier matches but the envelope or header was altered.
    public func open(with key: ArchiveKey?, header: FileHeader) throws(ArchiveError) -> DataKey {
        let archiveKeyID = Hex.encode(keyID)
        guard let key else { throw .keyRequired(keyID: archiveKeyID, passphrase: kind == .passphrase) }
        let master: [UInt8]
        switch (kind, key) {
        case (.key, .key(let secret)):
            master = secret.bytes
        case (.passphrase, .passphrase(let passphrase)):
            do {
                master = try passphrase.master(salt: salt, cost: cost)
            } catch {
                throw .keyDerivationFailed("\(error)")
            }
        case (.key, .passphrase):
            throw .wrongKey("the archive was encrypted with a key (id \(archiveKeyID)), and a passphrase was given")
        case (.passphrase, .key):
            throw .wrongKey("the archive was encrypted with a passphrase, and a key was given")
        }
        let derived = Self.derive(master: master)
        guard derived.keyID == keyID else {
            throw .wrongKey(kind == .key
                ? "the archive was encrypted with key id \(archiveKeyID), the key given has id \(Hex.encode(derived.keyID))"
                : "the passphrase is not the one the archive was encrypted with")
        }
        var dataKey = [UInt8](repeating: 0, count: 32)
        let aad = associatedData(header)
        let opened = wrappedKey.withUnsafeBytes { sealed in
            dataKey.withUnsafeMutableBytes { AESGCM(key: derived.keyEncryptionKey).open(sealed, nonce: nonce, associatedData: aad, into: $0) }
        }
        guard opened else { throw .authenticationFailed(.keyEnvelope) }
        return DataKey(secret: SecretBytes(dataKey), archiveID: header.archiveID)
    }

    static func derive(master: [UInt8]) -> (keyID: [UInt8], keyEncryptionKey: [UInt8]) {
        (Array(HMACSHA256.authenticate(Array("arca key id".utf8), key: master)[0..<8]),
         HMACSHA256.authenticate(Array("arca key wrap".utf8), key: master))
    }

    public func encoded() -> [UInt8] {
        precondition(salt.count == 16 && keyID.count == 8 && nonce.count == AESGCM.nonceLength && wrappedKey.count == 48)
        var writer = LittleEndianWriter(capacity: Self.length)
        writer.u8(kind.rawValue)
        writer.u8(cost.log2N)
        writer.u16(0)
        writer.u32(cost.r)
        writer.u32(cost.p)
        writer.raw(salt)
        writer.raw(keyID)
        writer.raw(nonce)
        writer.raw(wrappedKey)
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(ArchiveError) -> KeyEnvelope {
        precondition(bytes.count == length)
        var reader = LittleEndianReader(bytes)
        let rawKind = reader.u8()
        let log2N = reader.u8()
        let reserved = reader.u16()
        let r = reader.u32(), p = reader.u32()
        let salt = reader.raw(16), keyID = reader.raw(8), nonce = reader.raw(12), wrapped = reader.raw(48)
        guard let kind = Kind(rawValue: rawKind) else { throw .malformed(.keyEnvelope, "unknown key kind \(rawKind)") }
        guard reserved == 0 else { throw .malformed(.keyEnvelope, "a reserved field is not zero") }
        let cost = ScryptCost(log2N: log2N, r: r, p: p)
        switch kind {
        case .key:
            guard log2N == 0, r == 0, p == 0, salt.allSatisfy({ $0 == 0 }) else {
                throw .malformed(.keyEnvelope, "a key envelope carries passphrase parameters")
            }
        case .passphrase:
            // Before anything runs: what a forged envelope may cost a reader is bounded here.
            guard cost.isAcceptable else {
                throw .limitExceeded(.keyEnvelope, what: "the passphrase cost (\(cost)), as scrypt work N·r·p,", value: cost.work, limit: ScryptCost.maximum.work)
            }
        }
        return KeyEnvelope(kind: kind, cost: cost, salt: salt, keyID: keyID, nonce: nonce, wrappedKey: wrapped)
    }
}

/// Seals and opens frame payloads with an archive's data key. The nonce is
/// the frame's stream and sequence, unique within the archive (and the data
/// key is unique to the archive); the associated data is the archive id and
/// the frame header up to the stored length, so a payload authenticates
/// only in its own frame of its own archive. One instance per thread.
public final class FrameCipher {
    public static let overhead = AESGCM.tagLength
    private let aes: AESGCM
    private let archiveID: ArchiveID

    public init(_ key: DataKey) {
        aes = AESGCM(key: key.secret.bytes)
        archiveID = key.archiveID
    }

    static func nonce(_ frame: FrameHeader) -> [UInt8] {
        var writer = LittleEndianWriter(capacity: AESGCM.nonceLength)
        writer.u32(frame.streamID)
        writer.u64(frame.sequence)
        return writer.bytes
    }

    func associatedData(_ frame: FrameHeader) -> [UInt8] {
        archiveID.bytes + Array(frame.encoded()[0..<FrameHeader.authenticatedPrefixLength])
    }

    /// `frame.storedLength` must already be `plaintext.count + overhead`.
    public func seal(_ plaintext: UnsafeRawBufferPointer, frame: FrameHeader, into output: UnsafeMutableRawBufferPointer) -> Int {
        precondition(Int(frame.storedLength) == plaintext.count + Self.overhead)
        return aes.seal(plaintext, nonce: Self.nonce(frame), associatedData: associatedData(frame), into: output)
    }

    public func open(_ sealed: UnsafeRawBufferPointer, frame: FrameHeader, into output: UnsafeMutableRawBufferPointer) -> Bool {
        aes.open(sealed, nonce: Self.nonce(frame), associatedData: associatedData(frame), into: output)
    }
}
