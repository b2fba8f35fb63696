@testable import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// `--copy-format`: binary COPY for the tables whose every column it carries
/// exactly, text for the others; what each table got is in the manifest, and
/// every restore loads each table in the format it was stored in.
@Suite struct CopyFormatTests {
    /// What `auto` chooses for the tables of Tests/Fixtures/user_types.sql.
    static let autoFormats: [String: Manifest.CopyFormat] = [
        "kinds.builtin": .binary, "kinds.domains": .binary,
        "kinds.enums": .text, "kinds.composites": .text, "kinds.domain_arrays": .text,
        "kinds.extensions": .text, "kinds.user_range": .text, "kinds.oid_aliases": .text,
    ]

    static func userTypes(_ label: String, on server: TestCluster = .primary) throws -> TestDatabase {
        let database = try TestDatabase(label, on: server)
        try database.load(file: TestPaths.fixtures + "/user_types.sql")
        return database
    }

    static func manifest(_ path: String) throws -> Manifest {
        try ArchiveReader(source: try FileSource(path: path)).manifest
    }

    static func formats(_ manifest: Manifest) -> [String: Manifest.CopyFormat] {
        Dictionary(uniqueKeysWithValues: manifest.tables.map { ($0.qualifiedName, $0.format) })
    }

    /// Enums, composites, arrays of user-defined types and of domains,
    /// extension types (citext, hstore), a user-defined range and OID
    /// aliases go as text; built-in types, arrays of them and domains over
    /// them in binary. Every restore gives the source back.
    @Test func autoCopiesInBinaryWhereItIsExact() throws {
        let source = try Self.userTypes("fmt_auto_src")
        defer { source.drop() }
        let repository = Steps.repository("fmt_auto")
        let backup = try Steps.backup(source, into: repository)
        let manifest = try Self.manifest(backup.path)
        #expect(Self.formats(manifest) == Self.autoFormats)
        // Recorded for every table, text ones included.
        #expect(manifest.tables.allSatisfy { $0.copyFormat != nil })
        #expect(try Verification(path: backup.path, repository: repository).run().intact)

        let serial = try TestDatabase("fmt_auto_serial")
        defer { serial.drop() }
        #expect(try Steps.restore(backup.path, into: serial).rows == backup.rows)
        try Steps.expectEqual(source, serial)

        let parallel = try TestDatabase("fmt_auto_jobs", creating: false)
        defer { parallel.drop() }
        try Steps.restore(backup.path, into: parallel) {
            $0.create = true
            $0.jobs = 2
        }
        try Steps.expectEqual(source, parallel)

        let dataOnly = try TestDatabase("fmt_auto_data")
        defer { dataOnly.drop() }
        try source.copySchema(to: dataOnly)
        try Steps.restoreData(backup.path, into: dataOnly)
        try Steps.expectEqual(source, dataOnly)
    }

    /// `--copy-format text` writes, table by table, exactly the bytes of
    /// `COPY … TO STDOUT`, as every archive before version 6 did; `auto`'s
    /// binary tables hold exactly `COPY … TO STDOUT (FORMAT binary)`, and its
    /// text tables the same bytes as text mode.
    @Test func forcedTextGivesTheTextBytes() throws {
        let source = try Steps.typeFamilies("fmt_text_src")
        defer { source.drop() }
        let repository = Steps.repository("fmt_text")
        let text = try Self.manifest(try Steps.backup(source, into: repository, copyFormat: .text).path)
        let auto = try Self.manifest(try Steps.backup(source, into: repository).path)
        #expect(text.tables.allSatisfy { $0.format == .text })
        let binary = auto.tables.filter { $0.format == .binary }.map(\.qualifiedName)
        // all_types has enum and composite columns; clinic.big_notes only built-in ones.
        #expect(binary.contains("clinic.big_notes") && !binary.contains("public.all_types"), "\(binary)")

        let connection = try source.connect()
        try SessionSettings.apply(to: connection, encoding: "UTF8")
        try connection.execute("SET synchronize_seqscans = off")
        for table in text.tables + auto.tables {
            let statement = "COPY \(SQLIdentifier.qualified(table.schema, table.name))\(SQLIdentifier.columnList(table.columns)) TO STDOUT"
                + (table.format == .binary ? " (FORMAT binary)" : "")
            let md5 = Digest(.md5)
            _ = try connection.copyOut(statement, during: "reading \(table.qualifiedName)") { md5.update($0) }
            #expect(Hex.encode(md5.finish()) == table.md5, "\(table.qualifiedName) (\(table.format))")
        }
        let textDigests = Dictionary(uniqueKeysWithValues: text.tables.map { ($0.qualifiedName, $0.md5) })
        for table in auto.tables where table.format == .text {
            #expect(textDigests[table.qualifiedName] == table.md5, "\(table.qualifiedName)")
        }
    }

