import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// Faults from outside: a full disk, missing privileges.
@Suite struct ReliabilityTests {
    static let isRoot = geteuid() == 0

    /// A 3 MiB tmpfs as the repository: the first backup fits, the second does not.
    @Test(.enabled(if: isRoot, "mounting a small tmpfs as the repository needs root"))
    func diskFullFailsCleanlyAndKeepsEarlierBackups() throws {
        let mountPoint = TestPaths.temporaryDirectory("diskfull")
        try Tool.run("mount", ["-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", mountPoint])
        defer { _ = try? Tool.run("umount", ["-l", mountPoint]) }
        let repository = Repository(root: mountPoint + "/repo")

        let source = try TestDatabase("diskfull_src")
        defer { source.drop() }
        try source.execute("CREATE TABLE small AS SELECT g AS id FROM generate_series(1, 1000) g")
        let first = try Steps.backup(source, into: repository)
        let firstMD5 = try Tool.run("md5sum", [first.path]).stdout

        // Incompressible rows: far more than 3 MiB once stored.
        try source.execute("CREATE TABLE big AS SELECT g AS id, decode(md5(g::text) || md5((g * 7)::text), 'hex') AS noise FROM generate_series(1, 200000) g")
        do {
            try Steps.backup(source, into: repository)
            Issue.record("a backup larger than the disk succeeded")
        } catch let error as RepositoryError {
            guard case .diskFull = error else { Issue.record("wrong error: \(error)"); return }
            #expect("\(error)".contains("No space left"))
            #expect("\(error)".contains("earlier backups are untouched"))
        }
        #expect(Steps.files(in: repository.temporaryDirectory).isEmpty)
        #expect(try repository.backupIDs().map(\.rawValue) == [first.backupId])
        #expect(try Tool.run("md5sum", [first.path]).stdout == firstMD5)
        #expect(try Verification(path: first.path, repository: repository).run().intact)
    }

    @Test func aTableTheRoleCannotReadFailsTheBackupByName() throws {
        let source = try TestDatabase("noselect_src")
        let role = "arca_reader_\(getpid())"
        defer {
            source.drop()
            try? TestServer.execute("DROP ROLE IF EXISTS \(role)")
        }
        try TestServer.execute("DROP ROLE IF EXISTS \(role); CREATE ROLE \(role) LOGIN")
        try source.execute("""
            CREATE TABLE readable (id int); CREATE TABLE "Secret Notes" (id int);
            GRANT SELECT ON readable TO \(role);
            """)
        var options = BackupOptions(source: try ConnectionString("dbname=\(source.name) user=\(role)"), repository: Steps.repository("noselect"))
        options.lockTimeoutMilliseconds = 2000
        do {
            _ = try BackupRunner(options: options).run()
            Issue.record("a backup without SELECT on a table succeeded")
        } catch let error as BackupError {
            #expect("\(error)".contains("public.Secret Notes"), "\(error)")
            #expect("\(error)".contains("permission denied"))
        }
        #expect(Steps.files(in: options.repository.localDirectory).isEmpty)
    }
}
