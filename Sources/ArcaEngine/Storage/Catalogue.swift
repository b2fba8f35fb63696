import ArcaFormat
import Foundation

/// One line of `arca list`.
public struct BackupListing: Codable, Sendable {
    public var id: String
    public var timestamp: String?
    public var bytes: UInt64
    public var tables: Int?
    public var rows: UInt64?
    public var rawBytes: UInt64?
    /// `verified`, `failed` (the last verification found damage),
    /// `unverified`, or `unreadable` (the archive's index cannot be read).
    public var integrity: String
    /// What started it (from the manifest): `manual`, `scheduled`, `missed`, `api`.
    public var trigger: String?
    /// Whether the archive is encrypted (from its header, readable without the key).
    public var encrypted: Bool?
    public var path: String
    public var error: String?
}

extension Repository {
    /// Every archive in `local/`, newest first, described from its trailer
    /// and manifest only (no data is read). Without `key`, an encrypted
    /// archive is listed from its header alone.
    public func listings(key: ArchiveKey? = nil) throws -> [BackupListing] {
        try backupIDs().map { id in
            let path = archivePath(id)
            var listing = BackupListing(id: id.rawValue, bytes: FileSystem.size(path) ?? 0, integrity: "unverified", path: path)
            if let record = verificationRecord(id) { listing.integrity = record.intact ? "verified" : "failed" }
            do {
                let source = try FileSource(path: path)
                let outline = try ArchiveOutline(source: source)
                listing.encrypted = outline.header.isEncrypted
                if outline.header.isEncrypted && key == nil { return listing }
                let manifest = try ArchiveReader(source: source, key: key).manifest
                listing.timestamp = manifest.startedAt
                listing.tables = manifest.tables.count
                listing.rows = manifest.totals.rows
                listing.rawBytes = manifest.totals.rawBytes
                listing.trigger = manifest.trigger
            } catch {
                listing.integrity = "unreadable"
                listing.error = "\(error)"
            }
            return listing
        }
    }
}