    /// `--copy-format binary` names every table it cannot copy exactly, with
    /// the columns and their types, before anything is copied: no archive.
    @Test func forcedBinaryRefusesBeforeCopying() throws {
        let source = try Self.userTypes("fmt_binary_src")
        defer { source.drop() }
        let repository = Steps.repository("fmt_binary")
        let error = #expect(throws: BackupError.self) { try Steps.backup(source, into: repository, copyFormat: .binary) }
        guard case .binaryCopyImpossible(let tables)? = error else {
            Issue.record("expected binaryCopyImpossible, got \(String(describing: error))")
            return
        }
        #expect(tables.map(\.table).sorted() == Self.autoFormats.filter { $0.value == .text }.keys.sorted())
        let message = "\(error!)"
        #expect(message.contains("kinds.enums (column feeling of type kinds.mood, column feelings of type kinds.mood[])"), "\(message)")
        #expect(message.contains("column email of type public.citext") && message.contains("column relation of type regclass"), "\(message)")
        #expect(message.contains("No archive was written"))
        #expect(try repository.archives().isEmpty)

        // The tables it can copy exactly, it copies in binary.
        let subset = try Steps.backup(
            source, into: repository, tables: TableFilter(include: ["kinds.builtin", "kinds.domains"]), copyFormat: .binary)
        #expect(Self.formats(try Self.manifest(subset.path)) == ["kinds.builtin": .binary, "kinds.domains": .binary])
    }

    /// An archive claiming a newer source major than the target's: its
    /// binary tables are refused, named, before anything changes (data-only
    /// and --create alike); its text tables and an all-text archive load.
    @Test func binaryIntoAnOlderMajorIsRefused() throws {
        let source = try Self.userTypes("fmt_major_src")
        let target = try TestDatabase("fmt_major_dst")
        defer { source.drop(); target.drop() }
        try source.copySchema(to: target)
        let repository = Steps.repository("fmt_major")
        let forgedRepository = Steps.repository("fmt_major_forged")
        let fromTheFuture = { (manifest: inout Manifest) in manifest.source.serverVersionNumber = 990_001 }
        let auto = try ForgedArchive.rewritten(try Steps.backup(source, into: repository).path, into: forgedRepository, fromTheFuture)

        let before = try target.snapshotText()
        let error = #expect(throws: RestoreError.self) { try Steps.restoreData(auto, into: target) }
        guard case .binaryNeedsNewerServer(let tables, let sourceMajor, let targetMajor)? = error else {
            Issue.record("expected binaryNeedsNewerServer, got \(String(describing: error))")
            return
        }
        #expect(tables.sorted() == ["kinds.builtin", "kinds.domains"] && sourceMajor == 99 && targetMajor == 15)
        #expect("\(error!)".contains("Nothing was changed"))
        #expect(try target.snapshotText() == before)

        let created = try TestDatabase("fmt_major_create", creating: false)
        defer { created.drop() }
        #expect(throws: RestoreError.self) { try Steps.restore(auto, into: created) { $0.create = true } }
        let exists = try PostgresConnection(try TestServer.connectionString())
            .query("SELECT count(*) FROM pg_catalog.pg_database WHERE datname = $1", [created.name]).singleValue
        #expect(exists == "0")

        // Its text tables alone load; so does an all-text archive.
        try Steps.restoreData(auto, into: target, tables: TableFilter(include: ["kinds.enums"]))
        #expect(try target.value("SELECT count(*) FROM kinds.enums") == "300")
        let text = try ForgedArchive.rewritten(
            try Steps.backup(source, into: repository, copyFormat: .text).path, into: forgedRepository, fromTheFuture)
        try Steps.restoreData(text, into: target)
        try Steps.expectEqual(source, target)
    }

