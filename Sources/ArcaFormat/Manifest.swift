import Foundation

/// The archive's index: what was backed up, where every chunk is, and the
/// digests to check it against. Serialized as the JSON object of FORMAT.md.
public struct Manifest: Codable, Sendable, Equatable {
    public var formatVersion: Int
    public var archiveId: String
    public var backupId: String
    public var startedAt: String
    public var completedAt: String
    public var tool: Tool
    public var source: Source
    public var compression: Compression
    public var chunkSize: UInt32
    public var tables: [Table]
    public var sequences: [Sequence]
    /// The database's schema as a pg_dump custom-format archive (pre-data
    /// and post-data sections). Absent in a data-only archive.
    public var schema: Schema?
    /// Versions 1 to 3: one stream per large object. Absent from version 4 on.
    public var largeObjects: [LargeObject]?
    /// Version 4: every large object's contents in one stream of records;
    /// absent when the archive holds no large objects.
    public var largeObjectData: LargeObjectData?
    /// The `--table` / `--exclude-table` patterns the backup was made with;
    /// absent when it holds every table.
    public var tableFilter: TableFilterRecord?
    /// Optional, informational: what started the backup (`manual`, `scheduled`, `missed`, `api`).
    public var trigger: String?
    /// The database's own properties (locale, owner, settings, privileges…);
    /// absent in archives written before they were recorded.
    public var database: Database?
    /// The roles the database refers to; absent in older archives.
    public var roles: [Role]?
    /// A full backup taken while the change stream ran: where it stands in
    /// the stream. Absent otherwise.
    public var anchor: Anchor?
    /// Present in a change segment only (whose `tables` is empty and whose
    /// `sequences` are the values captured when it closed).
    public var changes: ChangeData?
    /// Version 5, optional, informational: the backup this one is
    /// incremental on (FORMAT.md, "Incremental backups").
    public var base: String?
    public var totals: Totals

    /// How a table's rows were written by `COPY … TO STDOUT`, and so how
    /// they are loaded: PostgreSQL's text format, or its binary format
    /// (`FORMAT binary`, version 6 on), which PostgreSQL reads in the same
    /// major version or a newer one only.
    public enum CopyFormat: String, Codable, Sendable, Equatable, CaseIterable {
        case text
        case binary

