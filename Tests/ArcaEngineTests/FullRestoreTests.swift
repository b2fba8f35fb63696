import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// A backup rebuilds the whole database on a server that has nothing.
@Suite struct FullRestoreTests {
    @Test func createRebuildsEverything() throws {
        let source = try Steps.typeFamilies("full_src")
        defer { source.drop() }
        try source.execute("""
            SELECT lo_from_bytea(0, convert_to(repeat('scan ', 50000), 'UTF8'));
            COMMENT ON TABLE clinic."Patient" IS 'patients';
            CREATE MATERIALIZED VIEW clinic.patient_count AS SELECT count(*) AS n FROM clinic."Patient";
            """)
        let repository = Steps.repository("full")
        let backup = try Steps.backup(source, into: repository, chunkSize: 64 << 10)
        let manifest = try ArchiveReader(source: try FileSource(path: backup.path)).manifest
        #expect(manifest.schema?.format == "pg_dump-custom")
        #expect(manifest.largeObjectCount == 1 && manifest.largeObjects == nil)
        #expect(manifest.tables.allSatisfy { $0.objects?.isEmpty == false })
        #expect(try Verification(path: backup.path, repository: repository).run().intact)

        let target = try TestDatabase("full_dst", creating: false)  // --create makes it
        defer { target.drop() }
        let result = try Steps.restore(backup.path, into: target) { $0.create = true }
        #expect(result.createdDatabase)
        #expect(result.mode == "full")
        #expect(result.largeObjects == 1)
        try Steps.expectEqual(source, target)
        // Indexes and triggers came from post-data, after the rows: the trigger did not rewrite them.
        #expect(try target.value(#"SELECT count(*) FROM public."User" WHERE "Mixed Case" <> upper("Mixed Case")"#) != "0")
        #expect(try target.value(#"SELECT count(*) FROM pg_indexes WHERE tablename = 'User'"#) == "3")

        // --create refuses an existing database.
        do {
            try Steps.restore(backup.path, into: target) { $0.create = true }
            Issue.record("--create overwrote an existing database")
        } catch RestoreError.databaseExists(let name) {
            #expect(name == target.name)
        }
    }

    /// Every kind of schema object (Tests/Fixtures/schema_objects.sql):
    /// backup, restore into an empty database, then --clean over an older copy.
    @Test func everySchemaObjectKind() throws {
        let source = try TestDatabase("objects_src")
        let target = try TestDatabase("objects_dst")
        defer { source.drop(); target.drop() }
        try source.load(file: TestPaths.fixtures + "/schema_objects.sql")
        let repository = Steps.repository("objects")
        let older = try Steps.backup(source, into: repository)
        try source.execute("""
            INSERT INTO clinic.ward (code, name) SELECT 'W' || g, 'ward ' || g FROM generate_series(10, 20) g;
            SELECT nextval('clinic.mrn_seq');
            """)
        let backup = try Steps.backup(source, into: repository)
        #expect(try Verification(path: backup.path, repository: repository).run().intact)

        try Steps.restore(older.path, into: target)
        try Steps.expectDifferent(source, target)
        try Steps.restore(backup.path, into: target) { $0.clean = true }
        try Steps.expectEqual(source, target)

        let fresh = try TestDatabase("objects_fresh")
        defer { fresh.drop() }
        try Steps.restore(backup.path, into: fresh)
        try Steps.expectEqual(source, fresh)
    }

    @Test func cleanReplacesAnOlderCopy() throws {
        let source = try Steps.typeFamilies("clean_src")
        let target = try TestDatabase("clean_dst")
        defer { source.drop(); target.drop() }
        let backup = try Steps.backup(source, into: Steps.repository("clean"))
        try Steps.restore(backup.path, into: target)
        // The target drifts: rows changed, an index dropped, a sequence moved, an object of its own added.
        try target.execute("""
            DELETE FROM clinic.big_notes WHERE id % 3 = 0;
            UPDATE public."User" SET email = email || '.old';
            DROP INDEX public."User lower(email)";
            SELECT setval('clinic.invoice_number_seq', 99999);
            CREATE TABLE public.local_notes (note text);
            """)
        try Steps.expectDifferent(source, target)
        do {
            try Steps.restore(backup.path, into: target)
            Issue.record("restored over a non-empty database without --clean")
        } catch RestoreError.targetNotEmpty {
        }
        try Steps.restore(backup.path, into: target) { $0.clean = true }
        // Everything of the archive is back; the target's own table is left alone.
        try target.execute("DROP TABLE public.local_notes")
        try Steps.expectEqual(source, target)
    }