    /// A table split into ctid ranges copies each range as a whole binary
    /// stream (header, rows, trailer), loaded by a COPY each, serially and
    /// in parallel. An incremental backup refers to it in binary, unless
    /// told to copy as text.
    @Test func splitBinaryTablesAndIncrementalBackups() throws {
        let source = try TestDatabase("fmt_split_src")
        defer { source.drop() }
        try source.execute("""
            CREATE TABLE wide (id bigint PRIMARY KEY, body text, doc jsonb, raw bytea, total int GENERATED ALWAYS AS (id::int * 2) STORED);
            INSERT INTO wide (id, body, doc, raw)
              SELECT g, repeat(md5(g::text), 4) || E'\\t\\\\', jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g)), decode(md5(g::text), 'hex')
                FROM generate_series(1, 40000) g;
            DELETE FROM wide WHERE id % 9 = 0;
            """)
        let repository = Steps.repository("fmt_split")
        func backup(incremental: Bool = false, format: CopyFormatChoice = .auto) throws -> (manifest: Manifest, path: String) {
            var options = BackupOptions(source: source.connectionString, repository: repository)
            options.jobs = 3
            options.splitThresholdBytes = 2 << 20
            options.chunkSize = 256 << 10
            options.incremental = incremental
            options.copyFormat = format
            let path = try BackupRunner(options: options).run().path
            return (try Self.manifest(path), path)
        }
        let (full, path) = try backup()
        let wide = try #require(full.tables.first { $0.name == "wide" })
        #expect(wide.format == .binary && wide.parts.count >= 3)
        let reader = try ArchiveReader(source: try FileSource(path: path))
        for (index, part) in wide.parts.enumerated() {
            var bytes: [UInt8] = []
            try reader.readStream(part, named: wide.displayName(part: index)) { bytes += $0 }
            #expect(bytes.starts(with: Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00]) && bytes.suffix(2) == [0xFF, 0xFF])
        }

        let serial = try TestDatabase("fmt_split_serial")
        defer { serial.drop() }
        try Steps.restore(path, into: serial)
        try Steps.expectEqual(source, serial)
        let parallel = try TestDatabase("fmt_split_jobs", creating: false)
        defer { parallel.drop() }
        try Steps.restore(path, into: parallel) {
            $0.create = true
            $0.jobs = 2
        }
        try Steps.expectEqual(source, parallel)

        // Unchanged: referred to, in the format it is stored in.
        let (incremental, incrementalPath) = try backup(incremental: true)
        let referenced = try #require(incremental.tables.first { $0.name == "wide" })
        #expect(referenced.storedIn == full.backupId && referenced.format == .binary)
        let restored = try TestDatabase("fmt_split_incremental")
        defer { restored.drop() }
        try Steps.restore(incrementalPath, into: restored)
        try Steps.expectEqual(source, restored)
        // --copy-format text refers to no binary rows: copied again, as text.
        let text = try backup(incremental: true, format: .text).manifest
        let copied = try #require(text.tables.first { $0.name == "wide" })
        #expect(copied.storedIn == nil && copied.format == .text)
    }
}
