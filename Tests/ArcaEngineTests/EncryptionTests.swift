import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// Encrypted backups against a real server: the restore equals the source,
/// no plaintext reaches the disk at any point, and a wrong key is refused
/// before anything is written.
@Suite struct EncryptedBackupTests {
    static let key = ArchiveKey.generate()
    static let marker = "Confidential-Diagnosis-93c1"

    static func clinic(_ name: String) throws -> TestDatabase {
        let database = try TestDatabase(name)
        _ = try database.execute("""
            CREATE SCHEMA clinic;
            CREATE TABLE clinic."MedicalRecord" (id bigserial PRIMARY KEY, patient text NOT NULL, diagnosis text, scan bytea);
            INSERT INTO clinic."MedicalRecord" (patient, diagnosis, scan)
                SELECT 'patient ' || g, '\(marker) ' || md5(g::text), decode(md5(g::text) || md5((g * 7)::text), 'hex')
                FROM generate_series(1, 60000) g;
            CREATE TABLE clinic.audit (at timestamptz DEFAULT now(), note text);
            INSERT INTO clinic.audit (note) VALUES ('\(marker) audit');
            SELECT lo_from_bytea(0, convert_to('\(marker) large object', 'UTF8'));
            """)
        return database
    }

    /// The marker must not appear in `bytes`, nor its zstd-compressible
    /// neighbourhood: checked on the raw bytes, which is what an attacker has.
    static func expectNoPlaintext(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.range(of: Data(marker.utf8)) == nil, "plaintext in \(path)", sourceLocation: sourceLocation)
        #expect(bytes.range(of: Data("MedicalRecord".utf8)) == nil, "a table name in \(path)", sourceLocation: sourceLocation)
    }

    @Test func roundTripWithNoPlaintextOnDisk() throws {
        let source = try Self.clinic("enc_src")
        let target = try TestDatabase("enc_dst", creating: false)
        defer { source.drop(); target.drop() }
        let repository = Steps.repository("enc")

        // While the backup runs, every file in the repository is encrypted
        // (small chunks make the backup long enough to be watched).
        var watched = 0
        let backup = try Steps.backup(source, into: repository, chunkSize: 64 << 10, key: Self.key) { _ in
            for name in (try? FileManager.default.contentsOfDirectory(atPath: repository.temporaryDirectory)) ?? [] {
                guard name.hasSuffix(".partial") else { continue }
                try? Self.expectNoPlaintext(repository.temporaryDirectory + "/" + name)
                watched += 1
            }
        }
        #expect(watched > 0, "the backup finished before its temporary file could be inspected")
        try Self.expectNoPlaintext(backup.path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: repository.temporaryDirectory).isEmpty)

        let verification = try Verification(path: backup.path, repository: repository, key: Self.key).run()
        #expect(verification.intact && verification.encrypted, "\(verification.problems)")
        var stored = Verification(path: backup.path, repository: repository)
        stored.storedBytesOnly = true
        let storedResult = try stored.run()
        #expect(storedResult.intact && storedResult.depth == "stored-bytes" && storedResult.sidecar == "match")

        try Steps.restore(backup.path, into: target) {
            $0.create = true
            $0.jobs = 2
            $0.key = Self.key
        }
        try Steps.expectEqual(source, target)
        #expect(try target.value("SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata") == "\(Self.marker) large object")

        // Listing without the key shows the archive, not its contents.
        let listing = try #require(try repository.listings().first)
        #expect(listing.encrypted == true && listing.tables == nil)
        #expect(try repository.listings(key: Self.key).first?.tables == 2)
    }

    @Test func wrongKeyWritesNothing() throws {
        let source = try Self.clinic("enc_wrong_src")
        let existing = try TestDatabase("enc_wrong_existing")
        let absent = try TestDatabase("enc_wrong_absent", creating: false)
        defer { source.drop(); existing.drop(); absent.drop() }
        _ = try existing.execute("CREATE TABLE keep (id int); INSERT INTO keep VALUES (1), (2)")
        let backup = try Steps.backup(source, into: Steps.repository("enc_wrong"), key: Self.key)

        for key in [nil, ArchiveKey.generate(), try ArchiveKey.passphrase("not the right passphrase", cost: ScryptCost(log2N: 10))] {
            #expect(throws: ArchiveError.self) {
                try Steps.restore(backup.path, into: absent) {
                    $0.create = true
                    $0.key = key
                }
            }
            #expect(throws: ArchiveError.self) {
                try Steps.restore(backup.path, into: existing) {
                    $0.clean = true
                    $0.key = key
                }
            }
        }
        #expect(try existing.value("SELECT count(*) FROM pg_database WHERE datname = '\(absent.name)'") == "0")
        #expect(try existing.value("SELECT count(*) FROM keep") == "2")
        #expect(try existing.value("SELECT count(*) FROM pg_tables WHERE schemaname = 'clinic'") == "0")
    }
}
