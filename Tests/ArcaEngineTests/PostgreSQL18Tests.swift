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
///
/// Each round trip runs on a thread of its own (`onThread`), one at a
/// time: blocking Swift's cooperative pool (two threads on two cores) for
/// minutes would starve the in-process HTTP servers of other suites' tests.
/// So the work returns what it found and the test's task checks it.
@Suite(.serialized, .enabled(if: TestCluster.postgres18 != nil, Comment(rawValue: TestCluster.postgres18Absent)))
struct PostgreSQL18Tests {
    static let sourceVersions = [15, 18]

    /// What a round trip found.
    struct Outcome: Sendable {
        var pgDumpVersion: String?
        var sourceMajor = 0
        /// The tables the backup copied in binary, sorted.
        var binaryTables: [String] = []
        var jobs: [Int] = []
        /// Per restore ("serial", "--jobs 2", "data-only"): how the result differs from the source.
        var differences: [(restore: String, found: [String])] = []
    }

    static func server(_ major: Int) throws -> TestCluster {
        major == 18 ? try #require(TestCluster.postgres18) : .primary
    }

    @Test(arguments: sourceVersions)
    func typeFamilies(fromPostgreSQL major: Int) async throws {
        let (source, target) = (try Self.server(major), try Self.server(18))
        let outcome = try await onThread {
            let database = try Steps.typeFamilies("pg18_types_\(major)", on: source)
            defer { database.drop() }
            var outcome = try Self.roundTrip(database, into: target, label: "pg18_types_\(major)")
            // Rows only, into a copy of the schema made by the source's own pg_dump.
            let dataTarget = try TestDatabase("pg18_types_\(major)_data", on: target)
            defer { dataTarget.drop() }
            try database.copySchema(to: dataTarget)
            let backup = try Steps.backup(database, into: Steps.repository("pg18_types_\(major)_data"))
            try Steps.restoreData(backup.path, into: dataTarget)
            outcome.differences.append(("data-only", try Steps.differences(database, dataTarget)))
            return outcome
        }
        Self.check(outcome, fromPostgreSQL: major, restores: ["serial", "--jobs 2", "data-only"])
    }

    @Test(.enabled(if: TestPaths.shared != nil, Comment(rawValue: sharedAbsent)), arguments: sourceVersions, ["pagila", "chinook", "northwind"])
    func sampleDatabase(fromPostgreSQL major: Int, _ name: String) async throws {
        let (source, target) = (try Self.server(major), try Self.server(18))
        let outcome = try await onThread {
            let database = try TestDatabase("pg18_\(name)_\(major)", on: source)
            defer { database.drop() }
            try Steps.loadSample(name, into: database)
            return try Self.roundTrip(database, into: target, label: "pg18_\(name)_\(major)")
        }
        Self.check(outcome, fromPostgreSQL: major, restores: ["serial", "--jobs 2"])
    }

    /// Enums, composites, domains, arrays of user-defined types and extension
    /// types beside binary-copied tables (CopyFormatTests): binary tables
    /// written by 15 load into 18.
    @Test(arguments: sourceVersions)
    func userTypes(fromPostgreSQL major: Int) async throws {
        let (source, target) = (try Self.server(major), try Self.server(18))
        let outcome = try await onThread {
            let database = try CopyFormatTests.userTypes("pg18_kinds_\(major)", on: source)
            defer { database.drop() }
            return try Self.roundTrip(database, into: target, label: "pg18_kinds_\(major)")
        }
        Self.check(outcome, fromPostgreSQL: major, restores: ["serial", "--jobs 2"])
        #expect(outcome.binaryTables == ["kinds.builtin", "kinds.domains"])
    }

    /// Backs `source` up and restores it into new databases on `target`:
    /// serially into an empty one, and with `--create --jobs 2`.
    static func roundTrip(_ source: TestDatabase, into target: TestCluster, label: String) throws -> Outcome {
        var outcome = Outcome()
        let backup = try Steps.backup(source, into: Steps.repository(label))
        let manifest = try ArchiveReader(source: try FileSource(path: backup.path)).manifest
        outcome.pgDumpVersion = manifest.schema?.pgDumpVersion
        outcome.sourceMajor = manifest.source.serverVersionNumber / 10000
        outcome.binaryTables = manifest.tables.filter { $0.format == .binary }.map(\.qualifiedName).sorted()

        let serial = try TestDatabase("\(label)_serial", on: target)
        defer { serial.drop() }
        outcome.jobs.append(try Steps.restore(backup.path, into: serial).jobs)
        outcome.differences.append(("serial", try Steps.differences(source, serial)))

        let parallel = try TestDatabase("\(label)_jobs", on: target, creating: false)
        defer { parallel.drop() }
        let result = try Steps.restore(backup.path, into: parallel) {
            $0.create = true
            $0.jobs = 2
        }
        outcome.jobs.append(result.jobs)
        outcome.differences.append(("--jobs 2", try Steps.differences(source, parallel)))
        return outcome
    }

    static func check(_ outcome: Outcome, fromPostgreSQL major: Int, restores: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        // The lowest pg_dump that can dump the server: 15's for 15, although 18's is on PATH too.
        #expect(outcome.pgDumpVersion?.hasPrefix("\(major).") == true, "pg_dump \(outcome.pgDumpVersion ?? "none")", sourceLocation: sourceLocation)
        #expect(outcome.sourceMajor == major, sourceLocation: sourceLocation)
        #expect(outcome.jobs == [1, 2], sourceLocation: sourceLocation)
        #expect(outcome.differences.map(\.restore) == restores, sourceLocation: sourceLocation)
        for (restore, found) in outcome.differences {
            #expect(found.isEmpty, "\(restore) restore differs:\n\(found.joined(separator: "\n"))", sourceLocation: sourceLocation)
        }
    }
}
