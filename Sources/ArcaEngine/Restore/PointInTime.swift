import ArcaFormat
import ArcaPostgres
import Foundation

/// Chooses, for a point-in-time restore, the newest backup anchored in
/// the change stream that lies before the target, and the segments from
/// its anchor to the target, after checking that they reach it without
/// a gap or a schema change that cannot be replayed.
public enum PointInTime {
    /// What the stream has recorded for one slot: the oldest and newest
    /// instants a restore can reach, from the backups and the segments.
    public struct Window: Codable, Sendable, Equatable {
        public var slot: String
        public var oldest: String?
        public var newest: String?
        public var segments: Int

        public init(slot: String, oldest: String?, newest: String?, segments: Int) {
            self.slot = slot
            self.oldest = oldest
            self.newest = newest
            self.segments = segments
        }
    }

    struct SegmentInfo {
        let id: SegmentID
        let path: String
        let changes: Manifest.ChangeData
    }

    /// The segments of `log` that end after `lsn`, their manifests read
    /// (those in `known` are not read again). The names carry the LSNs, so
    /// the segments before `lsn` are left out without being opened.
    static func segmentInfos(
        _ log: ChangeLog, key: ArchiveKey?, endingAfter lsn: UInt64 = 0, known: [SegmentID: SegmentInfo] = [:]
    ) throws -> [SegmentInfo] {
        try log.segments().filter { $0.endLSN > lsn }.map { id in
            if let info = known[id] { return info }
            let path = log.path(id)
            let manifest = try segmentReader(path, key: key).manifest
            guard let changes = manifest.changes, SegmentID(manifest.backupId) == id, changes.slot == log.slot else {
                throw ReplayError.malformed(segment: path, detail: "its manifest does not describe segment \(id) of slot \(log.slot)")
            }
            return SegmentInfo(id: id, path: path, changes: changes)
        }
    }

    /// Opens a segment under the rule archives are opened under
    /// (`ArchiveTrust`): with a key configured, a plain segment is refused,
    /// since it could be anyone's (a segment's schema changes are run).
    static func segmentReader(_ path: String, key: ArchiveKey?) throws -> ArchiveReader {
        try ArchiveTrust.reader(of: try FileSource(path: path), archive: path, key: key, allowUnencrypted: false)
    }

    /// The unbroken run of segments from the one holding `anchor` on: all
    /// of one stream (`slotStart` at or before the anchor), each starting
    /// where the previous ended.
    static func chain(from anchor: UInt64, _ segments: [SegmentInfo], slot: String) throws -> [SegmentInfo] {
        let candidates = segments.filter { $0.changes.slotStart <= anchor && $0.changes.endLSN > anchor }
        guard let first = candidates.first else { return [] }
        guard first.changes.startLSN <= anchor else { throw ReplayError.gap(slot: slot, after: LSN(anchor).description) }
        var run = [first]
        for next in candidates.dropFirst() {
            guard next.changes.slotStart == first.changes.slotStart else { break }
            guard next.changes.startLSN == run.last!.changes.endLSN else {
                throw ReplayError.gap(slot: slot, after: run.last!.changes.lastCommitAt ?? LSN(run.last!.changes.endLSN).description)
            }
            run.append(next)
        }
        return run
    }

    /// Where replay toward `target` stops: the commit LSN of the first
    /// transaction (in stream order) past it; nil when the segments hold
    /// none (the target lies beyond them). Found in the manifests, and in
    /// the records of the one segment the target falls in.
    static func stopLSN(_ target: ReplayTarget, _ segments: [SegmentInfo], key: ArchiveKey?) throws -> UInt64? {
        let date: Date
        switch target {
        case .lsn(let lsn): return lsn == .max ? lsn : lsn + 1
        case .time(let time): date = time
        }
        guard let segment = segments.first(where: { info in
            info.changes.lastCommitAt.flatMap(Manifest.date(fromTimestamp:)).map { $0 > date } ?? false
        }) else { return nil }
        struct Found: Error { let lsn: UInt64 }
        do {
            let reader = try segmentReader(segment.path, key: key)
            try reader.readChanges(checking: .chunkContent) { record in
                guard record.first == UInt8(ascii: "B") else { return }
                if case .begin(let finalLSN, let commitTime, _) = try PgOutputMessage.decode(record),
                   PostgresTime.date(microseconds: commitTime) > date {
                    throw Found(lsn: finalLSN)
                }
            }
        } catch let found as Found {
            return found.lsn
        } catch let error as PgOutputMessage.Malformed {
            throw ReplayError.malformed(segment: segment.path, detail: "\(error)")
        }
        return nil
    }

    /// The backups of `repository` with an anchor, newest first.
    /// With `strict`, a backup whose manifest cannot be read (no key) is
    /// an error rather than one without an anchor.
    static func anchoredBackups(_ repository: Repository, key: ArchiveKey?, strict: Bool = false) throws -> [(id: BackupID, path: String, anchor: Manifest.Anchor)] {
        try repository.backupIDs().compactMap { id in
            let path = repository.archivePath(id)
            let manifest: Manifest
            do {
                manifest = try ArchiveReader(source: try FileSource(path: path), key: key).manifest
            } catch {
                if strict { throw error }
                return nil
            }
            return manifest.anchor.map { (id, path, $0) }
        }
    }

