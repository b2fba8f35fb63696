import ArcaFormat
import ArcaPostgres
import Foundation

/// What `arca stream` is given.
public struct StreamOptions: Sendable {
    public var source: ConnectionString
    public var repository: Repository
    /// The replication slot (default `ReplicationNames.defaultSlot`).
    public var slot: String
    /// A segment closes this long after it opened (`ARCA_SEGMENT_SECONDS`).
    public var segmentSeconds: Double = 60
    /// … or once it holds this many raw bytes, at the next commit.
    public var segmentBytes: UInt64 = 64 << 20
    public var chunkSize: UInt32 = ArchiveFormat.defaultChunkSize
    public var compressionLevel = BackupOptions.defaultCompressionLevel
    public var encryptionKey: ArchiveKey?
    public var cloud: CloudStore?
    /// Let the stream set REPLICA IDENTITY FULL on tables without a key.
    public var replicaIdentityFull = false
    public var cancellation = Cancellation()
    /// Reconnection after a lost connection waits 1 s, doubling up to this.
    public var maximumRetryDelay: Double = 30

    public init(source: ConnectionString, repository: Repository, slot: String) {
        self.source = source
        self.repository = repository
        self.slot = slot
    }
}

/// What the streamer reports as it runs.
public enum StreamEvent: Sendable {
    case started(slot: String, from: String)
    case segment(id: String, transactions: UInt64, rawBytes: UInt64, bytes: UInt64, lastCommitAt: String?)
    case retrying(after: Double, reason: String)
    case ignoredMessage(String)
    /// A schema change the stream cannot replay: a full backup starts now,
    /// and instants from it until that backup cannot be restored.
    case backupForced(reason: String)
}

/// `arca stream`: keeps the slot's changes flowing into change segments.
///
/// Decoded transactions are written, as they arrive, into a segment file
/// in the repository; at a commit after `segmentSeconds` (or
/// `segmentBytes`) the segment is closed (the sequences' values captured
/// into its manifest), fsynced, renamed into place and uploaded, and only
/// then is the slot's confirmed position advanced to its end. Whatever
/// happens before that (a crash, `kill -9`, a lost connection, a server
/// restart) the slot still holds the transactions, and the next run gets
/// them again: a transaction is in a segment or still in the slot, never
/// lost. A heartbeat transaction every `segmentSeconds` keeps segments
/// closing (and the restorable window moving) when the database is idle.
public final class ChangeStreamer {
    public let options: StreamOptions
    private let log: ChangeLog

    public init(options: StreamOptions) {
        self.options = options
        log = ChangeLog(repository: options.repository, slot: options.slot)
    }

    /// Runs until cancelled; reconnects after lost connections.
    public func run(_ report: (StreamEvent) -> Void) throws {
        try log.prepare()
        guard let lock = try FileLock(path: log.directory + "/stream.lock", mode: .exclusive) else {
            throw StreamError.alreadyStreaming(slot: options.slot, repository: options.repository.root)
        }
        defer { lock.release() }
        lock.write("stream \(getpid())")
        FileSystem.remove(partialPath)
        var delay = 1.0
        while !options.cancellation.isCancelled {
            do {
                try stream(report) { delay = 1 }
                return
            } catch where Self.isRetryable(error) {
                report(.retrying(after: delay, reason: "\(error)"))
                sleepUnlessCancelled(delay)
                delay = min(delay * 2, options.maximumRetryDelay)
            }
        }
    }

    /// Lost connections and a bucket that failed: the slot holds
    /// everything not yet confirmed, so trying again loses nothing.
    static func isRetryable(_ error: any Error) -> Bool {
        switch error {
        // 55006: the slot is still held by the walsender of a run that
        // died (kill -9); the server frees it once it notices.
        case PostgresError.server(let error, _) where error.sqlState == "55006": true
        case let error as PostgresError: error.isConnectionProblem
        case StreamError.server(let error, _): error.isConnectionProblem
        case StreamError.upload: true
        default: false
        }
    }

    private func sleepUnlessCancelled(_ seconds: Double) {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end, !options.cancellation.isCancelled { Thread.sleep(forTimeInterval: 0.1) }
    }

    var partialPath: String { log.directory + "/segment.partial" }

    /// The session settings the walsender formats values under: the same
    /// the restore parses them under (SessionSettings.portable).
    static let valueFormat = "-c datestyle=ISO,YMD -c intervalstyle=postgres -c extra_float_digits=3 -c bytea_output=hex -c timezone=UTC"

