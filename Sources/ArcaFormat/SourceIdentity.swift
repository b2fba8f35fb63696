/// Which database a backup is of: the cluster's system identifier (from
/// `pg_control_system()`), the database's name and its oid. Two services
/// sharing a bucket tell their backups apart by it (FORMAT.md, `source`).
public struct SourceIdentity: Codable, Sendable, Hashable, CustomStringConvertible {
    /// Decimal, as PostgreSQL prints it; nil when it could not be read.
    public var systemIdentifier: String?
    public var database: String
    public var databaseOid: UInt32?

    public init(systemIdentifier: String?, database: String, databaseOid: UInt32?) {
        self.systemIdentifier = systemIdentifier
        self.database = database
        self.databaseOid = databaseOid
    }

    /// Whether `other` may be the same database: the same name, and the
    /// same value of every field both record. An archive written before
    /// the oid was recorded is matched on its name and system identifier.
    public func matches(_ other: SourceIdentity) -> Bool {
        func agree<Value: Equatable>(_ a: Value?, _ b: Value?) -> Bool {
            guard let a, let b else { return true }
            return a == b
        }
        return database == other.database && agree(systemIdentifier, other.systemIdentifier) && agree(databaseOid, other.databaseOid)
    }

    /// `database "medical" (oid 16384) of cluster 7713935528198386659`.
    public var description: String {
        var text = "database \"\(database.prefix(63))\""
        if let databaseOid { text += " (oid \(databaseOid))" }
        if let systemIdentifier { text += " of cluster \(systemIdentifier)" }
        return text
    }
}

extension Manifest.Source {
    public var identity: SourceIdentity {
        SourceIdentity(systemIdentifier: systemIdentifier, database: database, databaseOid: databaseOid)
    }
}
