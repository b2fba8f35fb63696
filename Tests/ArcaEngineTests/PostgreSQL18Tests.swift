import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// Backups of PostgreSQL 15 (the upgrade path) and 18 databases restored
/// into PostgreSQL 18, serially and with `--jobs 2`, equal by `arca
/// compare` and compare.sh. Arca finds the pg_dump and pg_restore for each
/// by itself: scripts/test.sh only appends the 18 programs to PATH.
@Suite(.enabled(if: TestCluster.postgres18 != nil, Comment(rawValue: TestCluster.postgres18Absent)))
struct PostgreSQL18Tests {
    static let sourceVersions = [15, 18]

    static func server(_ major: Int) throws -> TestCluster {
        major == 18 ? try #require(TestCluster.postgres18) : .primary
    }

    @Test(arguments: sourceVersions)
    func typeFamilies(fromPostgreSQL major: Int) throws {
        let source = try Steps.typeFamilies("pg18_types_\(major)", on: try Self.server(major))
        defer { source.drop() }
        let backup = try roundTrip(source, fromPostgreSQL: major, label: "pg18_types_\(major)")

        // Rows only, into a copy of the schema made by the source's own pg_dump.
        let dataTarget = try TestDatabase("pg18_types_\(major)_data", on: try Self.server(18))
        defer { dataTarget.drop() }
        try source.copySchema(to: dataTarget)
        try Steps.restoreData(backup.path, into: dataTarget)
        try Steps.expectEqual(source, dataTarget)
    }

    @Test(.enabled(if: TestPaths.shared != nil, Comment(rawValue: sharedAbsent)), arguments: sourceVersions, ["pagila", "chinook", "northwind"])
    func sampleDatabase(fromPostgreSQL major: Int, _ name: String) throws {
        let source = try TestDatabase("pg18_\(name)_\(major)", on: try Self.server(major))
        defer { source.drop() }
        try Steps.loadSample(name, into: source)
        try roundTrip(source, fromPostgreSQL: major, label: "pg18_\(name)_\(major)")
    }

    /// Backs `source` up and restores it into new PostgreSQL 18 databases:
    /// serially into an empty one, and with `--create --jobs 2`.
    @discardableResult
    private func roundTrip(_ source: TestDatabase, fromPostgreSQL major: Int, label: String) throws -> BackupResult {
        let server18 = try Self.server(18)
        let backup = try Steps.backup(source, into: Steps.repository(label))
        // The lowest pg_dump that can dump the server: 15's for 15, although 18's is on PATH too.
        let manifest = try ArchiveReader(source: try FileSource(path: backup.path)).manifest
        #expect(manifest.schema?.pgDumpVersion.hasPrefix("\(major).") == true, "\(manifest.schema?.pgDumpVersion ?? "no schema")")
        #expect(manifest.source.serverVersionNumber / 10000 == major)

        let serial = try TestDatabase("\(label)_serial", on: server18)
        defer { serial.drop() }
        let restored = try Steps.restore(backup.path, into: serial)
        #expect(restored.jobs == 1)
        try Steps.expectEqual(source, serial)

        let parallel = try TestDatabase("\(label)_jobs", on: server18)
        parallel.drop()
        defer { parallel.drop() }
        let result = try Steps.restore(backup.path, into: parallel) {
            $0.create = true
            $0.jobs = 2
        }
        #expect(result.jobs == 2)
        try Steps.expectEqual(source, parallel)
        return backup
    }
}