    private func stream(_ report: (StreamEvent) -> Void, connected: () -> Void) throws {
        let control = try PostgresConnection(options.source, applicationName: "arca stream")
        defer { control.close() }
        let setup = StreamSetup(target: options.source, slot: options.slot)
        let key = try setup.install(control, replicaIdentityFull: options.replicaIdentityFull)
        let replicationTarget = options.source.setting(
            "options", to: [options.source.value("options"), Self.valueFormat].compactMap { $0 }.joined(separator: " "))
        let replication = try ReplicationConnection(replicationTarget, applicationName: "arca stream")
        defer { replication.close() }
        let slotStart = try beginSlot(setup, control, replication)
        var position = try resumePosition(slotStart: slotStart)
        let bucketFolder = CloudStore.segmentFolder(slot: options.slot, source: try SourceIdentity.read(control))
        if let cloud = options.cloud { try uploadMissing(to: cloud, folder: bucketFolder) }
        try replication.startStreaming(slot: options.slot, publication: ReplicationNames.publication, from: LSN(position))
        connected()
        report(.started(slot: options.slot, from: LSN(position).description))

        var segment: SegmentBuilder?
        var relations: [UInt32: (bytes: [UInt8], relation: PgOutputMessage.Relation)] = [:]
        var inTransaction = false, skipping = false
        var transactionChanges: [SchemaChangeMessage] = []
        var lastStatus = Date(), lastHeartbeat = Date.distantPast
        defer { segment?.discard() }

        func close() throws {
            guard let built = segment, built.transactions > 0 else { return }
            segment = nil
            let sequences = try captureSequences(control)
            let id = try built.finish(sequences: sequences)
            if let cloud = options.cloud { try upload(id, to: cloud, folder: bucketFolder) }
            position = id.endLSN
            try replication.sendStatus(written: LSN(position), flushed: LSN(position))
            lastStatus = Date()
            report(.segment(
                id: id.description, transactions: built.transactions, rawBytes: built.rawBytes,
                bytes: FileSystem.size(log.path(id)) ?? 0, lastCommitAt: built.lastCommitAt))
            if let change = built.unreplayable.first {
                report(.backupForced(reason: "a schema change (\(change.tag)) committed at \(change.commitAt) cannot be replayed: \(change.reason ?? "")"))
            }
        }

        while !options.cancellation.isCancelled {
            let now = Date()
            if now.timeIntervalSince(lastHeartbeat) >= options.segmentSeconds {
                try control.execute(
                    "SELECT pg_catalog.pg_logical_emit_message(true, \(SQLIdentifier.literal(ReplicationNames.heartbeatPrefix)), '')",
                    during: "sending the stream's heartbeat")
                lastHeartbeat = now
            }
            if !inTransaction, let open = segment, open.isDue(now: now, seconds: options.segmentSeconds, bytes: options.segmentBytes) {
                try close()
            }
            if now.timeIntervalSince(lastStatus) >= 10 {
                try replication.sendStatus(written: LSN(position), flushed: LSN(position))
                lastStatus = now
            }
            switch try replication.read(timeout: 0.5) {
            case .timeout:
                continue
            case .keepalive(_, let replyRequested):
                if replyRequested {
                    try replication.sendStatus(written: LSN(position), flushed: LSN(position))
                    lastStatus = Date()
                }
            case .data(_, _, let data):
                guard data.count <= Int(Manifest.ChangeData.maximumRecordLength) else {
                    throw StreamError.recordTooLarge(table: "(a transaction's change)", bytes: data.count)
                }
                let message: PgOutputMessage
                do {
                    message = try PgOutputMessage.decode(data)
                } catch {
                    throw PostgresError.unexpectedResponse(during: "decoding the change stream", message: "\(error)")
                }
                switch message {
                case .begin(let finalLSN, _, _):
                    inTransaction = true
                    transactionChanges = []
                    // Already in a segment: the server resends from the slot's
                    // confirmed position, which may lag the last segment.
                    skipping = finalLSN < position
                    if skipping { continue }
                    if segment == nil {
                        segment = try SegmentBuilder(
                            log: log, path: partialPath, slotStart: slotStart, startLSN: position, options: options)
                    }
                    try segment!.append(data)
                case .relation(let relation):
                    relations[relation.oid] = (Array(data), relation)
                    if inTransaction, !skipping { try segment!.append(data, relation: relation.oid) }
                case .insert, .update, .delete, .truncate:
                    guard inTransaction, !skipping else { continue }
                    for oid in message.relationOIDs {
                        guard let known = relations[oid] else {
                            throw PostgresError.unexpectedResponse(during: "decoding the change stream", message: "a change to relation \(oid) before its description")
                        }
                        try segment!.describe(oid, known.bytes)
                        segment!.touched(.init(schema: known.relation.schema, name: known.relation.name))
                    }
                    try segment!.append(data)
                case .message(let transactional, _, let prefix, let content):
                    guard transactional, inTransaction, !skipping else { continue }
                    if prefix == ReplicationNames.ddlPrefix {
                        guard let change = SchemaChangeMessage.authenticated(content, key: key) else {
                            report(.ignoredMessage("a logical message with the prefix \(prefix) that the schema-change triggers did not write"))
                            continue
                        }
                        transactionChanges.append(change)
                        try segment!.append(data)
                    }
                case .commit(let commitLSN, let endLSN, let commitTime):
                    guard inTransaction else { continue }
                    inTransaction = false
                    guard !skipping else { continue }
                    try segment!.append(data)
                    segment!.committed(
                        commitLSN: commitLSN, endLSN: endLSN, at: PostgresTime.date(microseconds: commitTime), schemaChanges: transactionChanges)
                case .ignored:
                    continue
                }
            }
        }
        // A clean stop closes what it holds: the window reaches the last commit.
        if !inTransaction { try close() }
    }

