import ArcaEngine
import ArcaFormat
import ArcaOperations
import ArgumentParser
import Foundation

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the backups in the repository, newest first.")

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var key: KeyOption
    @OptionGroup var output: JSONOption
    @Flag(name: .long, help: "Also list the backups of other databases (services sharing the bucket or repository), with their source.")
    var allSources = false

    struct Listing: Encodable {
        var repository: String
        var backups: [BackupListing]
    }

    /// `medical@7713935528198386659/16384`: the name, cluster and oid.
    static func sourceColumn(_ source: SourceIdentity) -> String {
        "\(source.database)@\(source.systemIdentifier ?? "?")/\(source.databaseOid.map(String.init) ?? "?")"
    }

    func run() throws {
        let operations = try commandLineOperations(repository, settings: ["ARCA_KEY_FILE": key.keyFile])
        let listings: [BackupListing]
        do {
            listings = try operations.list(allSources: allSources)
        } catch {
            throw Output.fail(error)
        }
        if output.json {
            Output.json(Listing(repository: repository.repository.root, backups: listings))
            return
        }
        guard !listings.isEmpty else {
            print("No backups in \(repository.repository.root). `arca backup` makes one.")
            return
        }
        let header = ["id", "where", "kind", "time", "size", "tables", "rows", "integrity", "encrypted"] + (allSources ? ["source"] : [])
        printTable([header] + listings.map { listing in
            [
                // "incr" backups need the backups `list --json` names in `needs`.
                listing.id, listing.location.rawValue, listing.tables == nil ? "-" : listing.base == nil ? "full" : "incr", listing.timestamp ?? "-", Format.bytes(listing.bytes), listing.tables.map(String.init) ?? "-",
                listing.rows.map(Format.count) ?? "-", listing.integrity.rawValue, listing.encrypted.map { $0 ? "yes" : "no" } ?? "-",
            ] + (allSources ? [listing.source.map(Self.sourceColumn) ?? "unknown"] : [])
        })
        for listing in listings {
            for warning in listing.warnings ?? [] { print("Note: \(listing.id) (\(listing.location.rawValue)) is \(warning).") }
        }
        if listings.contains(where: { $0.encrypted == true && $0.tables == nil }) {
            print("Encrypted backups are listed from their headers; configure the key to see their contents.")
        }
    }
}
