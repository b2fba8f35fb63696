import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// The failure paths are the product: every one ends with a clear error,
/// nothing half-written in the repository and the target unchanged.
@Suite struct FailureTests {
    /// Flips one bit of a file in place.
    func damage(_ path: String, at offset: UInt64) throws {
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: [byte ^ 0x10])
    }

    func copy(_ path: String, _ label: String) throws -> String {
        let destination = TestPaths.temporaryDirectory(label) + "/copy.arca"
        try FileManager.default.copyItem(atPath: path, toPath: destination)
        return destination
    }

    @Test func corruptChunkIsNamedByVerifyAndRefusedByRestore() throws {
        let source = try Steps.typeFamilies("corrupt_src")
        let target = try TestDatabase("corrupt_dst")
        defer { source.drop(); target.drop() }
        try source.copySchema(to: target)
        try target.execute("INSERT INTO public.\"User\" (id, \"Mixed Case\") VALUES (999, 'kept')")
        let before = try target.snapshotText()
        let repository = Steps.repository("corrupt")
        let backup = try Steps.backup(source, into: repository, chunkSize: 1 << 20)
        let manifest = try ArchiveReader(source: try FileSource(path: backup.path)).manifest
        let table = try #require(manifest.tables.first { $0.qualifiedName == "clinic.big_notes" })
        let chunk = table.parts[0].chunks[2]
        try damage(backup.path, at: chunk.offset + 32 + UInt64(chunk.storedLength / 2))

        let result = try Verification(path: backup.path, repository: repository).run()
        #expect(!result.intact)
        #expect(result.problems.first?.contains("table clinic.big_notes, chunk 2") == true, "\(result.problems)")
        #expect(result.sidecar == "mismatch")
        #expect(repository.verificationRecord(BackupID(backup.backupId)!)?.intact == false)
        #expect(try repository.listings().first?.integrity == .failed)

        do {
            try Steps.restoreData(backup.path, into: target)
            Issue.record("restore of a damaged archive succeeded")
        } catch let error as RestoreError {
            #expect("\(error)".contains("clinic.big_notes"))
            #expect("\(error)".contains("chunk 2"))
        }
        #expect(try target.snapshotText() == before)
    }

    @Test func truncatedArchive() throws {
        let source = try Steps.typeFamilies("truncated_src")
        let target = try TestDatabase("truncated_dst")
        defer { source.drop(); target.drop() }
        try source.copySchema(to: target)
        let repository = Steps.repository("truncated")
        let backup = try Steps.backup(source, into: repository)
        let path = try copy(backup.path, "truncated")
        try #require(truncate(path, off_t(backup.bytes / 2)) == 0)

        let result = try Verification(path: path, repository: repository).run()
        #expect(!result.intact)
        #expect(result.problems.joined().contains("trailer"), "\(result.problems)")
        #expect(throws: ArchiveError.self) { try Steps.restoreData(path, into: target) }
        #expect(try target.value("SELECT count(*) FROM clinic.big_notes") == "0")
    }

    @Test func wrongMagicAndFlippedManifest() throws {
        let source = try TestDatabase("magic_src")
        defer { source.drop() }
        try source.execute("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 5000) g")
        let repository = Steps.repository("magic")
        let backup = try Steps.backup(source, into: repository)

        let wrongMagic = try copy(backup.path, "magic")
        try damage(wrongMagic, at: 2)
        let magic = try Verification(path: wrongMagic, repository: repository).run()
        #expect(magic.problems.first?.contains("not an Arca archive") == true, "\(magic.problems)")

        let flipped = try copy(backup.path, "manifest")
        let trailer = try ArchiveReader(source: try FileSource(path: backup.path)).trailer
        try damage(flipped, at: trailer.manifestOffset + 40)
        let manifest = try Verification(path: flipped, repository: repository).run()
        #expect(manifest.problems.first?.contains("the manifest") == true, "\(manifest.problems)")

        let target = try TestDatabase("magic_dst")
        defer { target.drop() }
        #expect(throws: ArchiveError.self) { try Steps.restore(flipped, into: target) }
    }

    @Test func connectionKilledMidBackupLeavesNothing() throws {
        let source = try TestDatabase("killed_src")
        defer { source.drop() }
        try source.execute("""
            CREATE TABLE "Patient" (id int, note text);
            CREATE TABLE "MedicalRecord" AS SELECT g AS id, repeat(md5(g::text), 8) AS body FROM generate_series(1, 400000) g;
            """)
        let repository = Steps.repository("killed")
        var killed = false
        do {
            try Steps.backup(source, into: repository, chunkSize: 64 << 10) { progress in
                // Once the big table is streaming, terminate the backup's backend.
                guard !killed, progress.current == "public.MedicalRecord", progress.bytesDone > 1 << 20 else { return }
                killed = true
                try? TestServer.execute("""
                    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = 'arca backup' AND datname = '\(source.name)'
                    """)
            }
            Issue.record("the backup survived a terminated connection")
        } catch let error as BackupError {
            #expect(killed)
            guard case .table(let table, let underlying) = error else { Issue.record("wrong error: \(error)"); return }
            #expect(table == "public.MedicalRecord")
            guard case .connectionLost? = underlying as? PostgresError else { Issue.record("wrong cause: \(underlying)"); return }
            #expect("\(error)".contains("No archive was written"))
        }
        #expect(Steps.files(in: repository.localDirectory).isEmpty)
        #expect(Steps.files(in: repository.temporaryDirectory).isEmpty)
        #expect(try repository.listings().isEmpty)
    }

    @Test func restoreFailingMidwayLeavesTheTargetUnchanged() throws {
        let source = try Steps.typeFamilies("midway_src")
        let target = try TestDatabase("midway_dst")
        defer { source.drop(); target.drop() }
        try source.copySchema(to: target)
        // Old rows in the target, and a constraint that a row of a late table breaks.
        try target.execute("""
            INSERT INTO clinic.empty_table SELECT * FROM (VALUES (1)) v LIMIT 0;
            SET session_replication_role = replica;
            INSERT INTO clinic.big_notes (id, title, body) VALUES (-5, 'old', 'kept');
            INSERT INTO public."User" (id, "Mixed Case") VALUES (4242, 'kept');
            ALTER TABLE public.all_types ADD CONSTRAINT no_negative CHECK (id >= 0 AND id < 10) NOT VALID;
            """)
        let before = try target.snapshotText()
        let backup = try Steps.backup(source, into: Steps.repository("midway"))
        do {
            try Steps.restoreData(backup.path, into: target)
            Issue.record("restore succeeded despite the constraint")
        } catch let error as RestoreError {
            #expect("\(error)".contains("public.all_types"))
            #expect("\(error)".contains("rolled back"))
        }
        #expect(try target.snapshotText() == before)
    }

    @Test func restoreRefusesWithoutConfirmationOrSchema() throws {
        let source = try Steps.typeFamilies("confirm_src")
        let target = try TestDatabase("confirm_dst")
        defer { source.drop(); target.drop() }
        let backup = try Steps.backup(source, into: Steps.repository("confirm"))
        do {
            try Steps.restore(backup.path, into: target, confirmed: false)
            Issue.record("restore ran without confirmation")
        } catch RestoreError.notConfirmed(let database, let tables) {
            #expect(database == target.name)
            #expect(tables.count == 23)
        }
        do {
            try Steps.restoreData(backup.path, into: target)
            Issue.record("restore into a database without the tables succeeded")
        } catch RestoreError.tableMissing(let table, _) {
            #expect(table == "Odd Schema.invoice Europe \"other\"")
        }
    }

    @Test func rowLevelSecurityFailsInsteadOfSkippingRows() throws {
        let source = try TestDatabase("rls_src")
        let role = "arca_rls_\(getpid())"
        defer {
            source.drop()
            try? TestServer.execute("DROP ROLE IF EXISTS \(role)")
        }
        try TestServer.execute("DROP ROLE IF EXISTS \(role); CREATE ROLE \(role) LOGIN")
        try source.execute("""
            CREATE TABLE records (id int, owner text);
            INSERT INTO records VALUES (1, 'a'), (2, 'b');
            ALTER TABLE records ENABLE ROW LEVEL SECURITY;
            CREATE POLICY only_a ON records USING (owner = 'a');
            GRANT SELECT ON records TO \(role);
            """)
        var options = BackupOptions(
            source: try ConnectionString("dbname=\(source.name) user=\(role)"), repository: Steps.repository("rls"))
        options.lockTimeoutMilliseconds = 5000
        do {
            _ = try BackupRunner(options: options).run()
            Issue.record("a backup under row-level security succeeded")
        } catch let error as BackupError {
            #expect("\(error)".contains("public.records"))
            #expect("\(error)".contains("row-level security"))
        }
    }

    @Test func lockedTableTimesOutWithAClearMessage() throws {
        let source = try TestDatabase("locked_src")
        defer { source.drop() }
        try source.execute("CREATE TABLE busy (id int); CREATE TABLE calm (id int)")
        let holder = try source.connect()
        try holder.execute("BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        var options = BackupOptions(source: source.connectionString, repository: Steps.repository("locked"))
        options.lockTimeoutMilliseconds = 300
        do {
            _ = try BackupRunner(options: options).run()
            Issue.record("backup ignored the lock")
        } catch BackupError.lockTimeout(let table, let milliseconds) {
            #expect(table == "public.busy")
            #expect(milliseconds == 300)
        }
        try holder.execute("ROLLBACK")
        #expect(Steps.files(in: options.repository.temporaryDirectory).isEmpty)
    }
}
