import ArcaEngine
import ArcaFormat

extension Operations {
    /// Removes a backup from every store that holds it (the local archive
    /// with its sidecars, the cloud copy), under the repository lock.
    /// Returns the bytes freed. Refused, before anything is removed, for a
    /// backup an incremental backup of the same store needs (`BackupDependencies`),
    /// and for a backup of another database unless `allowOtherSource`.
    public func delete(_ id: BackupID, allowOtherSource: Bool = false) throws -> UInt64 {
        try trail("delete").run(target: id.rawValue, summary: { (freed: UInt64) in AuditSummary(details: ["freedBytes": String(freed)]) }) {
            let lock = try repository.lockForWriting("delete")
            defer { lock.release() }
            let holding = try configuration.stores.filter { try $0.stat(id) != nil }
            guard !holding.isEmpty else {
                throw RepositoryError.backupNotFound(id.rawValue, repository: configuration.stores.map(\.place).joined(separator: " or "))
            }
            for store in holding {
                try checkSource(of: try locate(id.rawValue, fromCloud: store.location == .cloud), allowed: allowOtherSource, action: "delete")
            }
            for store in holding {
                let listings = try store.listings(key: configuration.encryptionKey, records: repository)
                let dependants = BackupDependencies(listings).dependants(of: id.rawValue)
                if !dependants.referring.isEmpty {
                    throw DependencyError.needed(backup: id.rawValue, by: dependants.referring, place: store.place)
                }
                if !dependants.unknown.isEmpty {
                    throw DependencyError.mightBeNeeded(backup: id.rawValue, by: dependants.unknown, place: store.place)
                }
            }
            return try holding.map { try $0.remove(id) }.checkedSum ?? .max
        }
    }
}