    /// Where this run's first segment starts: the end of the newest segment
    /// of the same stream (its slot begun at `slotStart`), else the slot's
    /// beginning. Segments of an earlier stream (a slot made again, another
    /// server) say nothing of this one.
    private func resumePosition(slotStart: UInt64) throws -> UInt64 {
        guard let newest = try log.segments().last else { return slotStart }
        let changes = try PointInTime.segmentReader(log.path(newest), key: options.encryptionKey).manifest.changes
        return changes?.slotStart == slotStart ? max(slotStart, newest.endLSN) : slotStart
    }

    /// Makes the slot if it does not exist, and returns where its stream
    /// began (recorded in `slot.json`; a new slot begins a new stream).
    private func beginSlot(_ setup: StreamSetup, _ control: PostgresConnection, _ replication: ReplicationConnection) throws -> UInt64 {
        let recorded = try log.slotRecord()
        if let existing = try setup.slotPosition(control) {
            guard existing.database == control.database else {
                throw OperationError.invalidConfiguration(
                    "Replication slot \(options.slot) belongs to database \(existing.database), not \(control.database). Choose another slot with --slot.")
            }
            if let recorded, recorded.slot == options.slot, recorded.startLSN <= existing.confirmed { return recorded.startLSN }
            // A slot Arca did not record: its stream begins where it stands.
            try log.record(.init(slot: options.slot, startLSN: existing.confirmed, createdAt: Manifest.timestamp(Date()), database: control.database))
            return existing.confirmed
        }
        let created = try replication.createSlot(options.slot, temporary: false)
        try log.record(.init(slot: options.slot, startLSN: created.consistentPoint.value, createdAt: Manifest.timestamp(Date()), database: control.database))
        return created.consistentPoint.value
    }

    private func captureSequences(_ connection: PostgresConnection) throws -> [Manifest.Sequence] {
        let sequences = try Catalog.sequences(connection)
        let states = try Catalog.sequenceStates(sequences, connection)
        return zip(sequences, states).map { sequence, state in
            Manifest.Sequence(schema: sequence.schema, name: sequence.name, lastValue: state.lastValue, isCalled: state.isCalled, ownedBy: nil)
        }
    }

    private func upload(_ id: SegmentID, to cloud: CloudStore, folder: String) throws {
        do {
            try cloud.upload(segmentAt: log.path(id), id: id, folder: folder)
        } catch {
            throw StreamError.upload(segment: id.description, place: cloud.place, underlying: "\(error)")
        }
    }

    /// Segments written while the bucket was unreachable go up before anything new.
    private func uploadMissing(to cloud: CloudStore, folder: String) throws {
        let stored = Set(try cloud.segments(folder: folder))
        for id in try log.segments() where !stored.contains(id) { try upload(id, to: cloud, folder: folder) }
    }
}

