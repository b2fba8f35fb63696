import ArcaFormat
import ArcaPostgres
import Foundation

public struct DrillResult: Codable, Sendable {
    public var backupId: String
    public var database: String
    public var passed: Bool
    public var tables: Int
    public var rows: UInt64
    public var problems: [String]
    public var durationSeconds: Double
}

/// A restore drill: the monthly restore test operators forget. Restores a
/// backup into a scratch database it creates (on the source's server, or
/// `ARCA_DRILL_URL`'s), checks every table's row count against the manifest
/// (the restore itself checks every chunk end to end), and
/// drops the scratch database whatever happened.
public struct Drill: Sendable {
    public let configuration: ServiceConfiguration
    public var reference: String?
    /// Drill an unencrypted archive although a key is configured (see `ArchiveTrust`).
    public var allowUnencrypted = false

    public init(configuration: ServiceConfiguration, reference: String? = nil) {
        self.configuration = configuration
        self.reference = reference
    }

    public func run() throws -> DrillResult {
        let clock = ContinuousClock.now
        let repository = configuration.repository
        let path: String
        if let reference {
            path = try repository.locate(reference)
        } else {
            // The newest by its manifest's time; one dated in the future is never drilled.
            guard let newest = try repository.listings(key: configuration.encryptionKey).newest() else {
                throw OperationError.invalidConfiguration("There is no readable backup in \(repository.root) to drill (backups dated in the future are left out). Run `arca backup` first.")
            }
            path = newest.path
        }
        guard let server = configuration.drillTarget ?? configuration.database else {
            throw OperationError.invalidConfiguration("A drill needs a server: set DATABASE_URL (the drill uses a scratch database there) or ARCA_DRILL_URL.")
        }
        let scratch = "arca_drill_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let target = server.replacing(database: scratch)
        var options = RestoreOptions(archivePath: path, target: target)
        options.confirmed = true
        options.create = true
        options.key = configuration.encryptionKey
        options.allowUnencrypted = allowUnencrypted
        defer {
            if let maintenance = try? PostgresConnection(server.replacing(database: "postgres"), applicationName: "arca drill") {
                _ = try? maintenance.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(scratch)) WITH (FORCE)")
            }
        }
        let restored = try RestoreRunner(options: options).run()
        let manifest = try ArchiveReader(source: try FileSource(path: path), key: configuration.encryptionKey).manifest
        var problems: [String] = []
        let connection = try PostgresConnection(target, applicationName: "arca drill")
        for table in manifest.tables {
            let count = try connection.execute(
                "SELECT count(*) FROM ONLY \(SQLIdentifier.qualified(table.schema, table.name))", during: "counting \(table.qualifiedName)"
            ).singleValue.flatMap { UInt64($0) }
            if count != table.rows {
                problems.append("table \(table.qualifiedName): \(count.map(String.init) ?? "no") rows restored, the manifest records \(table.rows)")
            }
        }
        connection.close()
        let duration = ContinuousClock.now - clock
        return DrillResult(
            backupId: manifest.backupId, database: scratch, passed: problems.isEmpty, tables: manifest.tables.count,
            rows: restored.rows, problems: problems,
            durationSeconds: duration.seconds)
    }
}
