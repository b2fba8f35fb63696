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
/// backup into a scratch database it creates on `server`, checks every
/// table's row count against the manifest (the restore itself checks every
/// chunk end to end), and drops the scratch database whatever happened.
public struct Drill: Sendable {
    public var archive: ArchiveReference
    /// The server the scratch database is made on.
    public var server: ConnectionString
    public var key: ArchiveKey?
    /// Drill an unencrypted archive although a key is configured (see `ArchiveTrust`).
    public var allowUnencrypted = false
    public var postgresBinDirectory: String?
    /// Where an incremental backup's referenced archives are also looked for.
    public var cloud: CloudStore?

    public init(archive: ArchiveReference, server: ConnectionString) {
        self.archive = archive
        self.server = server
    }

    public func run() throws -> DrillResult {
        let clock = ContinuousClock.now
        let scratch = "arca_drill_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let target = server.replacing(database: scratch)
        var options = RestoreOptions(archive: archive, target: target)
        options.confirmed = true
        options.create = true
        options.key = key
        options.allowUnencrypted = allowUnencrypted
        options.postgresBinDirectory = postgresBinDirectory
        options.cloud = cloud
        defer {
            if let maintenance = try? PostgresConnection(server.replacing(database: "postgres"), applicationName: "arca drill") {
                _ = try? maintenance.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(scratch)) WITH (FORCE)")
            }
        }
        let restored = try RestoreRunner(options: options).run()
        let manifest = try ArchiveReader(source: try archive.open(sequential: false), key: key).manifest
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

/// A drill whose restored database did not match its manifest.
public struct DrillFailure: Error, CustomStringConvertible {
    public var result: DrillResult
    public init(result: DrillResult) { self.result = result }
    public var description: String {
        "The drill of \(result.backupId) failed: \(result.problems.joined(separator: "; "))"
    }
}
