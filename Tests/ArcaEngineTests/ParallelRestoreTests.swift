import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// `restore --jobs N --create`: a staging database renamed when complete.
/// Serialized: it counts staging databases, which only this suite makes.
@Suite(.serialized) struct ParallelRestoreTests {
    /// Staging databases of restores into `target` (other tests restore in parallel).
    func stagingDatabases(of target: TestDatabase) throws -> String? {
        try PostgresConnection(try TestServer.connectionString())
            .query("SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)", ["arca_restore_\(target.name.prefix(30))_"]).singleValue
    }

    @Test func parallelRestoreEqualsTheSource() throws {
        let source = try TestDatabase("prestore_src")
        defer { source.drop() }
        try source.load(file: TestPaths.fixtures + "/schema_objects.sql")
        try source.execute("""
            CREATE TABLE clinic.big_record AS SELECT g AS id, repeat(md5(g::text), 4) AS body FROM generate_series(1, 40000) g;
            ALTER TABLE clinic.big_record ADD PRIMARY KEY (id);
            CREATE INDEX big_record_body ON clinic.big_record (body);
            CREATE TABLE clinic.note AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 10000) g;
            """)
        var options = BackupOptions(source: source.connectionString, repository: Steps.repository("prestore"))
        options.jobs = 3
        options.splitThresholdBytes = 1 << 20
        options.chunkSize = 256 << 10
        let backup = try BackupRunner(options: options).run()
        #expect(try ArchiveReader(source: try FileSource(path: backup.path)).manifest.tables.contains { $0.parts.count > 1 })

        let target = try TestDatabase("prestore_dst", creating: false)
        defer { target.drop() }
        let result = try Steps.restore(backup.path, into: target) {
            $0.create = true
            $0.jobs = 3
        }
        #expect(result.jobs == 3)
        #expect(result.createdDatabase)
        try Steps.expectEqual(source, target)
        #expect(try stagingDatabases(of: target) == "0")
        // A table of one part from 256 KiB is loaded with COPY FREEZE: every
        // tuple already carries the frozen bits (HEAP_XMIN_FROZEN = 0x0300),
        // so no vacuum has to rewrite the pages.
        let note = try #require(ArchiveReader(source: try FileSource(path: backup.path)).manifest.tables.first { $0.name == "note" })
        #expect(note.parts.count == 1 && note.rawBytes >= 256 << 10)
        try target.execute("CREATE EXTENSION pageinspect")
        #expect(try target.value("SELECT count(*) FROM heap_page_items(get_raw_page('clinic.note', 0)) WHERE t_infomask & 768 <> 768") == "0")
        #expect(try target.value("SELECT count(*) FROM heap_page_items(get_raw_page('clinic.note', 0))") != "0")
    }

    /// A damaged chunk in a big table, loaded in a transaction of its own,
    /// and in a small one, loaded with others in one transaction: the error
    /// names the table, and nothing is left.
    @Test(arguments: ["big_notes", "measurement"])
    func aFailedParallelRestoreCreatesNothing(_ damaged: String) throws {
        let source = try Steps.typeFamilies("pfail_src")
        defer { source.drop() }
        let backup = try Steps.backup(source, into: Steps.repository("pfail"), chunkSize: 1 << 20)
        let manifest = try ArchiveReader(source: try FileSource(path: backup.path)).manifest
        let table = try #require(manifest.tables.first { $0.schema == "clinic" && $0.name == damaged })
        if damaged == "measurement" { #expect(table.parts.count == 1 && table.rawBytes < 256 << 10) }
        let chunk = try #require(table.parts.last?.chunks.last)
        let handle = try #require(FileHandle(forUpdatingAtPath: backup.path))
        try handle.seek(toOffset: chunk.offset + 40)
        try handle.write(contentsOf: [0x13, 0x37])
        try handle.close()

        let target = try TestDatabase("pfail_dst", creating: false)
        defer { target.drop() }
        do {
            try Steps.restore(backup.path, into: target) {
                $0.create = true
                $0.jobs = 2
            }
            Issue.record("a damaged archive restored in parallel")
        } catch let error as RestoreError {
            #expect("\(error)".contains("clinic.\(damaged)"))
        }
        let exists = try PostgresConnection(try TestServer.connectionString())
            .query("SELECT count(*) FROM pg_database WHERE datname = $1", [target.name]).singleValue
        #expect(exists == "0")
        #expect(try stagingDatabases(of: target) == "0")
    }
}
