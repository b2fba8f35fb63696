import ArcaFormat
import ArcaPostgres
import Foundation

/// Exact evidence, other than reading a table, that it did not change
/// between the base backup's snapshot and this one: for example the
/// logical change stream, which can say that no change to a table was
/// decoded between the base's position and this snapshot's. A table it
/// names is referenced without being read; one it does not name is read
/// and compared (`UnchangedTables`). It must never name a table it is not
/// certain of: in doubt, a table is copied.
public protocol ChangeEvidence: Sendable {
    /// Of `candidates` (`schema.name`, unquoted), those certainly unchanged
    /// since `base` was taken. `anchor` is where this backup's snapshot
    /// stands in the change stream (nil: not anchored); `snapshot` is its
    /// connection, inside its transaction.
    func unchangedTables(
        _ candidates: [String], since base: Manifest, at anchor: Manifest.Anchor?, snapshot: PostgresConnection
    ) throws -> Set<String>
}

/// The backup an incremental one refers to: the newest backup of the same
/// database (by its source identity, FORMAT.md `source`; in the same
/// encoding: the COPY text's bytes mean the same) in the store the new one
/// is written to, readable with the key the new one is written with (so a
/// restore opens both with one key).
struct IncrementalBase {
    let reader: ArchiveReader
    var manifest: Manifest { reader.manifest }

    /// The newest such backup, or nil and why there is none.
    static func newest(
        in store: any ArchiveStore, database: Manifest.Source, key: ArchiveKey?, now: Date
    ) throws -> (IncrementalBase?, reason: String?) {
        var skipped: [String] = []
        for archive in try store.archives() {
            do {
                let source = try store.source(archive.id, sequential: false)
                let outline = try ArchiveOutline(source: source)
                // A plain archive beside encrypted ones could be anyone's (ArchiveTrust);
                // an encrypted one without a key cannot be compared with.
                guard outline.header.isEncrypted == (key != nil) else {
                    skipped.append("\(archive.id) is \(outline.header.isEncrypted ? "encrypted" : "not encrypted")")
                    continue
                }
                let reader = try ArchiveReader(source: source, outline: outline, key: key)
                let manifest = reader.manifest
                // Another service's backup of a database of the same name
                // (a shared bucket) is not a base: its owner's retention removes it.
                guard database.identity.matches(manifest.source.identity) else { continue }
                guard manifest.source.encoding == database.encoding else {
                    skipped.append("\(archive.id) is in encoding \(manifest.source.encoding), the database now in \(database.encoding)")
                    continue
                }
                guard !ArchiveTrust.isFutureDated(Manifest.date(fromTimestamp: manifest.startedAt), now: now) else {
                    skipped.append("\(archive.id) is dated in the future")
                    continue
                }
                return (IncrementalBase(reader: reader), nil)
            } catch {
                skipped.append("\(archive.id) cannot be read (\(error))")
            }
        }
        let reason = "no earlier backup of database \(database.database) in \(store.place) could serve as its base"
            + (skipped.isEmpty ? "" : " (\(skipped.prefix(3).joined(separator: "; ")))")
        return (nil, reason)
    }
}

/// Decides which tables of an incremental backup are exactly the base's,
/// so that they are stored as references to the archive holding them
/// instead of being copied again.
///
/// A table is a candidate when the base has a table of the same schema and
/// name with the same columns, whose parts cover the whole table (one part,
/// or ctid ranges from page 0 to the end without a gap). A candidate is
/// unchanged when `ChangeEvidence` says so, or when its COPY output, read
/// in this backup's snapshot exactly as the base read it (the same
/// statement for each part), has the same length, row count, MD5 and
/// SHA-256 as each of the base's parts: then the base's bytes are the bytes
/// this backup would write. Anything else is copied.
///
/// A table keeps the COPY format the base stored it in, and is read in that
/// format to compare. A table stored in binary is a candidate only when this
/// backup would copy it in binary too (`formats`): a column whose type
/// changed to one binary COPY cannot carry exactly must not stay binary,
/// and `--copy-format text` refers to no binary rows.
public struct UnchangedTables: Sendable {
    /// A table's reference: the archive holding its rows and their parts there.
    public struct Reference: Sendable {
        public var storedIn: String
        public var parts: [Manifest.Part]
        public var copyFormat: Manifest.CopyFormat
    }

    struct Candidate {
        /// Index into the backup's tables.
        var table: Int
        var reference: Reference
    }

    let candidates: [Candidate]

    /// The candidates among `tables` (this backup's, in its order, each
    /// to be copied in `formats`).
    init(base: Manifest, tables: [TableDescriptor], formats: [Manifest.CopyFormat]) {
        var entries: [String: Manifest.Table] = [:]
        for entry in base.tables { entries["\(entry.schema)\u{0}\(entry.name)"] = entry }
        candidates = tables.enumerated().compactMap { index, table in
            // A split part is read with a column list, as the copies split
            // only tables with columns, into at most 64 ranges; a base
            // (read from a file, so not trusted) that says otherwise is copied.
            guard let entry = entries["\(table.schema)\u{0}\(table.name)"], entry.columns == table.columns,
                  Self.coversWholeTable(entry.parts), entry.parts.count == 1 || (!table.columns.isEmpty && entry.parts.count <= 64),
                  entry.format == .text || formats[index] == .binary
            else { return nil }
            // Flattened: a table the base itself refers to points where it is stored.
            return Candidate(
                table: index, reference: Reference(storedIn: entry.storedIn ?? base.backupId, parts: entry.parts, copyFormat: entry.format))
        }
    }

