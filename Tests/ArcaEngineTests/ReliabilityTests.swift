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

/// The database connection dies in the middle of a restore.
@Suite struct RestoreConnectionLossTests {
    func terminateRestore(_ database: String) {
        try? TestServer.execute("""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'arca restore' AND datname = '\(database)'
            """)
    }

    @Test func aKilledRestoreLeavesTheTargetUnchanged() throws {
        let source = try Steps.typeFamilies("killrestore_src")
        let target = try TestDatabase("killrestore_dst")
        defer { source.drop(); target.drop() }
        try source.copySchema(to: target)
        try target.execute(#"INSERT INTO public."User" (id, "Mixed Case") VALUES (777, 'kept')"#)
        let before = try target.snapshotText()
        let backup = try Steps.backup(source, into: Steps.repository("killrestore"), chunkSize: 64 << 10)
        var options = RestoreOptions(archivePath: backup.path, target: target.connectionString)
        options.confirmed = true
        options.dataOnly = true
        var killed = false
        do {
            _ = try RestoreRunner(options: options).run { progress in
                guard !killed, progress.tablesDone >= 3 else { return }
                killed = true
                terminateRestore(target.name)
            }
            Issue.record("the restore survived a terminated connection")
        } catch let error as RestoreError {
            #expect(killed)
            #expect("\(error)".contains("lost") || "\(error)".contains("terminat"), "\(error)")
        }
        #expect(try target.snapshotText() == before)
    }

    @Test func aKilledParallelRestoreCreatesNothing() throws {
        let source = try Steps.typeFamilies("killprestore_src")
        defer { source.drop() }
        let backup = try Steps.backup(source, into: Steps.repository("killprestore"), chunkSize: 64 << 10)
        let target = try TestDatabase("killprestore_dst", creating: false)
        defer { target.drop() }
        var options = RestoreOptions(archivePath: backup.path, target: target.connectionString)
        options.confirmed = true
        options.create = true
        options.jobs = 2
        // Only this restore's staging database: other suites restore in parallel.
        let staging = "arca_restore_\(target.name.prefix(30))_"
        var killed = false
        #expect(throws: (any Error).self) {
            _ = try RestoreRunner(options: options).run { progress in
                guard !killed, progress.tablesDone >= 1 else { return }
                killed = true
                try? TestServer.execute("""
                    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = 'arca restore' AND starts_with(datname, '\(staging)')
                    """)
            }
        }
        let exists = try PostgresConnection(try TestServer.connectionString())
            .query("SELECT count(*) FROM pg_database WHERE datname = $1", [target.name]).singleValue
        #expect(exists == "0")
    }
}
