import ArcaEngine
import ArgumentParser
import Foundation

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the backups in the repository, newest first.")

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var output: JSONOption

    struct Listing: Encodable {
        var repository: String
        var backups: [BackupListing]
    }

    func run() throws {
        let listings: [BackupListing]
        do {
            listings = try repository.repository.listings()
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
        let header = ["id", "time", "size", "tables", "rows", "integrity"]
        printTable([header] + listings.map { listing in
            [
                listing.id, listing.timestamp ?? "-", Format.bytes(listing.bytes), listing.tables.map(String.init) ?? "-",
                listing.rows.map(Format.count) ?? "-", listing.integrity,
            ]
        })
    }
}