    /// One part without a page range, or ranges `[0, e1), [e1, e2), …,
    /// [ek, end)`: the parts then hold every row of the table.
    static func coversWholeTable(_ parts: [Manifest.Part]) -> Bool {
        guard parts.count > 1 else { return parts.count == 1 && parts[0].firstPage == nil && parts[0].endPage == nil }
        guard parts[0].firstPage == 0, parts[parts.count - 1].endPage == nil else { return false }
        for (previous, next) in zip(parts, parts.dropFirst()) {
            guard let end = previous.endPage, let first = next.firstPage, end == first, first > (previous.firstPage ?? 0) else {
                return false
            }
        }
        return true
    }

    /// The statement that reads part `index` of a candidate as the base read it.
    static func statement(for table: TableDescriptor, reference: Reference, index: Int) -> String {
        let parts = reference.parts
        guard parts.count > 1 else { return BackupRunner.copyStatement(table, format: reference.copyFormat) }
        return BackupRunner.copyStatement(
            table, firstPage: parts[index].firstPage ?? 0, endPage: parts[index].endPage, format: reference.copyFormat)
    }

    /// Whether what this snapshot's COPY gave equals the base's part.
    static func matches(_ result: CopyResult, _ part: Manifest.Part) -> Bool {
        result.rows == part.rows && result.summary.rawBytes == part.rawBytes
            && result.summary.md5 == part.md5 && result.summary.sha256 == part.sha256
    }
}

extension BackupRunner {
    /// The tables of `source` stored as references to the base's archives,
    /// by index: those `ChangeEvidence` vouches for, and those whose COPY
    /// output, read in this snapshot without being written, equals the
    /// base's (`UnchangedTables`). The reads run over `jobs` connections
    /// beside the schema capture, as the copies do. `unread`: how many
    /// the evidence vouched for.
    func unchangedTables(
        _ source: Source, base: IncrementalBase, schema capture: SchemaCapture, writer: ArchiveWriter, reporter: ProgressReporter
    ) throws -> (references: [Int: UnchangedTables.Reference], unread: Int) {
        let unchanged = UnchangedTables(base: base.manifest, tables: source.tables, formats: source.formats)
        var references: [Int: UnchangedTables.Reference] = [:]
        var toRead = unchanged.candidates
        if let evidence = options.changeEvidence, !toRead.isEmpty {
            let certain = try evidence.unchangedTables(
                toRead.map { source.tables[$0.table].qualifiedName }, since: base.manifest, at: source.snapshot.anchor,
                snapshot: source.connection)
            for candidate in toRead where certain.contains(source.tables[candidate.table].qualifiedName) {
                references[candidate.table] = candidate.reference
            }
            toRead.removeAll { references[$0.table] != nil }
        }
        let unread = references.count
        guard !toRead.isEmpty else { return (references, unread) }
        var tasks: [CopyTask] = []
        var owners: [Int] = []  // the candidate of each task
        for (position, candidate) in toRead.enumerated() {
            let table = source.tables[candidate.table]
            let parts = candidate.reference.parts
            for index in parts.indices {
                tasks.append(CopyTask(
                    table: candidate.table, oid: table.oid, quotedTable: table.quotedName, stream: 0,
                    sql: UnchangedTables.statement(for: table, reference: candidate.reference, index: index),
                    name: parts.count == 1 ? table.qualifiedName : "\(table.qualifiedName) part \(index + 1)/\(parts.count)",
                    estimatedBytes: max(parts[index].rawBytes, source.sizes[candidate.table] / UInt64(parts.count)),
                    digestOnly: true))
                owners.append(position)
            }
        }
        let copy = ParallelCopy(
            tasks: tasks, jobs: options.jobs, source: options.source, snapshot: source.snapshot.source.snapshot,
            encoding: source.snapshot.source.encoding, lockTimeoutMilliseconds: options.lockTimeoutMilliseconds,
            archive: writer, level: options.compressionLevel, cancellation: options.cancellation)
        // Reading a table to compare it costs the server what copying it does.
        copy.limiter = limiter
        capture.stopping(copy)
        reporter.estimate(tables: tasks.count, bytes: tasks.lazy.map(\.estimatedBytes).checkedSum)
        reporter.phase("comparing tables with backup \(base.manifest.backupId)")
        let results = try copy.run {
            let status = copy.status()
            reporter.update(tablesDone: status.tasksDone, bytes: status.rawBytes, current: status.running.first)
            reporter.send()
        }
        var equal = [Bool](repeating: true, count: toRead.count)
        var partIndex = [Int](repeating: 0, count: toRead.count)
        for (task, position) in owners.enumerated() {
            let part = toRead[position].reference.parts[partIndex[position]]
            partIndex[position] += 1
            if !UnchangedTables.matches(results[task], part) { equal[position] = false }
        }
        for (position, candidate) in toRead.enumerated() where equal[position] {
            references[candidate.table] = candidate.reference
        }
        return (references, unread)
    }
}
