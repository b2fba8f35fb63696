import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// Large objects through the large-object stream of format 4 (one stream of
/// records for all of them), and through the stream-per-object layout of
/// format 3, which archives written before still have: backed up and
/// restored equal, serially and with --jobs 2.
@Suite struct LargeObjectStreamTests {
    /// Empty objects, a few bytes, objects larger than a 4096-byte chunk,
    /// and sizes that put record boundaries all over the chunks, with a
    /// comment, a grant and a table that refers to one.
    static let objects = """
        CREATE TABLE scans (id int PRIMARY KEY, image oid);
        SELECT lo_from_bytea(940001, ''::bytea);
        SELECT lo_from_bytea(940002 + g, convert_to(repeat('segment ' || g, 29 * g), 'UTF8')) FROM generate_series(0, 40) g;
        SELECT lo_from_bytea(950000, decode(repeat('00ff10', 5000), 'hex'));
        SELECT lo_from_bytea(950001, ''::bytea);
        COMMENT ON LARGE OBJECT 950000 IS 'x-ray';
        GRANT SELECT ON LARGE OBJECT 950000 TO PUBLIC;
        INSERT INTO scans VALUES (1, 950000), (2, 940001);
        """
    static let count: UInt64 = 44

    private func restoreEverywhere(_ path: String, source: TestDatabase, label: String) throws {
        let serial = try TestDatabase("\(label)_serial")
        defer { serial.drop() }
        let result = try Steps.restore(path, into: serial)
        #expect(result.largeObjects == Int(Self.count))
        try Steps.expectEqual(source, serial)
        #expect(try serial.value("SELECT obj_description(950000, 'pg_largeobject')") == "x-ray")

        let parallel = try TestDatabase("\(label)_jobs2")
        // --create makes it; dropped here without drop()'s timeout, which
        // under load leaves the drop to a thread that may not be done yet.
        try TestServer.execute("DROP DATABASE \(SQLIdentifier.quote(parallel.name)) WITH (FORCE)")
        defer { parallel.drop() }
        let created = try Steps.restore(path, into: parallel) {
            $0.create = true
            $0.jobs = 2
        }
        #expect(created.largeObjects == Int(Self.count) && created.jobs == 2)
        try Steps.expectEqual(source, parallel)
    }

    @Test func largeObjectsRoundTripThroughOneStream() throws {
        let source = try TestDatabase("lostream_src")
        defer { source.drop() }
        try source.execute(Self.objects)
        let repository = Steps.repository("lostream")
        let backup = try Steps.backup(source, into: repository, chunkSize: 4096)
        let reader = try ArchiveReader(source: try FileSource(path: backup.path))
        #expect(reader.header.version == ArchiveFormat.version && reader.manifest.largeObjects == nil)
        let data = try #require(reader.manifest.largeObjectData)
        #expect(data.count == Self.count && data.chunks.count > 10)
        #expect(try Verification(path: backup.path, repository: repository).run().intact)
        try restoreEverywhere(backup.path, source: source, label: "lostream")
    }

    /// An archive of format 3 (a stream and a manifest entry per object)
    /// is verified and restored as before.
    @Test func version3ArchivesStillRestore() throws {
        let source = try TestDatabase("lov3_src")
        defer { source.drop() }
        try source.execute(Self.objects)
        let repository = Steps.repository("lov3")
        // Format 3 has no binary tables.
        let backup = try Steps.backup(source, into: repository, chunkSize: 4096, copyFormat: .text)
        let older = try ForgedArchive.version3(backup.path, into: repository)
        let reader = try ArchiveReader(source: try FileSource(path: older))
        #expect(reader.header.version == 3 && reader.manifest.largeObjectData == nil)
        let objects = try #require(reader.manifest.largeObjects)
        #expect(objects.count == Int(Self.count) && objects.map(\.oid) == objects.map(\.oid).sorted())
        #expect(objects.contains { $0.chunks.isEmpty } && objects.contains { $0.chunks.count > 1 })
        #expect(try Verification(path: older, repository: repository).run().intact)
        try restoreEverywhere(older, source: source, label: "lov3")
    }
}
