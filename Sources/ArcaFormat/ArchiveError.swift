/// Where in an archive something went wrong, in terms a person can act on.
public enum ArchiveLocation: Sendable, Equatable, CustomStringConvertible {
    case header
    case trailer
    case manifest
    case keyEnvelope
    case frame(offset: UInt64)
    /// A chunk of a stream; `stream` is its display name (`table public.x`).
    case chunk(stream: String, sequence: UInt64, offset: UInt64)
    /// A whole stream, by display name.
    case stream(String)
    case body

    public var description: String {
        switch self {
        case .header: "the file header"
        case .trailer: "the trailer"
        case .manifest: "the manifest"
        case .keyEnvelope: "the key envelope"
        case .frame(let offset): "the frame at offset \(offset)"
        case .chunk(let stream, let sequence, let offset): "\(stream), chunk \(sequence) (offset \(offset))"
        case .stream(let stream): stream
        case .body: "the archive body"
        }
    }
}

/// Everything a reader can find wrong with an archive. Each case is one of
/// the rejections listed in FORMAT.md, and carries where it happened.
public enum ArchiveError: Error, Sendable, Equatable, CustomStringConvertible {
    case truncated(what: String, offset: UInt64, needed: UInt64, fileSize: UInt64)
    case badMagic(found: [UInt8])
    case unsupportedVersion(UInt16)
    case malformed(ArchiveLocation, String)
    case checksumMismatch(ArchiveLocation, expected: UInt32, actual: UInt32)
    case badTrailer(String)
    case limitExceeded(ArchiveLocation, what: String, value: UInt64, limit: UInt64)
    case decompressionFailed(ArchiveLocation, String)
    case invalidManifest(String)
    case indexMismatch(ArchiveLocation, String)
    case digestMismatch(ArchiveLocation, algorithm: String, expected: String, actual: String)
    case keyRequired(keyID: String, passphrase: Bool)
    case wrongKey(String)
    /// The passphrase could not be stretched (scrypt failed: out of memory).
    case keyDerivationFailed(String)
    case authenticationFailed(ArchiveLocation)

    public var description: String {
        switch self {
        case .truncated(let what, let offset, let needed, let fileSize):
            "The archive is truncated: \(what) needs \(needed) bytes at offset \(offset), but the file has \(fileSize) bytes. The file was not completely written or copied; use another copy of this backup."
        case .badMagic(let found):
            "This is not an Arca archive: it starts with \(Hex.encode(found)) instead of the Arca magic bytes."
        case .unsupportedVersion(let version):
            "The archive uses format version \(version); this arca reads versions \(ArchiveFormat.readableVersions.lowerBound) to \(ArchiveFormat.readableVersions.upperBound). Use the arca release that wrote it or a newer one."
        case .malformed(let location, let detail):
            "The archive is malformed in \(location): \(detail)."
        case .checksumMismatch(let location, let expected, let actual):
            "Checksum mismatch in \(location) (CRC-32C recorded \(hex32(expected)), computed \(hex32(actual))): the bytes were damaged after they were written. Use another copy of this backup."
        case .badTrailer(let detail):
            "The archive's trailer is invalid: \(detail). The file is probably truncated or was not completely written."
        case .limitExceeded(let location, let what, let value, let limit):
            "The archive is invalid in \(location): \(what) is \(value), above the limit of \(limit)."
        case .decompressionFailed(let location, let detail):
            "Cannot decompress \(location): \(detail). The chunk is damaged."
        case .invalidManifest(let detail):
            "The archive's manifest is invalid: \(detail)."
        case .indexMismatch(let location, let detail):
            "The archive's index does not match its contents at \(location): \(detail)."
        case .digestMismatch(let location, let algorithm, let expected, let actual):
            "\(algorithm.uppercased()) mismatch for \(location): the manifest records \(expected), the data gives \(actual). The data was damaged or altered."
        case .keyRequired(let keyID, let passphrase):
            passphrase
                ? "The archive is encrypted with a passphrase. Set ARCA_PASSPHRASE to read it."
                : "The archive is encrypted with key id \(keyID). Set ARCA_ENCRYPTION_KEY or pass --key-file to read it."
        case .wrongKey(let detail):
            "Wrong key: \(detail). Nothing was read or written; use the key or passphrase the backup was made with."
        case .keyDerivationFailed(let detail):
            "Cannot derive the key from the passphrase: \(detail)"
        case .authenticationFailed(let location):
            "Authentication failed for \(location): the bytes were altered, or belong to another archive or another place in this one. Use another copy of this backup."
        }
    }
}

func hex32(_ value: UInt32) -> String {
    let text = String(value, radix: 16)
    return String(repeating: "0", count: 8 - text.count) + text
}
