import ArcaEngine
import ArcaFormat
import ArcaPostgres
import Foundation

/// The change stream at a glance: how far behind it is, what it keeps
/// the server from recycling, and which instants can be restored.
public struct StreamStatus: Codable, Sendable {
    public var slot: String
    /// Whether the server has the slot, and a streamer is attached (nil:
    /// the database could not be asked).
    public var slotExists: Bool?
    public var active: Bool?
    /// WAL written since the slot's confirmed position: not yet in a segment.
    public var lagBytes: UInt64?
    /// WAL the slot keeps the server from recycling.
    public var retainedWALBytes: UInt64?
    /// Seconds since the newest restorable instant.
    public var lagSeconds: Double?
    public var oldestRestorable: String?
    public var newestRestorable: String?
    public var segments: Int
    /// Tables whose updates and deletes the publication cannot carry.
    public var tablesWithoutReplicaIdentity: [String]?
}

extension Operations {
    /// The stream of each slot the repository has segments of, and of the
    /// configured slot when `ARCA_CONTINUOUS` is on; problems for `status`.
    func streamStatuses(now: Date) -> (streams: [StreamStatus], problems: [String]) {
        var slots = Set(ChangeLog.slots(in: repository))
        var connection: PostgresConnection?
        if let database = configuration.database, configuration.continuous || !slots.isEmpty {
            connection = try? PostgresConnection(database, applicationName: "arca status")
            if configuration.continuous {
                if let slot = configuration.streamSlot ?? connection.map({ ReplicationNames.defaultSlot(database: $0.database) }) { slots.insert(slot) }
            }
        }
        defer { connection?.close() }
        var streams: [StreamStatus] = [], problems: [String] = []
        for slot in slots.sorted() {
            let window = (try? PointInTime.window(repository: repository, slot: slot, key: configuration.encryptionKey))
                ?? PointInTime.Window(slot: slot, oldest: nil, newest: nil, segments: 0)
            var stream = StreamStatus(
                slot: slot, oldestRestorable: window.oldest, newestRestorable: window.newest, segments: window.segments)
            stream.lagSeconds = window.newest.flatMap(Manifest.date(fromTimestamp:)).map { max(0, now.timeIntervalSince($0)) }
            if let connection {
                let row = try? connection.query(
                    """
                    SELECT active, pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
                           pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::bigint
                      FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND database = pg_catalog.current_database()
                    """, [slot], during: "reading the replication slot").rows
                if let rows = row {
                    stream.slotExists = !rows.isEmpty
                    stream.active = rows.first.map { $0[0] == "t" }
                    stream.lagBytes = rows.first?[1].flatMap { UInt64($0) }
                    stream.retainedWALBytes = rows.first?[2].flatMap { UInt64($0) }
                }
                if let lacking = try? StreamSetup.tablesLackingIdentity(connection) {
                    stream.tablesWithoutReplicaIdentity = lacking.map { "\($0.schema).\($0.name)" }
                }
            }
            if let lag = stream.lagSeconds, lag > Double(configuration.maxLagSeconds) {
                problems.append("The change stream of slot \(slot) is \(Int(lag)) s behind (ARCA_MAX_LAG_SECONDS is \(configuration.maxLagSeconds)): instants after \(window.newest ?? "?") cannot be restored yet. Is `arca stream` running?")
            }
            if stream.slotExists == false, configuration.continuous {
                problems.append("The replication slot \(slot) does not exist: no change is being recorded. Run `arca stream`.")
            }
            if stream.slotExists == true, let lacking = stream.tablesWithoutReplicaIdentity, !lacking.isEmpty {
                problems.append("\(lacking.count) table(s) have no primary key or replica identity, and the server refuses their updates and deletes while the stream's publication exists: \(lacking.prefix(10).joined(separator: ", ")). Add a primary key, or set ARCA_REPLICA_IDENTITY_FULL=1 and restart `arca stream`.")
            }
            streams.append(stream)
        }
        return (streams, problems)
    }
}
