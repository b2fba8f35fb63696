@testable import ArcaFormat
import Foundation
import Testing

/// Manifests that are well-formed JSON with valid checksums but numbers no
/// real backup has: each is rejected with an error naming the field, never a
/// trap, and never after a large allocation.
@Suite struct ManifestValidationTests {
    let archive = try! Sample.archive([
        Sample.Stream(name: "patients", bytes: Sample.copyText(rows: 200)),
        Sample.Stream(name: "visits", bytes: Sample.copyText(rows: 50, seed: 7)),
    ])

    /// The archive with its manifest changed by `change`, re-encoded and
    /// re-checksummed.
    func forged(_ change: (inout Manifest) -> Void) throws -> [UInt8] {
        var manifest = archive.manifest
        change(&manifest)
        return try Sample.rewriteManifest(archive.bytes) { $0 = manifest.encoded() }
    }

    /// Each table consistent with its one part (`rows` each), and `totals.rows` as given.
    func forged(rows: (UInt64, UInt64), totalRows: UInt64) throws -> [UInt8] {
        try forged { manifest in
            (manifest.tables[0].parts[0].rows, manifest.tables[0].rows) = (rows.0, rows.0)
            (manifest.tables[1].parts[0].rows, manifest.tables[1].rows) = (rows.1, rows.1)
            manifest.totals.rows = totalRows
        }
    }

    func openError(_ bytes: [UInt8]) -> ArchiveError? { Sample.archiveError { _ = try Sample.read(bytes) } }

    func expectInvalidManifest(_ bytes: [UInt8], mentioning text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard case .invalidManifest(let detail)? = openError(bytes) else {
            Issue.record("expected invalidManifest, got \(String(describing: openError(bytes)))", sourceLocation: sourceLocation)
            return
        }
        #expect(detail.contains(text), "\(detail)", sourceLocation: sourceLocation)
    }

    /// The source's identity (how services sharing a bucket tell their
    /// backups apart) is read as hostile as the rest.
    @Test func sourceIdentity() throws {
        let recorded = try Sample.read(try forged { manifest in
            manifest.source.systemIdentifier = "18446744073709551615"
            manifest.source.databaseOid = 4_294_967_295
        }).manifest.source.identity
        #expect(recorded == SourceIdentity(systemIdentifier: "18446744073709551615", database: "medical", databaseOid: 4_294_967_295))
        for bad in ["18446744073709551616", "-1", "+1", "12a", "", " 1"] {
            expectInvalidManifest(try forged { $0.source.systemIdentifier = bad }, mentioning: "source.systemIdentifier")
        }
        // An oid past 2^32-1 does not decode.
        let tooLarge = try Sample.rewriteManifest(archive.bytes) { json in
            var object = try! JSONSerialization.jsonObject(with: Data(json)) as! [String: Any]
            var source = object["source"] as! [String: Any]
            source["databaseOid"] = 4_294_967_296
            object["source"] = source
            json = Array(try! JSONSerialization.data(withJSONObject: object))
        }
        #expect(openError(tooLarge) != nil)

        // Matching: every field both record must agree.
        let full = SourceIdentity(systemIdentifier: "1", database: "medical", databaseOid: 16_384)
        #expect(full.matches(SourceIdentity(systemIdentifier: "1", database: "medical", databaseOid: nil)))
        #expect(full.matches(SourceIdentity(systemIdentifier: nil, database: "medical", databaseOid: nil)))
        #expect(!full.matches(SourceIdentity(systemIdentifier: "2", database: "medical", databaseOid: 16_384)))
        #expect(!full.matches(SourceIdentity(systemIdentifier: "1", database: "medical", databaseOid: 16_385)))
        #expect(!full.matches(SourceIdentity(systemIdentifier: "1", database: "Medical", databaseOid: 16_384)))
    }

    static let emptyStream = StreamSummary(
        rawBytes: 0, storedBytes: 0, md5: Hex.encode(Digest.hash(.md5, [])), sha256: Hex.encode(Digest.hash(.sha256, [])), chunks: [])

