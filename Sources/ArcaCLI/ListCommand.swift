import ArcaEngine
import ArgumentParser
import Foundation

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the backups in the repository, newest first.")

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var key: KeyOption
    @OptionGroup var output: JSONOption

    struct Listing: Encodable {
        var repository: String
        var backups: [BackupListing]
    }

    func run() throws {
        let listings: [BackupListing]
        let key = try self.key.key()
        let cloud = try configuredCloud()
        do {
            // Newest first, the local and the cloud copy of a backup side by side.
            listings = (try repository.repository.listings(key: key) + (try cloud?.listings(key: key, repository: repository.repository) ?? []))
                .sorted { ($0.id, $0.location) > ($1.id, $1.location) }
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
        let header = ["id", "where", "time", "size", "tables", "rows", "integrity", "encrypted"]
        printTable([header] + listings.map { listing in
            [
                listing.id, listing.location, listing.timestamp ?? "-", Format.bytes(listing.bytes), listing.tables.map(String.init) ?? "-",
                listing.rows.map(Format.count) ?? "-", listing.integrity, listing.encrypted.map { $0 ? "yes" : "no" } ?? "-",
            ]
        })
        for listing in listings {
            for warning in listing.warnings ?? [] { print("Note: \(listing.id) (\(listing.location)) is \(warning).") }
        }
        if listings.contains(where: { $0.encrypted == true && $0.tables == nil }) {
            print("Encrypted backups are listed from their headers; configure the key to see their contents.")
        }
    }
}
