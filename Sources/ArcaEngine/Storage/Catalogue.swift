import ArcaFormat
import Foundation

/// What the last verification of a backup found.
public enum Integrity: String, Codable, Sendable {
    case verified
    /// The last verification found damage.
    case failed
    case unverified
    /// The archive's index cannot be read.
    case unreadable
}

/// Where a copy of a backup is kept.
public enum StorageLocation: String, Codable, Sendable {
    /// The repository folder.
    case local
    /// The bucket.
    case cloud
}

/// One line of `arca list`.
public struct BackupListing: Codable, Sendable {
    public var id: String
    public var timestamp: String?
    public var bytes: UInt64
    public var tables: Int?
    public var rows: UInt64?
    public var rawBytes: UInt64?
    public var integrity: Integrity
    /// What started it (from the manifest).
    public var trigger: BackupTrigger?
    /// An incremental backup (from the manifest): the backup it is based
    /// on, and every backup whose archive holds some of its tables, which
    /// restoring it needs. Both absent for a full backup and when the
    /// manifest cannot be read (`tables` nil).
    public var base: String?
    public var needs: [String]?
    /// Whether `needs` is known: the manifest was read, or the archive is
    /// damaged (then it cannot be restored, and needs nothing kept). False
    /// when it is encrypted and there is no key, or could not be fetched.
    public var needsKnown = true
    /// From the manifest's start to its completion.
    public var durationSeconds: Double?
    /// The database it is a backup of (from the manifest); nil when the
    /// manifest cannot be read.
    public var source: SourceIdentity?

    enum CodingKeys: String, CodingKey {
        case id, timestamp, bytes, tables, rows, rawBytes, integrity, trigger, encrypted, location, path, error, warnings, base, needs
        case durationSeconds, source
    }
    /// Whether the archive is encrypted (from its header, readable without the key).
    public var encrypted: Bool?
    public var location: StorageLocation
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
        integrity != .unreadable && !ArchiveTrust.isFutureDated(date, now: now)
    }
}

extension [BackupListing] {
    /// The newest backup by its manifest's time, leaving out what
    /// `isCandidateForNewest` refuses.
    public func newest(now: Date = Date()) -> BackupListing? {
        filter { $0.isCandidateForNewest(now: now) }.max { ($0.date ?? .distantPast, $0.id) < ($1.date ?? .distantPast, $1.id) }
    }
}

extension ArchiveStore {
    /// Every archive of the store, newest first, described from its header,
    /// trailer and manifest only: a few small reads (ranged GETs in a
    /// bucket), never its data. Without `key`, an encrypted archive is
    /// listed from its header alone. Integrity comes from the verification
    /// records `records` keeps (the repository's, for its cloud copies too).
    public func listings(key: ArchiveKey?, records: Repository, now: Date = Date()) throws -> [BackupListing] {
        try archives().map { archive in
            var listing = BackupListing(
                id: archive.id.rawValue, bytes: archive.bytes, integrity: .unverified, location: location, path: describe(archive.id))
            if let record = records.verificationRecord(archive.id) { listing.integrity = record.integrity }
            listing.describe(key: key, now: now) { try source(archive.id, sequential: false) }
            return listing
        }
    }
}

extension Repository {
    /// The repository's own archives, listed (see `ArchiveStore.listings`).
    public func listings(key: ArchiveKey? = nil, now: Date = Date()) throws -> [BackupListing] {
        try listings(key: key, records: self, now: now)
    }
}

extension BackupListing {
    mutating func describe(key: ArchiveKey?, now: Date, source open: () throws -> any ByteSource) {
        defer { warn(key: key, now: now) }
        do {
            let source = try open()
            let outline = try ArchiveOutline(source: source)
            encrypted = outline.header.isEncrypted
            if outline.header.isEncrypted && key == nil {
                needsKnown = false
                return
            }
            let manifest = try ArchiveReader(source: source, outline: outline, key: key).manifest
            timestamp = manifest.startedAt
            self.source = manifest.source.identity
            if let start = Manifest.date(fromTimestamp: manifest.startedAt), let end = Manifest.date(fromTimestamp: manifest.completedAt) {
                durationSeconds = max(0, end.timeIntervalSince(start))
            }
            tables = manifest.tables.count
            // The database's rows, wherever they are stored; rawBytes is this archive's.
            rows = manifest.tableRows
            base = manifest.base
            let needed = manifest.referencedBackups
            needs = needed.isEmpty ? nil : needed
            rawBytes = manifest.totals.rawBytes
            trigger = manifest.trigger.flatMap(BackupTrigger.init(rawValue:))
        } catch {
            integrity = .unreadable
            self.error = "\(error)"
            // Damage is the archive's own; anything else (the bucket, the
            // file system, a key) may have hidden an incremental backup's needs.
            switch error as? ArchiveError {
            case nil, .keyRequired?, .wrongKey?, .keyDerivationFailed?: needsKnown = false
            default: break
            }
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