    /// `copyFormat` (version 6): `text` or `binary`, read as it was
    /// written; absent is text; anything else, or the field in an older
    /// version, or a binary table without a source version to judge a
    /// target by, is refused naming the table or the field.
    @Test func copyFormatIsCheckedAsHostileInput() throws {
        let formats = try Sample.read(try forged { manifest in
            manifest.tables[0].copyFormat = .binary
            manifest.tables[1].copyFormat = .text
        }).manifest.tables.map(\.format)
        #expect(formats == [.binary, .text])
        #expect(try Sample.read(archive.bytes).manifest.tables.allSatisfy { $0.copyFormat == nil && $0.format == .text })

        func withCopyFormat(_ value: String) throws -> [UInt8] {
            try Sample.rewriteManifest(archive.bytes) { json in
                let text = String(decoding: json, as: UTF8.self)
                json = Array(text.replacing(#""kind":"#, with: #""copyFormat":\#(value),"kind":"#, maxReplacements: 1).utf8)
            }
        }
        // null is JSON's way of leaving it out: text.
        #expect(try Sample.read(try withCopyFormat("null")).manifest.tables[0].format == .text)
        for value in [#""BINARY""#, #""csv""#, #""""#, #""binary ""#] {
            expectInvalidManifest(try withCopyFormat(value), mentioning: #"tables[0].copyFormat is neither "text" nor "binary""#)
        }
        for value in ["1", #"["binary"]"#, "{}"] {
            expectInvalidManifest(try withCopyFormat(value), mentioning: "tables[0].copyFormat has the wrong type")
        }
        // The value is not echoed into the message.
        guard case .invalidManifest(let detail)? = openError(try withCopyFormat(#""csv""#)) else {
            Issue.record("expected invalidManifest")
            return
        }
        #expect(!detail.contains("csv"), "\(detail)")

        let older = try Sample.rewriteManifest(try Sample.rewriteVersion(archive.bytes, to: 5)) { json in
            json = Array(String(decoding: json, as: UTF8.self).replacing(#""kind":"#, with: #""copyFormat":"text","kind":"#, maxReplacements: 1).utf8)
        }
        expectInvalidManifest(older, mentioning: "copyFormat is a field of version 6 on, not of version 5")
        expectInvalidManifest(try forged { manifest in
            manifest.tables[0].copyFormat = .binary
            manifest.source.serverVersionNumber = -150000
        }, mentioning: "names no PostgreSQL version")
        #expect(try Sample.read(try forged { manifest in
            manifest.tables[0].copyFormat = .text
            manifest.source.serverVersionNumber = 0
        }).manifest.sourceMajorVersion == 0)
    }

    /// The known crash: a table whose parts' row counts overflow when summed.
    /// A table stored in another archive (FORMAT.md, "Incremental
    /// backups"): its parts are not checked against this file's data area,
    /// but must be consistent in themselves, and only from version 5 on.
    @Test func referencesToOtherArchives() throws {
        // A part whose chunks lie far beyond this file: fine for a reference.
        let referenced = try forged { manifest in
            manifest.tables[1].storedIn = "backup_20241130_020000"
            manifest.tables[1].parts[0].chunks[0].offset = 1 << 40
            manifest.base = "backup_20241130_020000"
            manifest.totals = manifest.computedTotals!
        }
        let reader = try Sample.read(referenced)
        #expect(reader.manifest.storedTables.map(\.name) == [archive.manifest.tables[0].name])
        #expect(reader.manifest.referencedBackups == ["backup_20241130_020000"])
        #expect(reader.manifest.totals.rows == archive.manifest.tables[0].rows)
        // Verify reads only this file's streams: the chunk the reference
        // replaced is still here, unlisted; the referenced one is not looked for.
        let problems = try Sample.verify(referenced).problems
        #expect(problems.count == 1 && problems.allSatisfy { if case .indexMismatch = $0 { true } else { false } }, "\(problems)")

        expectInvalidManifest(try forged { manifest in
            manifest.tables[1].storedIn = "../../etc/passwd"
            manifest.totals = manifest.computedTotals!
        }, mentioning: "not the id of another backup")
        expectInvalidManifest(try forged { manifest in
            manifest.tables[1].storedIn = manifest.backupId
            manifest.totals = manifest.computedTotals!
        }, mentioning: "not the id of another backup")
        expectInvalidManifest(try forged { manifest in
            manifest.tables[1].storedIn = "backup_20241130_020000"
            manifest.tables[1].parts[0].chunks[0].offset = .max - 8
            manifest.totals = manifest.computedTotals!
        }, mentioning: "cannot lie in any archive")
        expectInvalidManifest(try forged { manifest in
            manifest.tables[1].storedIn = "backup_20241130_020000"
            manifest.tables[1].parts[0].rawBytes += 1
            manifest.totals = manifest.computedTotals!
        }, mentioning: "table")
        // Totals that count a referenced table are not this archive's.
        expectInvalidManifest(try forged { manifest in
            manifest.tables[1].storedIn = "backup_20241130_020000"
        }, mentioning: "totals")
        // A version-4 reader would read the parts in this file: refused.
        let error = Sample.archiveError { _ = try Sample.read(try Sample.rewriteVersion(referenced, to: 4)) }
        guard case .invalidManifest(let detail)? = error else {
            Issue.record("a version-4 manifest with storedIn: \(String(describing: error))")
            return
        }
        #expect(detail.contains("version 5"), "\(detail)")
    }

    @Test func partSumsThatOverflow() throws {
        for field in ["rows", "rawBytes", "storedBytes"] {
            let bytes = try forged { manifest in
                var extra = Manifest.Part(stream: 77, rows: 0, summary: Self.emptyStream)
                switch field {
                case "rows": extra.rows = .max
                case "rawBytes": extra.rawBytes = .max
                default: extra.storedBytes = .max
                }
                manifest.tables[0].parts.append(extra)
            }
            expectInvalidManifest(bytes, mentioning: "table public.patients: the sum of its parts' rows, rawBytes or storedBytes does not fit in 64 bits")
        }
    }

    /// Each table consistent on its own, the sum over tables overflowing:
    /// what aborted `list`, `inspect`, `verify`, `restore` and GET /metrics.
    @Test func totalsThatOverflow() throws {
        let bytes = try forged(rows: (.max, 2), totalRows: 1)
        expectInvalidManifest(bytes, mentioning: "the totals over the tables and streams do not fit in 64 bits")
    }

    @Test func totalsAboveTheLimit() throws {
        let bytes = try forged(rows: (.max, 0), totalRows: .max)
        expectInvalidManifest(bytes, mentioning: "totals.rows is \(UInt64.max), above the limit of \(Int64.max)")
    }

    @Test func totalsThatAreNotTheSums() throws {
        let bytes = try forged { $0.totals.storedBytes += 1 }
        expectInvalidManifest(bytes, mentioning: "are not the sums over the streams")
    }

    @Test func chunkEndsThatOverflow() throws {
        let bytes = try forged { manifest in
            manifest.tables[1].parts[0].chunks[0].offset = UInt64.max - 10
        }
        expectInvalidManifest(bytes, mentioning: "table public.visits, chunk 0 (offset \(UInt64.max - 10)")
    }

    /// A frame header may declare up to 1 GiB; a small payload may not
    /// declare more than it can reasonably expand to.
    @Test func smallManifestDeclaringAHugeLength() throws {
        let json = archive.manifest.encoded()
        let payload = Sample.zstd(json)
        let bytes = try Sample.replacingManifest(archive.bytes, payload: payload, codec: .zstd, rawLength: 1 << 30)
        let limit = ArchiveFormat.manifestRawLimit(compressedLength: UInt32(payload.count))
        #expect(limit == ArchiveFormat.manifestExpansionFloor)
        guard case .limitExceeded(.frame, let what, 1 << 30, limit)? = openError(bytes) else {
            Issue.record("expected limitExceeded, got \(String(describing: openError(bytes)))")
            return
        }
        #expect(what == "the manifest's decompressed length")
    }

    /// A real zstd bomb: valid JSON padded with megabytes of spaces, which
    /// compress to almost nothing.
    @Test func manifestThatExpandsTooMuch() throws {
        let json = archive.manifest.encoded() + [UInt8](repeating: 0x20, count: 8 << 20)
        let payload = Sample.zstd(json)
        #expect(UInt64(json.count) > UInt64(payload.count) * ArchiveFormat.maximumManifestExpansion)
        let bytes = try Sample.replacingManifest(archive.bytes, payload: payload, codec: .zstd, rawLength: UInt32(json.count))
        guard case .limitExceeded(.frame, _, _, _)? = openError(bytes) else {
            Issue.record("expected limitExceeded, got \(String(describing: openError(bytes)))")
            return
        }
    }

    /// The writer never writes what the reader rejects: a manifest that
    /// would compress beyond the limit is stored as it is, and reads back.
    @Test func writerStoresAManifestThatCompressesTooWell() throws {
        let sink = MemorySink()
        let header = FileHeader(chunkSize: 4096, compression: .zstd, compressionLevel: 3, archiveID: Sample.archiveID)
        let writer = try ArchiveWriter(sink: sink, header: header)
        var manifest = archive.manifest
        manifest.tables = []
        manifest.totals = try #require(manifest.computedTotals)
        manifest.trigger = String(repeating: "a", count: 4 << 20)
        _ = try writer.finish(manifest: manifest)
        let reader = try Sample.read(sink.bytes)
        #expect(reader.manifest == manifest)
        #expect(reader.trailer.manifestLength == UInt64(32 + manifest.encoded().count), "the manifest was not stored uncompressed")
    }

    /// The manifest is written field by field and entry by entry, to bound
    /// memory; the bytes are those `JSONEncoder` writes for the whole
    /// manifest, with every optional field present and with none.
    @Test func manifestIsWrittenAsJSONEncoderWritesIt() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var full = archive.manifest
        let summary = StreamSummary(
            rawBytes: 3, storedBytes: 3, md5: String(repeating: "a", count: 32), sha256: String(repeating: "b", count: 64),
            chunks: [.init(offset: 64, rawLength: 3, storedLength: 3, crc32c: 7)])
        full.schema = Manifest.Schema(pgDumpVersion: "15.18", stream: 90, summary: summary)
        full.largeObjects = [Manifest.LargeObject(oid: 16_400, stream: 91, summary: summary), Manifest.LargeObject(oid: 16_401, stream: 92, summary: summary)]
        full.largeObjectData = Manifest.LargeObjectData(count: 2, stream: 93, summary: summary)
        full.tableFilter = .init(include: ["public.*"], exclude: ["public.a/b"])
        full.trigger = "scheduled"
        full.database = Manifest.Database(encoding: "UTF8", collate: "C", ctype: "C", localeProvider: "libc", owner: "o\"wner")
        full.roles = [Manifest.Role(name: "o\"wner", references: ["owner"])]
        full.sequences = [.init(schema: "public", name: "s", lastValue: -5, isCalled: true, ownedBy: nil)]
        var bare = archive.manifest
        (bare.schema, bare.tableFilter, bare.trigger, bare.database, bare.roles) = (nil, nil, nil, nil, nil)
        (bare.largeObjects, bare.largeObjectData) = (nil, nil)
        bare.tables = []
        for manifest in [full, bare] {
            #expect(manifest.encoded() == Array(try encoder.encode(manifest)))
        }
    }

    /// The long arrays are split out of the document before anything is
    /// decoded: a broken structure anywhere, a key spelled with an escape or
    /// a long array given twice is refused, and an element's error names
    /// its place in the whole manifest.
    @Test func manifestsThatDoNotSplit() throws {
        let json = String(decoding: archive.manifest.encoded(), as: UTF8.self)
        let cases: [(String, String)] = [
            ("[1]", "it is not valid JSON"),
            (String(json.dropLast()), "it is not valid JSON"),
            (json + " x", "it is not valid JSON"),
            (json.replacingOccurrences(of: "\"tables\":[", with: "\"tables\":[{\"a\":[1}],"), "it is not valid JSON"),
            (json.replacingOccurrences(of: "\"tables\":[", with: "\"tables\":[1 2,"), "it is not valid JSON"),
            (json.replacingOccurrences(of: "\"tables\":", with: "\"t\\u0061bles\":[],\"tables\":"), "it is not valid JSON"),
            (json.replacingOccurrences(of: "\"tables\":", with: "\"tables\":[],\"tables\":"), "field tables appears twice"),
            (json.replacingOccurrences(of: "\"tables\":[", with: "\"tables\":{\"x\":[").replacingOccurrences(of: "],\"tool\"", with: "]},\"tool\""), "tables has the wrong type"),
            (json.replacingOccurrences(of: "\"md5\":", with: "\"md4\":"), "field md5 is missing at tables[0]"),
        ]
        for (text, expected) in cases {
            let bytes = try Sample.rewriteManifest(archive.bytes) { $0 = Array(text.utf8) }
            expectInvalidManifest(bytes, mentioning: expected)
        }
        // Whitespace between the tokens is JSON too. (It also lands inside
        // the timestamps, which are not compared.)
        let spaced = json.replacingOccurrences(of: ",", with: " ,\n ").replacingOccurrences(of: ":", with: " : ")
            .replacingOccurrences(of: "[", with: "[ ").replacingOccurrences(of: "{", with: " { ")
        #expect(try Sample.read(try Sample.rewriteManifest(archive.bytes) { $0 = Array(spaced.utf8) }).manifest.tables == archive.manifest.tables)
    }

    /// Whatever a valid manifest holds, the sums consumers make fit.
    @Test func acceptedTotalsFitInAnInt() throws {
        let bytes = try forged(rows: (UInt64(Int64.max) - 2, 2), totalRows: UInt64(Int64.max))
        let reader = try Sample.read(bytes)
        #expect(Int(exactly: reader.manifest.tables.lazy.map(\.rows).checkedSum ?? .max) == Int.max)
    }

    /// The `database` and `roles` sections: names and values a restore puts
    /// into SQL are bounded and of the server's own shapes; hostile ones
    /// (NUL, overlong, a setting name that is not a name, an unknown
    /// provider or privilege, a membership of an unrecorded role) are
    /// rejected before anything is restored. Quotes, semicolons and
    /// newlines in names are valid, and read back intact.
    @Test func databaseAndRolesSectionsAreChecked() throws {
        let database = Manifest.Database(
            encoding: "UTF8", collate: "C", ctype: "C", localeProvider: "libc", owner: "o\"; DROP TABLE x;\n--",
            settings: [.init(role: "r", name: "app.tenant", value: "it's; \n")])
        let roles = [
            Manifest.Role(name: "o\"; DROP TABLE x;\n--", references: ["owner", "databaseOwner"]),
            Manifest.Role(name: "r", references: ["setting"], memberOf: [.init(role: "o\"; DROP TABLE x;\n--", admin: true)]),
        ]
        let valid = try forged {
            $0.database = database
            $0.roles = roles
        }
        #expect(try Sample.read(valid).manifest.roles == roles)
        #expect(try Sample.read(valid).manifest.database == database)

        let cases: [(String, (inout Manifest) -> Void)] = [
            ("database.owner", { $0.database?.owner = "a\u{0}b" }),
            ("database.owner", { $0.database?.owner = String(repeating: "x", count: 64) }),
            ("database.localeProvider", { $0.database?.localeProvider = "icu'; DROP" }),
            ("database.locale is missing", { $0.database?.localeProvider = "icu" }),
            ("malformed setting name", { $0.database?.settings[0].name = "work_mem TO 1; DROP TABLE x; SET a" }),
            ("unknown privilege", { $0.database?.privileges = [.init(grantee: nil, privilege: "ALL; DROP", grantable: false)] }),
            ("a role name", { $0.roles?[1].name = "" }),
            ("appears twice", { manifest in
                let first = manifest.roles?[0].name ?? ""
                manifest.roles?[1].name = first
            }),
            ("memberOf", { $0.roles?[0].memberOf = [.init(role: "nobody", admin: false)] }),
            ("references", { $0.roles?[0].references = ["superuser"] }),
            ("connectionLimit", { $0.roles?[0].connectionLimit = -2 }),
        ]
        for (text, change) in cases {
            let bytes = try forged {
                $0.database = database
                $0.roles = roles
                change(&$0)
            }
            expectInvalidManifest(bytes, mentioning: text)
        }
    }
}