    public static func plan(
        repository: Repository, target: ReplayTarget, key: ArchiveKey?, tables filter: TableFilter? = nil
    ) throws -> ReplayPlan {
        let backups = try anchoredBackups(repository, key: key)
        guard !backups.isEmpty else { throw ReplayError.noAnchoredBackup(target: target.description, repository: repository.root) }
        var segmentsBySlot: [String: [SegmentInfo]] = [:]
        func segments(_ slot: String) throws -> [SegmentInfo] {
            if let known = segmentsBySlot[slot] { return known }
            // All of them, not only those after an anchor: the target's
            // stop point may lie before every anchor, and must be found.
            let infos = try segmentInfos(ChangeLog(repository: repository, slot: slot), key: key)
            segmentsBySlot[slot] = infos
            return infos
        }
        var newestRecorded: String?
        var lastError: Error?
        // Newest first: the first backup whose chain reaches the target wins.
        for backup in backups {
            let all = try segments(backup.anchor.slot)
            // The backup holds every transaction before its anchor: usable
            // when none of them is past the target's stop.
            guard let stop = try stopLSN(target, all, key: key) else {
                lastError = ReplayError.beyondWindow(target: target.description, newest: all.last?.changes.lastCommitAt)
                continue
            }
            guard backup.anchor.lsn <= stop else { continue }
            do {
                let run = try chain(from: backup.anchor.lsn, all, slot: backup.anchor.slot)
                newestRecorded = run.last?.changes.lastCommitAt
                // The run must reach past the target…
                let reaches: Bool = switch target {
                case .lsn(let lsn): run.last.map { $0.changes.endLSN >= lsn } ?? false
                case .time(let date): run.last?.changes.lastCommitAt.flatMap(Manifest.date(fromTimestamp:)).map { $0 >= date } ?? false
                }
                guard reaches else { throw ReplayError.beyondWindow(target: target.description, newest: newestRecorded) }
                // … with every schema change before it replayable.
                var used: [SegmentInfo] = []
                for info in run {
                    used.append(info)
                    for change in info.changes.schemaChanges where change.commitLSN >= backup.anchor.lsn {
                        let before: Bool = switch target {
                        case .lsn(let lsn): change.commitLSN <= lsn
                        case .time(let date): Manifest.date(fromTimestamp: change.commitAt).map { $0 <= date } ?? true
                        }
                        guard before else { continue }
                        if !change.replayable {
                            throw ReplayError.unreplayableSchemaChange(tag: change.tag, at: change.commitAt, reason: change.reason ?? "it is recorded as not replayable")
                        }
                        if filter != nil { throw ReplayError.schemaChangeInSubset(tag: change.tag, at: change.commitAt) }
                    }
                    let past: Bool = switch target {
                    case .lsn(let lsn): info.changes.endLSN > lsn
                    case .time(let date): info.changes.lastCommitAt.flatMap(Manifest.date(fromTimestamp:)).map { $0 > date } ?? false
                    }
                    if past { break }
                }
                // A --table restore replays the changes of the tables it restores.
                let tables = try filter.map { filter in
                    Set(try ArchiveReader(source: try FileSource(path: backup.path), key: key).manifest.tables
                        .filter { filter.matches(schema: $0.schema, name: $0.name) }
                        .map { Manifest.ChangeData.TableName(schema: $0.schema, name: $0.name) })
                }
                return ReplayPlan(
                    backup: backup.id, archivePath: backup.path, anchor: backup.anchor, segments: used.map(\.path), target: target, key: key,
                    tables: tables)
            } catch let error as ReplayError {
                // An older backup may lie before the schema change or the gap.
                lastError = error
                continue
            }
        }
        if let lastError { throw lastError }
        throw ReplayError.noAnchoredBackup(target: target.description, repository: repository.root)
    }

    /// The instants a restore can reach through `slot`: from the oldest
    /// anchored backup's completion (its snapshot was taken before) to the
    /// newest segment's last commit. Read from manifests only: the gaps
    /// and schema changes a restore checks are not looked for here.
    public static func window(repository: Repository, slot: String, key: ArchiveKey?) throws -> Window {
        let log = ChangeLog(repository: repository, slot: slot)
        let segments = try log.segments()
        let newest = try segments.last.map { id in
            try segmentReader(log.path(id), key: key).manifest.changes?.lastCommitAt
        } ?? nil
        let oldest = try repository.backupIDs().reversed().lazy.compactMap { id -> Manifest? in
            try? ArchiveReader(source: try FileSource(path: repository.archivePath(id)), key: key).manifest
        }.first { $0.anchor?.slot == slot }?.completedAt
        return Window(slot: slot, oldest: oldest, newest: newest, segments: segments.count)
    }
}
