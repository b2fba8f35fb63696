@testable import ArcaEngine
import ArcaTesting
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// Which pg_dump and pg_restore Arca runs: the lowest major version that is
/// new enough, among Debian's folders and PATH, unless ARCA_PG_BINDIR names one.
@Suite struct PostgresToolsTests {
    /// A folder holding fake `tools` that print `version` the way pg_dump does.
    static func fakeTools(_ version: String, tools: [String] = ["pg_dump", "pg_restore"]) throws -> String {
        let directory = TestPaths.temporaryDirectory("tools-\(version)")
        for tool in tools {
            try "#!/bin/sh\necho '\(tool) (PostgreSQL) \(version)'\n".write(toFile: directory + "/" + tool, atomically: true, encoding: .utf8)
            try Tool.run("chmod", ["+x", directory + "/" + tool])
        }
        return directory
    }

    static var debian15: String? {
        FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/15/bin/pg_dump") ? "/usr/lib/postgresql/15/bin" : nil
    }

    @Test func theLowestSuitableMajorWinsThenTheNewestMinor() throws {
        let seventeen = try Self.fakeTools("17.2")
        let sixteenOld = try Self.fakeTools("16.9")
        let sixteenNew = try Self.fakeTools("16.11")
        let environment = ["PATH": [seventeen, sixteenOld, "relative/bin", sixteenNew].joined(separator: ":")]

        let for16 = try PostgresTools.locate(serverMajor: 16, directory: nil, environment: environment)
        #expect(for16.directory == sixteenNew)
        #expect(for16.version == "16.11")
        let for17 = try PostgresTools.locate(serverMajor: 17, directory: nil, environment: environment)
        #expect(for17.directory == seventeen)
        if let debian15 = Self.debian15 {
            // Debian's 15 is lower than anything on this PATH.
            #expect(try PostgresTools.locate(serverMajor: 15, directory: nil, environment: environment).directory == debian15)
        }

        // pg_restore: at least the pg_dump that wrote the schema dump.
        let reader = try PostgresTools.locate(
            "pg_restore", for: .reading(dumpVersion: "17.2", serverMajor: 15), directory: nil, environment: environment)
        #expect(reader.directory == seventeen)
        let older = try PostgresTools.locate(
            "pg_restore", for: .reading(dumpVersion: "16.3", serverMajor: 16), directory: nil, environment: environment)
        #expect(older.directory == sixteenNew)
    }

    @Test func noneNewEnoughListsWhatWasFound() throws {
        let sixteen = try Self.fakeTools("16.9")
        // A tool that prints without end is cut off, not read to the end.
        let noisy = TestPaths.temporaryDirectory("tools-noisy")
        try "#!/bin/sh\nexec yes 'pg_dump (PostgreSQL) 99.0'\n".write(toFile: noisy + "/pg_dump", atomically: true, encoding: .utf8)
        try Tool.run("chmod", ["+x", noisy + "/pg_dump"])
        do {
            _ = try PostgresTools.locate(serverMajor: 18, directory: nil, environment: ["PATH": sixteen + ":" + noisy])
            Issue.record("a pg_dump older than the server was accepted")
        } catch let error as SchemaError {
            let message = "\(error)"
            #expect(message.contains("at least version 18 to back up a PostgreSQL 18 server"), "\(message)")
            #expect(message.contains("16.9 in \(sixteen)"), "\(message)")
            #expect(message.contains("? in \(noisy)"), "\(message)")
            #expect(message.contains("postgresql-client-18"))
        }
        let reading = #"18.6"; rm -rf /"#
        do {
            _ = try PostgresTools.locate(
                "pg_restore", for: .reading(dumpVersion: reading, serverMajor: 15), directory: nil, environment: ["PATH": sixteen])
            Issue.record("a pg_restore older than the dump was accepted")
        } catch let error as SchemaError {
            // The version from the archive is shown only as a version.
            #expect("\(error)".contains("read a schema dump written by pg_dump 18.6,"), "\(error)")
            #expect(!"\(error)".contains("rm -rf"))
        }
    }

    @Test func anExplicitFolderIsUsedOrRefused() throws {
        let sixteen = try Self.fakeTools("16.9")
        let eighteen = try Self.fakeTools("18.1")
        let environment = ["PATH": eighteen]
        #expect(try PostgresTools.locate(serverMajor: 15, directory: sixteen, environment: environment).directory == sixteen)
        #expect(throws: SchemaError.self) { try PostgresTools.locate(serverMajor: 17, directory: sixteen, environment: environment) }
        #expect(throws: SchemaError.self) {
            try PostgresTools.locate(serverMajor: 15, directory: TestPaths.temporaryDirectory("tools-empty"), environment: environment)
        }
    }

    /// The real PostgreSQL 18 programs beside Debian's 15: each server gets its own major.
    @Test(.enabled(if: TestCluster.postgres18 != nil, Comment(rawValue: TestCluster.postgres18Absent)))
    func realProgramsOf15And18() throws {
        let bin18 = try #require(TestCluster.postgres18?.binDirectory)
        let debian15 = try #require(Self.debian15)
        let environment = ["PATH": "/usr/bin:/bin:" + bin18]
        let for15 = try PostgresTools.locate(serverMajor: 15, directory: nil, environment: environment)
        #expect(for15.directory == debian15)
        #expect(for15.version.hasPrefix("15."))
        let for18 = try PostgresTools.locate(serverMajor: 18, directory: nil, environment: environment)
        #expect(for18.directory == URL(fileURLWithPath: bin18).standardizedFileURL.path)
        #expect(for18.version.hasPrefix("18."))
        #expect(throws: SchemaError.self) { try PostgresTools.locate(serverMajor: 19, directory: nil, environment: environment) }
    }
}

/// A tool's pipes go to the tool alone: a process that another thread
/// starts meanwhile, with whatever it inherits (plain posix_spawn, which
/// closes nothing; `sleep` stands for a long pg_restore or a server), must
/// not keep them open, or the tool's output never ends.
@Suite struct ChildPipeTests {
    @Test func aProcessStartedMeanwhileDoesNotInheritThePipe() throws {
        let pipe = try ChildPipe()
        let inode = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(pipe.writing.fileDescriptor)")
        var pid: pid_t = 0
        let arguments: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("5"), nil]
        defer { arguments.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/sleep", nil, nil, arguments, environ) == 0)
        defer {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        let folder = "/proc/\(pid)/fd"
        let held = try FileManager.default.contentsOfDirectory(atPath: folder).compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "\(folder)/\($0)")
        }
        #expect(!held.contains(inode), "the sibling process holds the tool's pipe")
    }
}