        /// An unknown value is named by its place in the manifest (see
        /// `describe`), never echoed: the manifest is hostile input.
        public init(from decoder: any Decoder) throws {
            let value = try decoder.singleValueContainer().decode(String.self)
            guard let format = CopyFormat(rawValue: value) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: Self.invalid))
            }
            self = format
        }

        static let invalid = "is neither \"text\" nor \"binary\""
    }

    public struct TableFilterRecord: Codable, Sendable, Equatable {
        public var include: [String]
        public var exclude: [String]
        public init(include: [String], exclude: [String]) {
            self.include = include
            self.exclude = exclude
        }
    }

    /// A run of a table's rows: its whole COPY stream, or the rows of one
    /// ctid range of it.
    public struct Part: Codable, Sendable, Equatable, StreamDescriptor {
        public var stream: UInt32
        public var rows: UInt64
        /// For a split table, the pages `[firstPage, endPage)` (endPage
        /// absent: to the end of the table) the part's rows were read from.
        public var firstPage: UInt32?
        public var endPage: UInt32?
        public var rawBytes: UInt64
        public var storedBytes: UInt64
        public var md5: String
        public var sha256: String
        public var chunks: [Chunk]

        public init(stream: UInt32, rows: UInt64, firstPage: UInt32? = nil, endPage: UInt32? = nil, summary: StreamSummary) {
            self.stream = stream
            self.rows = rows
            self.firstPage = firstPage
            self.endPage = endPage
            rawBytes = summary.rawBytes
            storedBytes = summary.storedBytes
            md5 = summary.md5
            sha256 = summary.sha256
            chunks = summary.chunks
        }
    }

    /// The schema dump: the bytes of `pg_dump --format=custom
    /// --section=pre-data --section=post-data`, read in the backup's snapshot.
    public struct Schema: Codable, Sendable, Equatable, StreamDescriptor {
        public var format: String
        public var pgDumpVersion: String
        public var stream: UInt32
        public var rawBytes: UInt64
        public var storedBytes: UInt64
        public var md5: String
        public var sha256: String
        public var chunks: [Chunk]

        public init(format: String = "pg_dump-custom", pgDumpVersion: String, stream: UInt32, summary: StreamSummary) {
            self.format = format
            self.pgDumpVersion = pgDumpVersion
            self.stream = stream
            rawBytes = summary.rawBytes
            storedBytes = summary.storedBytes
            md5 = summary.md5
            sha256 = summary.sha256
            chunks = summary.chunks
        }

    }

    /// One large object's contents. Its metadata (owner, privileges,
    /// comment) is in the schema dump.
    public struct LargeObject: Codable, Sendable, Equatable, StreamDescriptor {
        public var oid: UInt32
        public var stream: UInt32
        public var rawBytes: UInt64
        public var storedBytes: UInt64
        public var md5: String
        public var sha256: String
        public var chunks: [Chunk]

        public init(oid: UInt32, stream: UInt32, summary: StreamSummary) {
            self.oid = oid
            self.stream = stream
            rawBytes = summary.rawBytes
            storedBytes = summary.storedBytes
            md5 = summary.md5
            sha256 = summary.sha256
            chunks = summary.chunks
        }

    }

    /// The large-object stream of version 4: `count` records, one per large
    /// object in ascending OID order, each its OID and its bytes
    /// (`LargeObjectRecords` reads them; FORMAT.md, "Large objects").
    public struct LargeObjectData: Codable, Sendable, Equatable, StreamDescriptor {
        public var count: UInt64
        public var stream: UInt32
        public var rawBytes: UInt64
        public var storedBytes: UInt64
        public var md5: String
        public var sha256: String
        public var chunks: [Chunk]

        public init(count: UInt64, stream: UInt32, summary: StreamSummary) {
            self.count = count
            self.stream = stream
            rawBytes = summary.rawBytes
            storedBytes = summary.storedBytes
            md5 = summary.md5
            sha256 = summary.sha256
            chunks = summary.chunks
        }

        /// The shortest record: an OID and the empty segment that ends it.
        public static let minimumRecordLength: UInt64 = 8
    }

    /// A sequence's state in the snapshot, and the column that owns it.
    public struct Sequence: Codable, Sendable, Equatable {
        public var schema: String
        public var name: String
        public var lastValue: Int64
        public var isCalled: Bool
        /// `{"schema", "table", "column"}` of the owning column, if any.
        public var ownedBy: Owner?

        public struct Owner: Codable, Sendable, Equatable {
            public var schema: String
            public var table: String
            public var column: String
            public init(schema: String, table: String, column: String) {
                self.schema = schema
                self.table = table
                self.column = column
            }
        }

        public init(schema: String, name: String, lastValue: Int64, isCalled: Bool, ownedBy: Owner?) {
            self.schema = schema
            self.name = name
            self.lastValue = lastValue
            self.isCalled = isCalled
            self.ownedBy = ownedBy
        }
    }

    public struct Tool: Codable, Sendable, Equatable {
        public var name: String
        public var version: String
        public init(name: String = "arca", version: String) {
            self.name = name
            self.version = version
        }
    }

    public struct Source: Codable, Sendable, Equatable {
        public var database: String
        public var serverVersion: String
        public var serverVersionNumber: Int
        public var snapshot: String
        public var systemIdentifier: String?
        public var encoding: String
        /// The database's oid (optional: absent in archives written before it was recorded).
        public var databaseOid: UInt32?
        public init(
            database: String, serverVersion: String, serverVersionNumber: Int, snapshot: String, systemIdentifier: String?,
            encoding: String, databaseOid: UInt32? = nil
        ) {
            self.encoding = encoding
            self.databaseOid = databaseOid
            self.database = database
            self.serverVersion = serverVersion
            self.serverVersionNumber = serverVersionNumber
            self.snapshot = snapshot
            self.systemIdentifier = systemIdentifier
        }
    }

    public struct Compression: Codable, Sendable, Equatable {
        public var algorithm: String
        public var level: Int
        public init(algorithm: String = "zstd", level: Int) {
            self.algorithm = algorithm
            self.level = level
        }
    }

    public struct Totals: Codable, Sendable, Equatable {
        public var rows: UInt64
        public var rawBytes: UInt64
        public var storedBytes: UInt64
        public init(rows: UInt64, rawBytes: UInt64, storedBytes: UInt64) {
            self.rows = rows
            self.rawBytes = rawBytes
            self.storedBytes = storedBytes
        }
    }

    public struct Chunk: Codable, Sendable, Equatable {
        public var offset: UInt64
        public var rawLength: UInt32
        public var storedLength: UInt32
        public var crc32c: UInt32
        public init(offset: UInt64, rawLength: UInt32, storedLength: UInt32, crc32c: UInt32) {
            self.offset = offset
            self.rawLength = rawLength
            self.storedLength = storedLength
            self.crc32c = crc32c
        }
    }

    public struct Table: Codable, Sendable, Equatable {
        public var schema: String
        public var name: String
        public var kind: String
        public var parent: String?
        public var columns: [String]
        public var rows: UInt64
        public var rawBytes: UInt64
        public var storedBytes: UInt64
        /// For a table of one part, the digests of its COPY stream; of
        /// several, the digests of its parts' digests (FORMAT.md, "Split tables").
        public var md5: String
        public var sha256: String
        /// The table's rows in restore order: one part, or several ctid
        /// ranges copied in parallel.
        public var parts: [Part]
        /// OIDs of the table and of what belongs to it in the source
        /// (indexes, constraints, triggers, rules, policies, column
        /// defaults, owned sequences, extended statistics), so a subset
        /// restore can pick its schema objects out of the schema dump.
        public var objects: [UInt32]?
        /// Version 5: the backup whose archive holds this table's parts
        /// (their chunk offsets are in that archive); nil: in this one.
        public var storedIn: String?
        /// Version 6: the COPY format of its parts' streams; nil (older
        /// archives, or left out): text. See `format`.
        public var copyFormat: CopyFormat?

        /// The format its rows are stored in: `copyFormat`, text when absent.
        public var format: CopyFormat { copyFormat ?? .text }

        public init(
            schema: String, name: String, kind: String, parent: String?, columns: [String], parts: [Part],
            objects: [UInt32]? = nil, copyFormat: CopyFormat? = nil
        ) {
            self.copyFormat = copyFormat
            self.schema = schema
            self.name = name
            self.kind = kind
            self.parent = parent
            self.columns = columns
            self.parts = parts
            self.objects = objects
            // A writer's parts hold real rows and bytes, whose sums fit;
            // should they not, the saturated value fails validation.
            let sums = Self.sums(of: parts) ?? Totals(rows: .max, rawBytes: .max, storedBytes: .max)
            rows = sums.rows
            rawBytes = sums.rawBytes
            storedBytes = sums.storedBytes
            (md5, sha256) = Self.digests(of: parts)
        }

        /// Rows, raw and stored bytes summed over `parts`; nil when a sum
        /// does not fit in 64 bits (only a forged manifest's can fail to).
        public static func sums(of parts: [Part]) -> Totals? {
            guard let rows = parts.lazy.map(\.rows).checkedSum, let raw = parts.lazy.map(\.rawBytes).checkedSum,
                  let stored = parts.lazy.map(\.storedBytes).checkedSum
            else { return nil }
            return Totals(rows: rows, rawBytes: raw, storedBytes: stored)
        }

        /// The same numbers as this table records them.
        var recordedSums: Totals { Totals(rows: rows, rawBytes: rawBytes, storedBytes: storedBytes) }

        /// The table-level digests FORMAT.md defines from its parts'.
        public static func digests(of parts: [Part]) -> (md5: String, sha256: String) {
            if parts.count == 1 { return (parts[0].md5, parts[0].sha256) }
            let md5 = Digest(.md5), sha256 = Digest(.sha256)
            for part in parts {
                md5.update(Hex.decode(part.md5) ?? [])
                sha256.update(Hex.decode(part.sha256) ?? [])
            }
            return (Hex.encode(md5.finish()), Hex.encode(sha256.finish()))
        }

        public var chunkCount: Int { parts.reduce(0) { $0 + $1.chunks.count } }

        /// Whether its parts lie in this archive (not `storedIn` another).
        public var isStoredHere: Bool { storedIn == nil }

        /// Whether `other` (the entry of the archive it is stored in) holds
        /// exactly these rows: the same columns and the same parts, chunk for
        /// chunk, stored there. What a reader checks before it follows a reference.
        public func sameData(as other: Table) -> Bool {
            other.isStoredHere && other.schema == schema && other.name == name && other.columns == columns
                && other.format == format && other.parts == parts
        }

        /// How errors name part `index`.
        public func displayName(part index: Int) -> String {
            parts.count == 1 ? "table \(qualifiedName)" : "table \(qualifiedName) part \(index + 1)/\(parts.count)"
        }

        /// `schema.name`, unquoted: how people and `--table` globs name it.
        public var qualifiedName: String { "\(schema).\(name)" }
    }

    public init(
        archiveId: String, backupId: String, startedAt: String, completedAt: String, tool: Tool, source: Source,
        compression: Compression, chunkSize: UInt32, tables: [Table], sequences: [Sequence],
        schema: Schema? = nil, largeObjects: LargeObjectData? = nil, tableFilter: TableFilterRecord? = nil
    ) {
        self.sequences = sequences
        self.schema = schema
        largeObjectData = largeObjects
        self.tableFilter = tableFilter
        formatVersion = Int(ArchiveFormat.version)
        self.archiveId = archiveId
        self.backupId = backupId
        self.startedAt = startedAt
        self.completedAt = completedAt
        self.tool = tool
        self.source = source
        self.compression = compression
        self.chunkSize = chunkSize
        self.tables = tables
        totals = Totals(rows: 0, rawBytes: 0, storedBytes: 0)
        totals = computedTotals ?? Totals(rows: .max, rawBytes: .max, storedBytes: .max)
    }

    /// The source server's major version (`150018` → 15; `90624` → 9):
    /// binary tables load into it or a newer one only.
    public var sourceMajorVersion: Int { source.serverVersionNumber / 10000 }

    /// The tables whose parts lie in this archive.
    public var storedTables: [Table] { tables.filter(\.isStoredHere) }

    /// The tables stored in other archives (FORMAT.md, "Incremental backups").
    public var referencedTables: [Table] { tables.filter { !$0.isStoredHere } }

    /// The rows of every table, wherever stored: what a restore loads
    /// (`totals.rows` counts this archive's tables only). Validation bounds
    /// each sum, so this does not saturate for a manifest that was read.
    public var tableRows: UInt64 { tables.lazy.map(\.rows).checkedSum ?? .max }

    /// The backups whose archives hold referenced tables, sorted: what
    /// restoring or keeping this one needs.
    public var referencedBackups: [String] { Set(tables.compactMap(\.storedIn)).sorted() }

    /// Every stream in the archive (table parts, the schema dump, large
    /// objects) with the name errors use for it. Referenced tables' parts
    /// are streams of other archives and are not listed.
    public var streams: [NamedStream] {
        var streams: [NamedStream] = storedTables.flatMap { table in
            table.parts.indices.map { NamedStream(name: table.displayName(part: $0), descriptor: table.parts[$0]) }
        }
        if let schema { streams.append(NamedStream(name: "the schema dump", descriptor: schema)) }
        streams += (largeObjects ?? []).map { NamedStream(name: "large object \($0.oid)", descriptor: $0) }
        if let largeObjectData { streams.append(NamedStream(name: LargeObjectRecords.streamName, descriptor: largeObjectData)) }
        if let changes { streams.append(NamedStream(name: Manifest.ChangeData.streamName, descriptor: changes)) }
        return streams
    }

    /// How many large objects the archive holds, in either layout.
    public var largeObjectCount: UInt64 {
        largeObjectData?.count ?? UInt64((largeObjects ?? []).count)
    }

    /// The raw bytes of the large objects' streams (in version 4 with
    /// their framing): what reading them all reads.
    public var largeObjectRawBytes: UInt64 {
        largeObjectData?.rawBytes ?? (largeObjects ?? []).lazy.map(\.rawBytes).checkedSum ?? .max
    }

    public struct NamedStream: Sendable {
        public let name: String
        public let descriptor: any StreamDescriptor
    }

    /// `totals` as FORMAT.md defines them; nil when a sum does not fit in 64 bits.
    var computedTotals: Totals? {
        let streams = streams
        guard let rows = tables.lazy.filter(\.isStoredHere).map(\.rows).checkedSum, let raw = streams.lazy.map(\.descriptor.rawBytes).checkedSum,
              let stored = streams.lazy.map(\.descriptor.storedBytes).checkedSum
        else { return nil }
        return Totals(rows: rows, rawBytes: raw, storedBytes: stored)
    }

    /// The largest count or size a manifest may record: every total fits in
    /// an `Int64` (and so in an `Int`), and since `totals` must equal the
    /// sums of its parts, any sum of a manifest's numbers a reader makes
    /// fits too.
    public static let maximumTotal = UInt64(Int64.max)

    enum CodingKeys: String, CodingKey, CaseIterable {
        case formatVersion, archiveId, backupId, startedAt, completedAt, tool, source, compression, chunkSize, tables
        case sequences, schema, largeObjects, largeObjectData, tableFilter, trigger, database, roles, base, totals
        case anchor, changes
    }

    /// The JSON of FORMAT.md, byte for byte what `JSONEncoder` with sorted
    /// keys writes for the whole manifest, but written field by field and
    /// table by table: `JSONEncoder` builds the whole document as a tree
    /// first, several times the size of its text (18 MiB for 10,000
    /// tables), where this holds one entry's tree at a time.
    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var json: [UInt8] = []
        // Encoding plain structs of strings and integers cannot fail.
        func append(_ value: some Encodable) { json.append(contentsOf: try! encoder.encode(value)) }
        func append(each values: [some Encodable]) {
            json.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { json.append(UInt8(ascii: ",")) }
                append(value)
            }
            json.append(UInt8(ascii: "]"))
        }
        json.append(UInt8(ascii: "{"))
        var first = true
        for key in CodingKeys.allCases.sorted(by: { $0.rawValue.utf8.lexicographicallyPrecedes($1.rawValue.utf8) }) {
            // Absent optionals are left out, as the synthesized encoder does.
            let present: Bool = switch key {
            case .schema: schema != nil
            case .largeObjects: largeObjects != nil
            case .largeObjectData: largeObjectData != nil
            case .tableFilter: tableFilter != nil
            case .trigger: trigger != nil
            case .database: database != nil
            case .roles: roles != nil
            case .anchor: anchor != nil
            case .changes: changes != nil
            case .base: base != nil
            default: true
            }
            guard present else { continue }
            if !first { json.append(UInt8(ascii: ",")) }
            first = false
            append(key.rawValue)
            json.append(UInt8(ascii: ":"))
            switch key {
            case .formatVersion: append(formatVersion)
            case .archiveId: append(archiveId)
            case .backupId: append(backupId)
            case .startedAt: append(startedAt)
            case .completedAt: append(completedAt)
            case .tool: append(tool)
            case .source: append(source)
            case .compression: append(compression)
            case .chunkSize: append(chunkSize)
            case .tables: append(each: tables)
            case .sequences: append(each: sequences)
            case .schema: append(schema)
            case .largeObjects: append(each: largeObjects ?? [])
            case .largeObjectData: append(largeObjectData)
            case .tableFilter: append(tableFilter)
            case .trigger: append(trigger)
            case .database: append(database)
            case .roles: append(roles)
            case .base: append(base)
            case .totals: append(totals)
            case .anchor: append(anchor)
            case .changes: append(changes)
            }
        }
        json.append(UInt8(ascii: "}"))
        return json
    }

    /// Decodes the JSON and checks the manifest against the file header and
    /// against itself (FORMAT.md, "A reader rejects a manifest in which").
    /// `manifestOffset` bounds where chunks may lie.
    public static func decode(_ json: UnsafeRawBufferPointer, header: FileHeader, manifestOffset: UInt64) throws -> Manifest {
        let manifest = try decodePiecewise(json)
        try manifest.validate(header: header, manifestOffset: manifestOffset)
        return manifest
    }

    /// The arrays that grow with the database, decoded an element at a time.
    private static let longArrays: [CodingKeys] = [.tables, .largeObjects]

    /// Decodes the manifest as `JSONDecoder` would, but the long arrays an
    /// element at a time (see `JSONMembers`): the rest of the document, with
    /// those arrays emptied, is decoded whole, then each element on its own.
    private static func decodePiecewise(_ json: UnsafeRawBufferPointer) throws -> Manifest {
        let document = JSONMembers(bytes: json)
        var rest: [UInt8] = [UInt8(ascii: "{")]
        var elements: [CodingKeys: [Range<Int>]] = [:]
        do {
            for (index, member) in try document.objectMembers().enumerated() {
                if index > 0 { rest.append(UInt8(ascii: ",")) }
                rest.append(contentsOf: json[member.key])
                rest.append(UInt8(ascii: ":"))
                let name = String(decoding: json[member.key].dropFirst().dropLast(), as: UTF8.self)
                guard let key = longArrays.first(where: { $0.rawValue == name }) else {
                    rest.append(contentsOf: json[member.value])
                    continue
                }
                guard elements[key] == nil else { throw ArchiveError.invalidManifest("field \(name) appears twice") }
                guard json[member.value.lowerBound] == UInt8(ascii: "[") else { throw ArchiveError.invalidManifest("\(name) has the wrong type") }
                elements[key] = try document.arrayElements(member.value)
                rest.append(contentsOf: [UInt8(ascii: "["), UInt8(ascii: "]")])
            }
        } catch is JSONMembers.Malformed {
            throw ArchiveError.invalidManifest("it is not valid JSON")
        }
        rest.append(UInt8(ascii: "}"))

        let decoder = JSONDecoder()
        func decode<T: Decodable>(_ type: T.Type, _ bytes: some Collection<UInt8>, at path: String) throws -> T {
            do {
                return try decoder.decode(type, from: Data(bytes))
            } catch let error as DecodingError {
                throw ArchiveError.invalidManifest(describe(error, at: path))
            } catch {
                throw ArchiveError.invalidManifest("it is not valid JSON")
            }
        }
        var manifest = try decode(Manifest.self, rest, at: "")
        manifest.tables = try (elements[.tables] ?? []).enumerated().map { index, range in
            try decode(Table.self, json[range], at: "tables[\(index)]")
        }
        if let ranges = elements[.largeObjects] {
            manifest.largeObjects = try ranges.enumerated().map { index, range in
                try decode(LargeObject.self, json[range], at: "largeObjects[\(index)]")
            }
        }
        return manifest
    }

    /// Everything a reader and every consumer downstream rely on, checked
    /// once, with arithmetic that cannot trap on any value: after this, sums
    /// of the manifest's numbers cannot overflow and every chunk lies in
    /// the file's data area.
    func validate(header: FileHeader, manifestOffset: UInt64) throws {
        func fail(_ detail: String) -> ArchiveError { .invalidManifest(detail) }
        guard formatVersion == Int(header.version) else { throw fail("formatVersion is \(formatVersion), the header says \(header.version)") }
        guard archiveId == header.archiveID.description else { throw fail("archiveId \(archiveId) differs from the header's \(header.archiveID)") }
        guard chunkSize == header.chunkSize else { throw fail("chunkSize \(chunkSize) differs from the header's \(header.chunkSize)") }
        if let changes {
            guard formatVersion >= 5 else { throw fail("changes is a field of version 5 on, not of version \(formatVersion)") }
            guard SegmentID(backupId) == SegmentID(startLSN: changes.startLSN, endLSN: changes.endLSN) else {
                throw fail("backupId \"\(backupId)\" is not the segment name its LSNs give")
            }
            guard tables.isEmpty, schema == nil, largeObjectData == nil, anchor == nil, base == nil else {
                throw fail("a change segment holds no tables, schema, large objects, anchor or base")
            }
            try changes.validate()
        } else {
            guard BackupID(backupId) != nil else { throw fail("backupId \"\(backupId.prefix(64))\" is not of the form backup_YYYYMMDD_HHMMSS_mmmrrrrr") }
        }
        if let system = source.systemIdentifier, UInt64(system) == nil || system.hasPrefix("+") {
            throw fail("source.systemIdentifier \"\(system.prefix(32))\" is not a 64-bit unsigned decimal number")
        }
        if anchor != nil, formatVersion < 5 { throw fail("anchor is a field of version 5 on, not of version \(formatVersion)") }
        if formatVersion >= 4 {
            guard largeObjects == nil else { throw fail("largeObjects is a field of versions 1 to 3; version \(formatVersion) has largeObjectData") }
        } else {
            guard largeObjects != nil else { throw fail("field largeObjects is missing at the top level") }
            guard largeObjectData == nil else { throw fail("largeObjectData is a field of version 4 on, not of version \(formatVersion)") }
        }
        if let data = largeObjectData {
            // Each record takes at least 8 bytes: a count the stream cannot
            // hold is refused before anything is read.
            guard data.count >= 1, data.count <= data.rawBytes / LargeObjectData.minimumRecordLength else {
                throw fail("largeObjectData.count is \(data.count), but its stream of \(data.rawBytes) bytes holds 1 to \(data.rawBytes / LargeObjectData.minimumRecordLength) records")
            }
        }

        try validateReferences()
        var streamIDs = Set<UInt32>()
        var names = Set<String>()
        var extents: [(start: UInt64, end: UInt64)] = []
        for table in tables {
            let name = "table \(table.qualifiedName)"
            guard names.insert("\(table.schema)\u{0}\(table.name)").inserted else { throw fail("\(name) appears twice") }
            guard !table.parts.isEmpty else { throw fail("\(name) has no parts") }
            guard let sums = Table.sums(of: table.parts) else {
                throw fail("\(name): the sum of its parts' rows, rawBytes or storedBytes does not fit in 64 bits")
            }
            guard table.recordedSums == sums else {
                throw fail("\(name): rows/rawBytes/storedBytes (\(table.rows)/\(table.rawBytes)/\(table.storedBytes)) are not the sums over its parts (\(sums.rows)/\(sums.rawBytes)/\(sums.storedBytes))")
            }
            guard (table.md5, table.sha256) == Table.digests(of: table.parts) else {
                throw fail("\(name): its digests do not match its parts'")
            }
            if table.copyFormat != nil, formatVersion < 6 {
                throw fail("\(name): copyFormat is a field of version 6 on, not of version \(formatVersion)")
            }
            // Whether a binary table loads into a server is judged by this number.
            if table.format == .binary, source.serverVersionNumber < 10000 {
                throw fail("\(name) is binary, but source.serverVersionNumber \(source.serverVersionNumber) names no PostgreSQL version")
            }
        }
        let dataEnd = manifestOffset
        for named in streams {
            let name = named.name, descriptor = named.descriptor
            guard streamIDs.insert(descriptor.stream).inserted, descriptor.stream != ArchiveFormat.manifestStreamID else {
                throw fail("stream \(descriptor.stream) of \(name) is used twice or reserved")
            }
            guard descriptor.md5.count == 32, Hex.decode(descriptor.md5) != nil, descriptor.sha256.count == 64, Hex.decode(descriptor.sha256) != nil else {
                throw fail("\(name) has a malformed digest")
            }
            for (previous, next) in zip(descriptor.chunks, descriptor.chunks.dropFirst()) where next.offset <= previous.offset {
                throw fail("\(name): its chunks are not in file order (offset \(next.offset) after \(previous.offset))")
            }
            for (sequence, chunk) in descriptor.chunks.enumerated() {
                let isLast = sequence == descriptor.chunks.count - 1
                guard chunk.rawLength >= 1, chunk.rawLength <= chunkSize, isLast || chunk.rawLength == chunkSize else {
                    throw fail("\(name), chunk \(sequence) has raw length \(chunk.rawLength) (chunk size \(chunkSize))")
                }
                let (end, overflow) = chunk.offset.addingReportingOverflow(UInt64(ArchiveFormat.frameHeaderLength) + UInt64(chunk.storedLength))
                guard chunk.offset >= header.dataOffset, !overflow, end <= dataEnd else {
                    throw fail("\(name), chunk \(sequence) (offset \(chunk.offset), stored length \(chunk.storedLength)) lies outside the data area \(header.dataOffset)..<\(dataEnd)")
                }
                extents.append((chunk.offset, end))
            }
            // Chunks lie inside the file without overlapping (checked below),
            // so these sums are bounded by the file size; checked all the same.
            let raw = descriptor.chunks.lazy.map { UInt64($0.rawLength) }.checkedSum
            let stored = descriptor.chunks.lazy.map { UInt64($0.storedLength) }.checkedSum
            guard raw == descriptor.rawBytes, stored == descriptor.storedBytes else {
                throw fail("\(name): rawBytes/storedBytes (\(descriptor.rawBytes)/\(descriptor.storedBytes)) are not the sums over its chunks (\(raw.map(String.init) ?? "overflow")/\(stored.map(String.init) ?? "overflow"))")
            }
        }
        guard let computed = computedTotals else { throw fail("the totals over the tables and streams do not fit in 64 bits") }
        guard totals == computed else {
            throw fail("totals (rows \(totals.rows), rawBytes \(totals.rawBytes), storedBytes \(totals.storedBytes)) are not the sums over the streams (\(computed.rows), \(computed.rawBytes), \(computed.storedBytes))")
        }
        for (field, value) in [("rows", totals.rows), ("rawBytes", totals.rawBytes), ("storedBytes", totals.storedBytes)] where value > Self.maximumTotal {
            throw fail("totals.\(field) is \(value), above the limit of \(Self.maximumTotal)")
        }
        extents.sort { $0.start < $1.start }
        for (previous, next) in zip(extents, extents.dropFirst()) where next.start < previous.end {
            throw fail("chunks at offsets \(previous.start) and \(next.start) overlap")
        }
        try DatabaseRecordValidation.validate(database, roles)
    }

    /// The rules of FORMAT.md, "Incremental backups", for a manifest's own
    /// part: the referenced parts are checked against the archive that
    /// holds them when it is opened (`Table.sameData`), not here, since
    /// their chunks are not in this file.
    private func validateReferences() throws {
        func fail(_ detail: String) -> ArchiveError { .invalidManifest(detail) }
        if let base {
            guard formatVersion >= 5 else { throw fail("base is a field of version 5 on, not of version \(formatVersion)") }
            guard BackupID(base) != nil, base != backupId else { throw fail("base \"\(base.prefix(64))\" is not the id of another backup") }
        }
        var referencedStreams = Set<String>()
        for table in tables {
            guard let storedIn = table.storedIn else { continue }
            let name = "table \(table.qualifiedName)"
            guard formatVersion >= 5 else { throw fail("\(name): storedIn is a field of version 5 on, not of version \(formatVersion)") }
            guard BackupID(storedIn) != nil, storedIn != backupId else {
                throw fail("\(name) is stored in \"\(storedIn.prefix(64))\", which is not the id of another backup")
            }
            for (index, part) in table.parts.enumerated() {
                let partName = table.displayName(part: index)
                // Stream ids are those of the archive that holds the parts:
                // unique per archive, a namespace apart from this file's.
                guard referencedStreams.insert("\(storedIn) \(part.stream)").inserted, part.stream != ArchiveFormat.manifestStreamID else {
                    throw fail("stream \(part.stream) of \(partName) in \(storedIn) is used twice or reserved")
                }
                guard part.md5.count == 32, Hex.decode(part.md5) != nil, part.sha256.count == 64, Hex.decode(part.sha256) != nil else {
                    throw fail("\(partName) has a malformed digest")
                }
                for (previous, next) in zip(part.chunks, part.chunks.dropFirst()) where next.offset <= previous.offset {
                    throw fail("\(partName): its chunks are not in file order (offset \(next.offset) after \(previous.offset))")
                }
                for (sequence, chunk) in part.chunks.enumerated() {
                    let (_, overflow) = chunk.offset.addingReportingOverflow(UInt64(ArchiveFormat.frameHeaderLength) + UInt64(chunk.storedLength))
                    guard chunk.rawLength >= 1, chunk.rawLength <= ArchiveFormat.chunkSizeRange.upperBound, !overflow,
                          chunk.offset >= UInt64(ArchiveFormat.headerLength)
                    else {
                        throw fail("\(partName), chunk \(sequence) (offset \(chunk.offset), lengths \(chunk.rawLength)/\(chunk.storedLength)) cannot lie in any archive")
                    }
                }
                let raw = part.chunks.lazy.map { UInt64($0.rawLength) }.checkedSum
                let stored = part.chunks.lazy.map { UInt64($0.storedLength) }.checkedSum
                guard raw == part.rawBytes, stored == part.storedBytes else {
                    throw fail("\(partName): rawBytes/storedBytes (\(part.rawBytes)/\(part.storedBytes)) are not the sums over its chunks")
                }
            }
        }
    }

    /// The longest frame (header and stored payload) the manifest lists: what
    /// a reader of every chunk needs as a buffer, bounded by the file.
    public var largestFrameLength: Int {
        streams.lazy.flatMap(\.descriptor.chunks).map { ArchiveFormat.frameHeaderLength + Int($0.storedLength) }.max() ?? 0
    }

    /// `prefix`: the path of the element that was decoded, in the whole manifest.
    private static func describe(_ error: DecodingError, at prefix: String) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = prefix + context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return keys.isEmpty ? "the top level" : String(keys.drop { $0 == "." })
        }
        switch error {
        case .keyNotFound(let key, let context): return "field \(key.stringValue) is missing at \(path(context))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "\(path(context)) has the wrong type"
        case .dataCorrupted(let context) where context.debugDescription == CopyFormat.invalid:
            return "\(path(context)) \(CopyFormat.invalid)"
        case .dataCorrupted(let context): return "it is not valid JSON (\(path(context)))"
        @unknown default: return "it cannot be decoded"
        }
    }
}

extension Manifest {
    /// Timestamps as the manifest writes them: RFC 3339, UTC, milliseconds.
    public static func timestamp(_ date: Date) -> String {
        date.formatted(
            Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!))
    }

    /// Parses a timestamp; also accepts RFC 3339 without fractional seconds.
    public static func date(fromTimestamp text: String) -> Date? {
        (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) ?? (try? Date.ISO8601FormatStyle().parse(text))
    }
}

extension Sequence<UInt64> {
    /// The sum, or nil when it does not fit: numbers read from an archive
    /// may be anything, and an overflowing `+` would stop the process.
    public var checkedSum: UInt64? {
        var sum: UInt64 = 0
        for value in self {
            let (next, overflow) = sum.addingReportingOverflow(value)
            if overflow { return nil }
            sum = next
        }
        return sum
    }
}

/// What every stream entry of the manifest has: its id, lengths, digests
/// and chunk index. Table parts, the schema dump and large objects are streams.
public protocol StreamDescriptor: Sendable {
    var stream: UInt32 { get }
    var rawBytes: UInt64 { get }
    var storedBytes: UInt64 { get }
    var md5: String { get }
    var sha256: String { get }
    var chunks: [Manifest.Chunk] { get }
}
