import ArcaEngine
import ArcaFormat
import Foundation

extension Operations {
    /// The configured database's backups in the repository and the bucket
    /// (every database's with `allSources`), newest first, the local and
    /// the cloud copy of a backup side by side.
    public func list(now: Date = Date(), allSources: Bool = false) throws -> [BackupListing] {
        try trail("list").run(changes: false, summary: { (listings: [BackupListing]) in AuditSummary(details: ["backups": String(listings.count)]) }) {
            try listings(now: now, allSources: allSources)
        }
    }

    /// The newest backup in any store, by its manifest's time; one dated in
    /// the future is never taken (see `ArchiveTrust`).
    public func newestBackup(now: Date = Date()) throws -> BackupListing? {
        try listings(now: now).newest(now: now)
    }

    /// The backups of the configured source (`sourceScope`) in every store.
    func listings(now: Date = Date(), allSources: Bool = false) throws -> [BackupListing] {
        let every = try configuration.stores.flatMap { try $0.listings(key: configuration.encryptionKey, records: repository, now: now) }
            .sorted { ($0.id, $0.location.rawValue) > ($1.id, $1.location.rawValue) }
        let scope = sourceScope(allSources: allSources, now: now, localListings: every.filter { $0.location == .local })
        return every.filter(scope.includes)
    }

    /// One archive's manifest, with what can be said of it without reading its data.
    public struct Inspection: Sendable {
        public var manifest: Manifest
        public var archive: String
        public var bytes: UInt64
        public var encrypted: Bool
        public var integrity: Integrity
    }

    /// Reads an archive's manifest (a few small reads, never its data).
    public func inspect(_ backup: String, fromCloud: Bool = false) throws -> Inspection {
        let archive = try locate(backup, fromCloud: fromCloud)
        let source = try archive.open(sequential: false)
        let reader = try ArchiveReader(source: source, key: configuration.encryptionKey)
        let integrity = BackupID(reader.manifest.backupId).flatMap(repository.verificationRecord)?.integrity ?? .unverified
        return Inspection(
            // Password hashes are restored, never shown.
            manifest: reader.manifest.withoutPasswords, archive: archive.description, bytes: source.size, encrypted: reader.header.isEncrypted,
            integrity: integrity)
    }
}
