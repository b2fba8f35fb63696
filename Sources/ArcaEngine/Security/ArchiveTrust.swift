import ArcaFormat
import Foundation

/// Which archives a repository with a key may act on, and which time a
/// backup is taken at.
///
/// With a key configured, every archive this repository's writers make is
/// encrypted, and so authenticated: only the key's holder can make one
/// whose manifest reads. A plain archive, checksums and all, can be made by
/// anyone who can write to the repository folder or the bucket, and its
/// schema dump runs as the restoring role. So restore, drills, verify and
/// `sync --download` refuse one unless the operator vouches for it
/// (`--allow-unencrypted`), and `list` and `status` point it out.
///
/// A backup's time is its manifest's (authenticated when encrypted), not
/// its file name's. A backup dated in the future is never "the newest",
/// never drilled and never counted by retention: one planted with a
/// far-future id would otherwise be picked by every drill and outlive
/// every real backup.
public enum ArchiveTrust {
    /// How far ahead of this host's clock a backup may be dated (another
    /// host's clock may run a little fast).
    public static let clockTolerance: TimeInterval = 300

    /// Reads what an archive shows without its key and refuses it, before
    /// its manifest is decoded, when it is unencrypted in a repository
    /// with a key (unless allowed).
    public static func outline(of source: ByteSource, archive: String, key: ArchiveKey?, allowUnencrypted: Bool) throws -> ArchiveOutline {
        let outline = try ArchiveOutline(source: source)
        try requireEncryption(encrypted: outline.header.isEncrypted, archive: archive, key: key, allowUnencrypted: allowUnencrypted)
        return outline
    }

    /// Opens an archive for reading after `outline(of:…)`'s check.
    public static func reader(of source: ByteSource, archive: String, key: ArchiveKey?, allowUnencrypted: Bool) throws -> ArchiveReader {
        let outline = try outline(of: source, archive: archive, key: key, allowUnencrypted: allowUnencrypted)
        return try ArchiveReader(source: source, outline: outline, key: key)
    }

    public static func requireEncryption(encrypted: Bool, archive: String, key: ArchiveKey?, allowUnencrypted: Bool) throws(ArchiveTrustError) {
        guard key != nil, !encrypted, !allowUnencrypted else { return }
        throw .unencrypted(archive: archive)
    }

    public static func isFutureDated(_ date: Date?, now: Date) -> Bool {
        guard let date else { return false }
        return date.timeIntervalSince(now) > clockTolerance
    }
}

public enum ArchiveTrustError: Error, Sendable, CustomStringConvertible, Equatable {
    case unencrypted(archive: String)

    public var description: String {
        switch self {
        case .unencrypted(let archive):
            "The archive \(archive) is not encrypted, but an encryption key is configured: this repository's backups are encrypted, so an unencrypted one may have been put there by someone without the key (its schema would run as the restoring role). Nothing was read or changed. If you made it yourself with --no-encrypt and trust it, pass --allow-unencrypted."
        }
    }
}
