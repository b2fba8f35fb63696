import ArcaFormat
import Foundation

/// Which backups of a store other backups of it need: an incremental
/// backup needs every backup whose archive holds one of its tables
/// (`BackupListing.needs`). Cleanup keeps them, and `delete` refuses them.
///
/// A backup whose manifest cannot be read here (encrypted and no key, or
/// not fetched: `needsKnown`) might be incremental on any older backup: in
/// doubt, every older backup is taken as needed by it. A damaged archive
/// cannot be restored, so it needs nothing kept.
public struct BackupDependencies: Sendable {
    let listings: [BackupListing]

    public init(_ listings: [BackupListing]) { self.listings = listings }

    /// The backups that need `id`: those that refer to it, and those that
    /// might (newer, with a manifest that cannot be read).
    public func dependants(of id: String) -> (referring: [String], unknown: [String]) {
        var referring: [String] = [], unknown: [String] = []
        for listing in listings where listing.id != id {
            if !listing.needsKnown {
                if Self.isOlder(id, than: listing.id) { unknown.append(listing.id) }
            } else if listing.needs?.contains(id) == true {
                referring.append(listing.id)
            }
        }
        return (referring, unknown)
    }

    /// `decisions` with every backup a kept backup needs kept as well, and
    /// why; so on until nothing more is needed.
    public func protecting(_ decisions: [RetentionPolicy.Decision]) -> [RetentionPolicy.Decision] {
        var decisions = decisions
        let byID = Dictionary(listings.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let position = Dictionary(decisions.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        var pending = decisions.filter(\.keep).map(\.id)
        func hold(_ id: String, _ reason: String) {
            guard let index = position[id] else { return }
            if !decisions[index].keep { pending.append(id) }
            decisions[index].keep = true
            decisions[index].reasons.append(reason)
        }
        while let id = pending.popLast() {
            guard let listing = byID[id] else { continue }
            if !listing.needsKnown {
                for decision in decisions where !decision.keep && Self.isOlder(decision.id, than: id) {
                    hold(decision.id, "may be the base of \(id), whose manifest cannot be read here")
                }
            } else {
                for needed in listing.needs ?? [] where position[needed].map({ !decisions[$0].keep }) ?? false {
                    hold(needed, "needed by incremental backup \(id)")
                }
            }
        }
        return decisions
    }

    /// Ids name the time a backup started, and an incremental backup's base
    /// existed when it started.
    static func isOlder(_ id: String, than other: String) -> Bool {
        guard let id = BackupID(id), let other = BackupID(other) else { return false }
        return id < other
    }
}

/// A backup other backups need cannot be removed.
public enum DependencyError: Error, Sendable, CustomStringConvertible, Equatable {
    case needed(backup: String, by: [String], place: String)
    /// Backups whose manifests cannot be read might need it.
    case mightBeNeeded(backup: String, by: [String], place: String)

    public var description: String {
        switch self {
        case .needed(let backup, let dependants, let place):
            "Backup \(backup) in \(place) holds tables of incremental backup(s) \(dependants.joined(separator: ", ")), which cannot be restored without it. Nothing was removed. Delete those first (newest first), or keep \(backup)."
        case .mightBeNeeded(let backup, let dependants, let place):
            "Backup \(backup) in \(place) may hold tables of \(dependants.joined(separator: ", ")), whose manifests cannot be read here (configure the key), so it cannot be told whether they need it. Nothing was removed."
        }
    }
}
