import ArcaFormat
import ArcaPostgres
import Foundation

extension SourceIdentity {
    /// The identity of the database `connection` is connected to.
    /// `pg_control_system()` is executable by every role by default; where
    /// it was revoked the identifier is left out (and matching uses the
    /// name and oid alone).
    public static func read(_ connection: PostgresConnection) throws -> SourceIdentity {
        // Outside any transaction: a refusal must not abort one.
        let system = try? connection.execute("SELECT system_identifier::text FROM pg_catalog.pg_control_system()").singleValue
        let oid = try connection.execute(
            "SELECT oid::text FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()",
            during: "reading the database's oid"
        ).singleValue.flatMap { UInt32($0) }
        return SourceIdentity(systemIdentifier: system, database: connection.database, databaseOid: oid)
    }
}

/// Whose backups an operation works on: one source's (the configured
/// database's), or every source's (`--all-sources`, or when no source is
/// known at all). Services sharing a bucket, or a repository, each see and
/// clean up their own backups only.
public struct SourceScope: Sendable, Equatable {
    /// nil: every source.
    public var identity: SourceIdentity?

    public init(_ identity: SourceIdentity?) { self.identity = identity }

    public static let everySource = SourceScope(nil)

    /// Whether the listed backup is in scope. One whose manifest cannot be
    /// read (encrypted without the key, damaged) counts as the
    /// repository's own where the repository holds it, and as someone
    /// else's in the bucket: the bucket may be shared, the repository is
    /// this service's.
    public func includes(_ listing: BackupListing) -> Bool {
        guard let identity else { return true }
        guard let source = listing.source else { return listing.location == .local }
        return identity.matches(source)
    }
}

/// A backup of another database than the configured one, asked for by id
/// (restore, delete) without `--allow-other-source`.
public struct OtherSourceError: Error, CustomStringConvertible, Sendable {
    public var backup: String
    public var source: SourceIdentity
    public var configured: SourceIdentity
    public var action: String

    public init(backup: String, source: SourceIdentity, configured: SourceIdentity, action: String) {
        self.backup = backup
        self.source = source
        self.configured = configured
        self.action = action
    }

    public var description: String {
        "Backup \(backup) is a backup of \(source), not of the configured \(configured): another service sharing the bucket or repository made it. Nothing was changed. To \(action) it anyway, pass --allow-other-source (\"allowOtherSource\": true in the API)."
    }
}
