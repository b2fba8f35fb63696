import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// `--jobs`: parallel connections in one snapshot, big tables split by ctid.
@Suite struct ParallelBackupTests {
    func backup(_ source: TestDatabase, _ repository: Repository, jobs: Int, split: UInt64, progress: @escaping (OperationProgress) -> Void = { _ in }) throws -> BackupResult {
        var options = BackupOptions(source: source.connectionString, repository: repository)
        options.jobs = jobs
        options.splitThresholdBytes = split
        options.chunkSize = 256 << 10
        return try BackupRunner(options: options).run(progress: progress)
    }

    @Test func splitTablesRoundTripAndHashByParts() throws {
        let source = try TestDatabase("split_src")
        let target = try TestDatabase("split_dst")
        defer { source.drop(); target.drop() }
        try source.execute("""
            CREATE TABLE "MedicalRecord" (id bigint PRIMARY KEY, patient int, body text, scan bytea, total int GENERATED ALWAYS AS (patient * 2) STORED);
            INSERT INTO "MedicalRecord" (id, patient, body, scan)
              SELECT g, g % 977, repeat(md5(g::text), 6) || E'\\t\\\\ tab', decode(md5(g::text), 'hex') FROM generate_series(1, 60000) g;
            DELETE FROM "MedicalRecord" WHERE id % 7 = 0;
            CREATE TABLE "Patient" (id int PRIMARY KEY, name text);
            INSERT INTO "Patient" SELECT g, 'p' || g FROM generate_series(1, 977) g;
            CREATE TABLE empty_one ();
            """)
        let repository = Steps.repository("split")
        let result = try backup(source, repository, jobs: 3, split: 2 << 20)
        let manifest = try ArchiveReader(source: try FileSource(path: result.path)).manifest
        let record = try #require(manifest.tables.first { $0.name == "MedicalRecord" })
        #expect(record.parts.count >= 3)
        #expect(record.parts.first?.firstPage == 0)
        #expect(record.parts.last?.endPage == nil)
        #expect(zip(record.parts, record.parts.dropFirst()).allSatisfy { $0.endPage == $1.firstPage })
        #expect(record.rows == 60000 - 60000 / 7)
        #expect(Manifest.Table.digests(of: record.parts) == (record.md5, record.sha256))
        #expect(manifest.tables.first { $0.name == "Patient" }?.parts.count == 1)
        #expect(try Verification(path: result.path, repository: repository).run().intact)

        try Steps.restore(result.path, into: target)
        try Steps.expectEqual(source, target)

        // One job, no split: the same rows (as a multiset), the same table set.
        let serial = try backup(source, repository, jobs: 1, split: 2 << 20)
        let serialManifest = try ArchiveReader(source: try FileSource(path: serial.path)).manifest
        #expect(serialManifest.tables.first { $0.name == "MedicalRecord" }?.parts.count == 1)
        #expect(serialManifest.totals.rows == manifest.totals.rows)
        // Binary COPY: each part is a whole stream, with its own 19-byte
        // header and 2-byte trailer.
        #expect(record.format == .binary)
        #expect(serialManifest.totals.rawBytes + 21 * UInt64(record.parts.count - 1) == manifest.totals.rawBytes)
    }

    @Test func changesDuringTheBackupStayOutOfIt() throws {
        let source = try TestDatabase("snapshot_src")
        let target = try TestDatabase("snapshot_dst")
        defer { source.drop(); target.drop() }
        try source.execute("""
            CREATE TABLE big (id int, body text);
            INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 50000) g;
            CREATE TABLE small (id int);
            INSERT INTO small SELECT g FROM generate_series(1, 10) g;
            """)
        var changed = false
        // Once the snapshot is taken (the first report is made before it).
        let result = try backup(source, Steps.repository("snapshot"), jobs: 2, split: 1 << 20) { progress in
            guard !changed, progress.phase == "copying tables" else { return }
            changed = true
            _ = try? source.execute("""
                INSERT INTO big SELECT g, 'late' FROM generate_series(50001, 60000) g;
                DELETE FROM small;
                UPDATE big SET body = 'changed' WHERE id <= 1000;
                """)
        }
        #expect(changed)
        try Steps.restore(result.path, into: target)
        #expect(try target.value("SELECT count(*) FROM big") == "50000")
        #expect(try target.value("SELECT count(*) FROM big WHERE body <> repeat('x', 200)") == "0")
        #expect(try target.value("SELECT count(*) FROM small") == "10")
    }

    @Test func aKilledWorkerFailsTheWholeBackup() throws {
        let source = try TestDatabase("worker_src")
        defer { source.drop() }
        try source.execute("""
            CREATE TABLE a AS SELECT g AS id, repeat(md5(g::text), 8) AS body FROM generate_series(1, 200000) g;
            CREATE TABLE b AS SELECT g AS id, repeat(md5(g::text), 8) AS body FROM generate_series(1, 200000) g;
            """)
        let repository = Steps.repository("worker")
        var killed = false
        #expect(throws: BackupError.self) {
            _ = try backup(source, repository, jobs: 2, split: 1 << 40) { progress in
                guard !killed, progress.bytesDone > 1 << 20 else { return }
                killed = true
                // Terminate one worker; the other must stop too.
                try? TestServer.execute("""
                    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = 'arca backup' AND datname = '\(source.name)' AND query LIKE 'COPY%'
                     LIMIT 1
                    """)
            }
        }
        #expect(killed)
        #expect(Steps.files(in: repository.localDirectory).isEmpty)
        #expect(Steps.files(in: repository.temporaryDirectory).isEmpty)
    }
}
