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
    /// `local` (the repository) or `cloud` (the bucket).
    public var location: String
    public var path: String
    public var error: String?
    /// What the operator should know about it: unencrypted in a repository
    /// with a key, or dated in the future (see `ArchiveTrust`).
    public var warnings: [String]?

    /// When the backup was taken: its manifest's time (authenticated when
    /// the archive is encrypted), else its id's.
    public var date: Date? {
        timestamp.flatMap(Manifest.date(fromTimestamp:)) ?? BackupID(id)?.date
    }

    /// Whether it may stand for "the newest backup" (drills, status, a
    /// missed-backup check): readable, and not dated in the future.
    public func isCandidateForNewest(now: Date) -> Bool {
        integrity != "unreadable" && !ArchiveTrust.isFutureDated(date, now: now)
    }
}

extension [BackupListing] {
    /// The newest backup by its manifest's time, leaving out what
    /// `isCandidateForNewest` refuses.
    public func newest(now: Date = Date()) -> BackupListing? {
        filter { $0.isCandidateForNewest(now: now) }.max { ($0.date ?? .distantPast, $0.id) < ($1.date ?? .distantPast, $1.id) }
    }
}

extension Repository {
    /// Every archive in `local/`, newest first, described from its trailer
    /// and manifest only (no data is read). Without `key`, an encrypted
    /// archive is listed from its header alone.
    public func listings(key: ArchiveKey? = nil, now: Date = Date()) throws -> [BackupListing] {
        try backupIDs().map { id in
            let path = archivePath(id)
            var listing = BackupListing(id: id.rawValue, bytes: FileSystem.size(path) ?? 0, integrity: "unverified", location: "local", path: path)
            if let record = verificationRecord(id) { listing.integrity = record.intact ? "verified" : "failed" }
            listing.describe(key: key, now: now) { try FileSource(path: path) }
            return listing
        }
    }
}

extension CloudStore {
    /// Every archive in the bucket, newest first, each described with a few
    /// small ranged GETs (header, trailer and manifest), never a whole archive.
    /// Integrity is the local twin's verification record, if any.
    public func listings(key: ArchiveKey? = nil, repository: Repository, now: Date = Date()) throws -> [BackupListing] {
        try archives().map { archive in
            var listing = BackupListing(
                id: archive.id.rawValue, bytes: archive.size, integrity: "unverified", location: "cloud", path: describe(archive.id))
            if let record = repository.verificationRecord(archive.id) { listing.integrity = record.intact ? "verified" : "failed" }
            listing.describe(key: key, now: now) { try source(archive.id) }
            return listing
        }
    }
}

extension BackupListing {
    mutating func describe(key: ArchiveKey?, now: Date, source open: () throws -> any ByteSource) {
        defer { warn(key: key, now: now) }
        do {
            let source = try open()
            let outline = try ArchiveOutline(source: source)
            encrypted = outline.header.isEncrypted
            if outline.header.isEncrypted && key == nil { return }
            let manifest = try ArchiveReader(source: source, outline: outline, key: key).manifest
            timestamp = manifest.startedAt
            tables = manifest.tables.count
            rows = manifest.totals.rows
            rawBytes = manifest.totals.rawBytes
            trigger = manifest.trigger
        } catch {
            integrity = "unreadable"
            self.error = "\(error)"
        }
    }

    private mutating func warn(key: ArchiveKey?, now: Date) {
        var found: [String] = []
        if key != nil, encrypted == false {
            found.append("unencrypted in a repository with a key: restore, verify and drills refuse it without --allow-unencrypted")
        }
        if ArchiveTrust.isFutureDated(date, now: now) {
            found.append("dated in the future (\(timestamp ?? id)): never taken as the newest backup, drilled or counted by retention; remove it if it is not yours")
        }
        warnings = found.isEmpty ? nil : found
    }
}