    @Test func failingPostDataLeavesTheTargetUnchanged() throws {
        let source = try Steps.typeFamilies("postdata_src")
        let target = try TestDatabase("postdata_dst")
        defer { source.drop(); target.drop() }
        let backup = try Steps.backup(source, into: Steps.repository("postdata"))
        // A relation with the name the archive's primary key index needs.
        try target.execute(#"CREATE TABLE public."User_pkey" (kept text); INSERT INTO public."User_pkey" VALUES ('mine')"#)
        let before = try target.snapshotText()
        do {
            try Steps.restore(backup.path, into: target) { $0.clean = true }
            Issue.record("restore succeeded although post-data cannot run")
        } catch let error as RestoreError {
            #expect("\(error)".contains("post-data"), "\(error)")
            #expect("\(error)".contains("rolled back"))
        }
        #expect(try target.snapshotText() == before)
        #expect(try target.value("SELECT count(*) FROM pg_class WHERE relname = 'all_types'") == "0")
    }

    @Test func missingRoleIsNamedAndNoOwnerRestores() throws {
        let source = try TestDatabase("role_src")
        let role = "arca_owner_\(getpid())"
        defer {
            source.drop()
            try? TestServer.execute("DROP ROLE IF EXISTS \(role)")
        }
        try TestServer.execute("DROP ROLE IF EXISTS \(role); CREATE ROLE \(role)")
        try source.execute("""
            CREATE TABLE records (id int PRIMARY KEY, note text);
            INSERT INTO records SELECT g, 'note ' || g FROM generate_series(1, 100) g;
            ALTER TABLE records OWNER TO \(role);
            GRANT SELECT ON records TO \(role);
            """)
        let repository = Steps.repository("role")
        let backup = try Steps.backup(source, into: repository)
        // As an archive written before roles were recorded: no pre-flight.
        let older = try ForgedArchive.rewritten(backup.path, into: repository) {
            $0.roles = nil
            $0.database = nil
        }
        try source.execute("REASSIGN OWNED BY \(role) TO postgres; DROP OWNED BY \(role)")
        try TestServer.execute("DROP ROLE \(role)")

        let target = try TestDatabase("role_dst")
        defer { target.drop() }
        do {
            try Steps.restore(backup.path, into: target)
            Issue.record("restore succeeded without the owning role")
        } catch RestoreError.targetLacks(let missing) {
            // The pre-flight names it before anything is created.
            #expect(missing == ["role \"\(role)\""])
        }
        do {
            try Steps.restore(older, into: target)
            Issue.record("restore succeeded without the owning role")
        } catch RestoreError.missingRole(let name) {
            #expect(name == role)
        }
        #expect(try target.value("SELECT count(*) FROM pg_class WHERE relname = 'records'") == "0")
        try Steps.restore(backup.path, into: target) {
            $0.noOwner = true
            $0.noPrivileges = true
        }
        #expect(try target.value("SELECT count(*) FROM records") == "100")
        #expect(try target.value("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'records'") == "postgres")
    }

    @Test func subsetRestoresTablesWithTheirOwnObjects() throws {
        let source = try Steps.typeFamilies("subsetfull_src")
        defer { source.drop() }
        let backup = try Steps.backup(source, into: Steps.repository("subsetfull"))
        let target = try TestDatabase("subsetfull_dst")
        defer { target.drop() }
        let result = try Steps.restore(backup.path, into: target, tables: TableFilter(include: ["public.User", "clinic.lab_record"]))
        #expect(result.restoredTables == ["clinic.lab_record", "public.User"])
        #expect(try target.value(#"SELECT count(*) FROM public."User""#) == "6")
        #expect(try target.value("SELECT count(*) FROM ONLY clinic.lab_record") == "3")
        // Its indexes, constraints and trigger came along; other tables did not.
        #expect(try target.value(#"SELECT count(*) FROM pg_indexes WHERE tablename = 'User'"#) == "3")
        #expect(try target.value(#"SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public."User"'::regclass AND NOT tgisinternal"#) == "1")
        #expect(try target.value("SELECT count(*) FROM pg_class WHERE relname = 'big_notes'") == "0")
        // The inheritance parent exists (empty): the child needs it.
        #expect(try target.value("SELECT count(*) FROM ONLY clinic.record") == "0")

        // A foreign key to a table that is not restored is reported, not dropped.
        let other = try TestDatabase("subsetfull_fk")
        defer { other.drop() }
        do {
            try Steps.restore(backup.path, into: other, tables: TableFilter(include: ["clinic.Patient"]))
            Issue.record("a foreign key to an unrestored table was dropped silently")
        } catch RestoreError.refersToUnrestored(let message) {
            #expect(message.contains("User"))
        }
        #expect(try other.value("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") == "0")
    }

    @Test func largeObjectsAreNeverSkippedSilently() throws {
        let source = try TestDatabase("lo_src")
        defer { source.drop() }
        try source.execute("""
            CREATE TABLE scans (id int PRIMARY KEY, image oid);
            INSERT INTO scans VALUES (1, lo_from_bytea(910001, decode(repeat('00ff10', 100000), 'hex'))),
                                     (2, lo_from_bytea(910002, ''::bytea));
            COMMENT ON LARGE OBJECT 910001 IS 'x-ray';
            GRANT SELECT ON LARGE OBJECT 910001 TO PUBLIC;
            """)
        let repository = Steps.repository("lo")
        let backup = try Steps.backup(source, into: repository, chunkSize: 64 << 10)
        let manifest = try ArchiveReader(source: try FileSource(path: backup.path)).manifest
        // One stream: 910001's 300,000 bytes in segments of at most the
        // chunk size (5 of them), 910002 empty; 8 bytes of framing each.
        let data = try #require(manifest.largeObjectData)
        #expect(data.count == 2)
        #expect(data.rawBytes == 4 + 5 * 4 + 300_000 + 4 + 4 + 4)
        #expect(data.chunks.count == 5)

        let target = try TestDatabase("lo_dst")
        defer { target.drop() }
        try Steps.restore(backup.path, into: target)
        try Steps.expectEqual(source, target)
        #expect(try target.value("SELECT obj_description(910001, 'pg_largeobject')") == "x-ray")

        let subset = try TestDatabase("lo_subset")
        defer { subset.drop() }
        #expect(throws: RestoreError.self) { try Steps.restore(backup.path, into: subset, tables: TableFilter(include: ["scans"])) }
        try Steps.restore(backup.path, into: subset, tables: TableFilter(include: ["scans"])) { $0.excludeLargeObjects = true }
        #expect(try subset.value("SELECT count(*) FROM pg_largeobject_metadata") == "0")

        var options = BackupOptions(source: source.connectionString, repository: repository)
        options.excludeLargeObjects = true
        let withoutObjects = try BackupRunner(options: options).run()
        #expect(try ArchiveReader(source: try FileSource(path: withoutObjects.path)).manifest.largeObjectData == nil)
    }

    @Test func tooOldPgDumpIsRefused() throws {
        let source = try TestDatabase("oldtools_src")
        defer { source.drop() }
        let (error, _) = try schemaError(backingUp: source, label: "oldtools", pgDump: "echo 'pg_dump (PostgreSQL) 9.6.24'")
        #expect("\(error)".contains("9.6.24"))
        #expect("\(error)".contains("at least version 15"))
    }

    /// pg_dump runs beside the table data; when it fails, the data workers
    /// stop and no archive is left.
    @Test func failedSchemaDumpStopsTheBackup() throws {
        let source = try TestDatabase("schemafail_src")
        defer { source.drop() }
        try source.execute("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, repeat('x', 500) FROM generate_series(1, 200000) g")
        let (error, rawBytesRead) = try schemaError(backingUp: source, label: "schemafail", pgDump: """
            if [ "$1" = --version ]; then echo 'pg_dump (PostgreSQL) 15.99'; exit 0; fi
            echo 'pg_dump: error: query failed: simulated catalog failure' >&2
            exit 1
            """)
        #expect("\(error)".contains("simulated catalog failure"))
        // The failure stopped the COPY of the ~100 MB table early, instead of
        // being noticed after all of it was read.
        #expect(rawBytesRead < 50_000_000)
    }

    /// Backs `source` up with `pgDump` (a shell script) in place of pg_dump,
    /// expects BackupError.schema and nothing left in the repository, and
    /// returns the error and the bytes of table data read before it.
    private func schemaError(backingUp source: TestDatabase, label: String, pgDump script: String) throws -> (any Error, rawBytesRead: UInt64) {
        let directory = TestPaths.temporaryDirectory(label)
        try "#!/bin/sh\n\(script)\n".write(toFile: directory + "/pg_dump", atomically: true, encoding: .utf8)
        try Tool.run("chmod", ["+x", directory + "/pg_dump"])
        var options = BackupOptions(source: source.connectionString, repository: Steps.repository(label))
        options.postgresBinDirectory = directory
        defer {
            #expect(Steps.files(in: options.repository.localDirectory).isEmpty)
            #expect(Steps.files(in: options.repository.temporaryDirectory).isEmpty)
        }
        var rawBytesRead: UInt64 = 0
        do {
            _ = try BackupRunner(options: options).run(progress: { rawBytesRead = max(rawBytesRead, $0.bytesDone) })
        } catch BackupError.schema(let error) {
            return (error, rawBytesRead)
        }
        Issue.record("the backup succeeded with a broken pg_dump")
        return (CancellationError(), rawBytesRead)
    }

    @Test func failedCreateRestoreDropsTheDatabaseItMade() throws {
        let source = try Steps.typeFamilies("createfail_src")
        defer { source.drop() }
        let repository = Steps.repository("createfail")
        let backup = try Steps.backup(source, into: repository, chunkSize: 1 << 20)
        let manifest = try ArchiveReader(source: try FileSource(path: backup.path)).manifest
        let chunk = try #require(manifest.tables.first { $0.name == "big_notes" }?.parts.last?.chunks.last)
        let handle = try #require(FileHandle(forUpdatingAtPath: backup.path))
        try handle.seek(toOffset: chunk.offset + 40)
        try handle.write(contentsOf: [0x42, 0x42, 0x42])
        try handle.close()

        let target = try TestDatabase("createfail_dst", creating: false)
        defer { target.drop() }
        #expect(throws: RestoreError.self) { try Steps.restore(backup.path, into: target) { $0.create = true } }
        let exists = try PostgresConnection(try TestServer.connectionString())
            .query("SELECT count(*) FROM pg_database WHERE datname = $1", [target.name]).singleValue
        #expect(exists == "0")
    }
}
