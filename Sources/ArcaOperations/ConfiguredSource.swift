import ArcaEngine
import ArcaFormat
import ArcaPostgres
import Foundation

/// The configured database's identity, asked of its server at most once a
/// minute (every API listing would otherwise open a connection, and wait
/// for a server that does not answer). While the server cannot be
/// reached, the identity it last gave stands.
final class SourceIdentityCache: @unchecked Sendable {
    private let lock = NSLock()
    private var known: SourceIdentity?
    private var askedAt: Date?
    static let lifetime: TimeInterval = 60

    func identity(now: Date, read: () -> SourceIdentity?) -> SourceIdentity? {
        let (known, fresh) = lock.withLock { () -> (SourceIdentity?, Bool) in
            let fresh = askedAt.map { $0 <= now && now.timeIntervalSince($0) < Self.lifetime } ?? false
            if !fresh { askedAt = now }
            return (self.known, fresh)
        }
        if fresh { return known }
        guard let identity = read() else { return known }
        lock.withLock { self.known = identity }
        return identity
    }
}

extension Operations {
    /// The database this service backs up (`DATABASE_URL`), by identity:
    /// asked of its server; when the server cannot be reached, taken from
    /// the newest readable local backup of a database of that name. Nil
    /// without `DATABASE_URL`, or when neither tells.
    public func configuredSource(now: Date = Date(), localListings: [BackupListing]? = nil) -> SourceIdentity? {
        guard let database = configuration.database else { return nil }
        let live = configuration.sourceCache.identity(now: now) {
            guard let connection = try? PostgresConnection(database.setting("connect_timeout", to: "5"), applicationName: "arca")
            else { return nil }
            defer { connection.close() }
            return try? SourceIdentity.read(connection)
        }
        if let live { return live }
        let name = database.value("dbname")
        let local = localListings ?? ((try? repository.listings(key: configuration.encryptionKey, now: now)) ?? [])
        return local.filter { listing in listing.location == .local && listing.source.map { name == nil || $0.database == name } == true }
            .newest(now: now)?.source
    }

    /// Whose backups an operation works on: the configured source's, or
    /// every source's with `allSources` (or when none is configured).
    public func sourceScope(allSources: Bool = false, now: Date = Date(), localListings: [BackupListing]? = nil) -> SourceScope {
        allSources ? .everySource : SourceScope(configuredSource(now: now, localListings: localListings))
    }

    /// Refuses (`OtherSourceError`) a backup of another database than the
    /// configured one, unless `allowed`. Nothing to compare (no source
    /// configured, or an archive whose manifest cannot be read here) passes:
    /// the operation itself then says what is wrong.
    func checkSource(of archive: ArchiveReference, allowed: Bool, action: String) throws {
        guard !allowed, let configured = configuredSource(),
              let manifest = try? ArchiveReader(source: try archive.open(sequential: false), key: configuration.encryptionKey).manifest
        else { return }
        let source = manifest.source.identity
        guard configured.matches(source) else {
            throw OtherSourceError(backup: manifest.backupId, source: source, configured: configured, action: action)
        }
    }
}
