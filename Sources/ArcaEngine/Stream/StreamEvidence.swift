import ArcaFormat
import ArcaPostgres
import Foundation

/// What the change stream knows for an incremental backup: when both the
/// base and the new backup are anchored in one stream, and the segments
/// cover everything between the two anchors without a gap, a table no
/// transaction in that range changed (no row, no TRUNCATE) is certainly
/// unchanged and is referenced without being read. A schema change in the
/// range, a gap, or segments that do not reach the new anchor yet vouch
/// for nothing: every table is then compared by reading it.
public struct StreamEvidence: ChangeEvidence {
    public let repository: Repository
    public let key: ArchiveKey?
    /// How long to wait for the segment that covers the new anchor (the
    /// stream closes one every `ARCA_SEGMENT_SECONDS`) while its slot is
    /// active; 0: use what is there.
    public var wait: Double

    public init(repository: Repository, key: ArchiveKey?, wait: Double) {
        self.repository = repository
        self.key = key
        self.wait = wait
    }

    public func unchangedTables(
        _ candidates: [String], since base: Manifest, at anchor: Manifest.Anchor?, snapshot: PostgresConnection
    ) throws -> Set<String> {
        guard let from = base.anchor, let to = anchor, from.slot == to.slot, from.lsn <= to.lsn else { return [] }
        let log = ChangeLog(repository: repository, slot: to.slot)
        let deadline = Date().addingTimeInterval(wait)
        // While waiting, only the segments that appeared since are read.
        var known: [SegmentID: PointInTime.SegmentInfo] = [:]
        while true {
            let segments = try PointInTime.segmentInfos(log, key: key, endingAfter: from.lsn, known: known)
            for segment in segments { known[segment.id] = segment }
            let run = (try? PointInTime.chain(from: from.lsn, segments, slot: to.slot)) ?? []
            if let last = run.last, last.changes.endLSN >= to.lsn {
                return Self.untouched(candidates, run.filter { $0.changes.startLSN < to.lsn }, from: from.lsn, to: to.lsn)
            }
            if from.lsn == to.lsn { return Set(candidates) }
            guard Date() < deadline, try Self.isStreaming(to.slot, snapshot) else { return [] }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    /// The candidates none of `segments` changed, or none at all when a
    /// schema change lies between the anchors.
    static func untouched(_ candidates: [String], _ segments: [PointInTime.SegmentInfo], from: UInt64, to: UInt64) -> Set<String> {
        var touched = Set<String>()
        for segment in segments {
            if segment.changes.schemaChanges.contains(where: { $0.commitLSN >= from && $0.commitLSN < to }) { return [] }
            for table in segment.changes.tables { touched.insert("\(table.schema).\(table.name)") }
        }
        return Set(candidates).subtracting(touched)
    }

    static func isStreaming(_ slot: String, _ connection: PostgresConnection) throws -> Bool {
        try connection.query(
            "SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND active", [slot],
            during: "looking at the change stream's slot").rows.count > 0
    }
}