/// One change segment being written: the archive in `segment.partial`,
/// what its manifest will say, and which relation descriptions it holds
/// (each segment carries those it uses, so it can be read alone).
final class SegmentBuilder {
    private let log: ChangeLog
    private let path: String
    private let sink: FileSink
    private let writer: ArchiveWriter
    private let header: FileHeader
    private let stream: StreamWriter
    private let slotStart: UInt64
    private let startLSN: UInt64
    private let openedAt = Date()
    private var endLSN: UInt64
    private var described = Set<UInt32>()
    private var tables = Set<Manifest.ChangeData.TableName>()
    private var schemaChanges: [Manifest.ChangeData.SchemaChange] = []
    private(set) var transactions: UInt64 = 0
    private var records: UInt64 = 0
    private(set) var rawBytes: UInt64 = 0
    private var firstCommitAt: String?
    private(set) var lastCommitAt: String?
    private var finished = false

    init(log: ChangeLog, path: String, slotStart: UInt64, startLSN: UInt64, options: StreamOptions) throws {
        self.log = log
        self.path = path
        self.slotStart = slotStart
        self.startLSN = startLSN
        endLSN = startLSN
        FileSystem.remove(path)
        sink = try FileSink(creatingExclusively: path)
        header = FileHeader(
            chunkSize: options.chunkSize, compression: .zstd, compressionLevel: Int8(clamping: options.compressionLevel), archiveID: .random())
        writer = try ArchiveWriter(sink: sink, header: header, key: try options.repository.writingKey(options.encryptionKey))
        stream = StreamWriter(archive: writer, encoder: writer.makeEncoder(level: options.compressionLevel), stream: 0)
    }

    func isDue(now: Date, seconds: Double, bytes: UInt64) -> Bool {
        transactions > 0 && (now.timeIntervalSince(openedAt) >= seconds || rawBytes >= bytes)
    }

    func append(_ message: UnsafeRawBufferPointer, relation: UInt32? = nil) throws {
        if let relation { described.insert(relation) }
        try ChangeRecords.recordHeader(UInt32(message.count)).withUnsafeBytes { try stream.append($0) }
        try stream.append(message)
        records += 1
        rawBytes += 4 + UInt64(message.count)
    }

    /// Writes relation `oid`'s description unless this segment has it.
    func describe(_ oid: UInt32, _ description: [UInt8]) throws {
        guard !described.contains(oid) else { return }
        try description.withUnsafeBytes { try append($0, relation: oid) }
    }

    func touched(_ table: Manifest.ChangeData.TableName) { tables.insert(table) }

    var unreplayable: [Manifest.ChangeData.SchemaChange] { schemaChanges.filter { !$0.replayable } }

    func committed(commitLSN: UInt64, endLSN: UInt64, at time: Date, schemaChanges changes: [SchemaChangeMessage]) {
        transactions += 1
        self.endLSN = endLSN
        let stamp = Manifest.timestamp(time)
        if firstCommitAt == nil { firstCommitAt = stamp }
        lastCommitAt = stamp
        for change in changes {
            let reason: String? = switch change.replayStatement {
            case .success: nil
            case .failure(let why): why.text
            }
            schemaChanges.append(.init(commitLSN: commitLSN, commitAt: stamp, tag: change.tag, replayable: reason == nil, reason: reason))
        }
    }

    /// Seals, fsyncs and publishes the segment; returns its id.
    func finish(sequences: [Manifest.Sequence]) throws -> SegmentID {
        let id = SegmentID(startLSN: startLSN, endLSN: endLSN)
        let summary = try stream.finish()
        var manifest = Manifest(
            archiveId: header.archiveID.description, backupId: id.description, startedAt: Manifest.timestamp(openedAt),
            completedAt: Manifest.timestamp(Date()), tool: .init(version: ArcaVersion.current),
            source: .init(database: log.slot, serverVersion: "", serverVersionNumber: 0, snapshot: "", systemIdentifier: nil, encoding: ""),
            compression: .init(level: Int(header.compressionLevel)), chunkSize: header.chunkSize, tables: [], sequences: sequences)
        manifest.changes = Manifest.ChangeData(
            slot: log.slot, slotStart: slotStart, startLSN: startLSN, endLSN: endLSN, transactions: transactions, records: records,
            firstCommitAt: firstCommitAt, lastCommitAt: lastCommitAt, tables: tables.sorted(), schemaChanges: schemaChanges,
            stream: 0, summary: summary)
        manifest.totals = Manifest.Totals(rows: 0, rawBytes: summary.rawBytes, storedBytes: summary.storedBytes)
        _ = try writer.finish(manifest: manifest)
        try sink.syncAndClose()
        finished = true
        try FileSystem.rename(path, to: log.path(id))
        try FileSystem.syncDirectory(log.directory)
        return id
    }

    func discard() {
        if !finished { FileSystem.remove(path) }
    }
}
