@testable import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// The copy workers on their own: small tables share a transaction, and
/// one LOCK of several tables does not say which one failed.
@Suite struct ParallelCopyTests {
    /// Two small tables, one held by another session: the batch's LOCK
    /// times out, and the tables taken one at a time name the one that waits.
    @Test func aLockTimeoutInABatchNamesItsTable() throws {
        let source = try TestDatabase("copybatch_src")
        defer { source.drop() }
        try source.execute("""
            CREATE TABLE free (id int PRIMARY KEY);
            INSERT INTO free SELECT generate_series(1, 10);
            CREATE TABLE held (id int PRIMARY KEY);
            INSERT INTO held SELECT generate_series(1, 10);
            """)
        let exporter = try source.connect()
        defer { exporter.close() }
        try exporter.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        let snapshot = try #require(try exporter.execute("SELECT pg_catalog.pg_export_snapshot()").singleValue)
        let oids = try exporter.execute("SELECT 'public.free'::regclass::oid, 'public.held'::regclass::oid").rows[0].map { UInt32($0!)! }
        let holder = try source.connect()
        defer { holder.close() }
        try holder.execute("BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE")

        let tasks = zip(["free", "held"], oids).enumerated().map { index, table in
            CopyTask(
                table: index, oid: table.1, quotedTable: "public.\(table.0)", stream: UInt32(index),
                sql: "COPY public.\(table.0) TO STDOUT", name: "public.\(table.0)", estimatedBytes: 8192)
        }
        let writer = try ArchiveWriter(sink: MemorySink(), header: FileHeader(
            chunkSize: 64 << 10, compression: .zstd, compressionLevel: 3, archiveID: .random()))
        let copy = ParallelCopy(
            tasks: tasks, jobs: 1, source: source.connectionString, snapshot: snapshot, encoding: "UTF8",
            lockTimeoutMilliseconds: 300, archive: writer, level: 3, cancellation: Cancellation())
        #expect(ParallelCopy.tablesPerTransaction >= tasks.count)
        do {
            _ = try copy.run {}
            Issue.record("the copy went on although public.held was locked")
        } catch BackupError.lockTimeout(let table, let milliseconds) {
            #expect(table == "public.held")
            #expect(milliseconds == 300)
        }
    }
}
