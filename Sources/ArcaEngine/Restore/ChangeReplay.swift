import ArcaFormat
import ArcaPostgres
import Foundation

/// Where a point-in-time restore stops.
public enum ReplayTarget: Sendable, Equatable, CustomStringConvertible {
    /// The last transaction committed at or before this instant (in
    /// stream order: replay stops at the first commit after it, as
    /// PostgreSQL's recovery_target_time does).
    case time(Date)
    /// The transactions whose commit record starts at or before this LSN.
    case lsn(UInt64)

    public var description: String {
        switch self {
        case .time(let date): Manifest.timestamp(date)
        case .lsn(let lsn): "LSN \(LSN(lsn))"
        }
    }
}

/// What can make a replay refuse or fail. Nothing of a row is quoted.
public enum ReplayError: Error, Sendable, CustomStringConvertible {
    case noAnchoredBackup(target: String, repository: String)
    case beyondWindow(target: String, newest: String?)
    case gap(slot: String, after: String)
    case unreplayableSchemaChange(tag: String, at: String, reason: String)
    case schemaChangeInSubset(tag: String, at: String)
    case conflict(table: String, operation: String, lsn: String, rows: UInt64)
    case malformed(segment: String, detail: String)
    case missingRole(String)
    case notSuperuser

    public var description: String {
        switch self {
        case .noAnchoredBackup(let target, let repository):
            "No backup in \(repository) was taken while the change stream ran, before \(target): point-in-time restore starts from such a backup. Run `arca backup` while `arca stream` runs, then restore to an instant after it."
        case .beyondWindow(let target, let newest?):
            "\(target) is after the newest instant the change stream has recorded (\(newest)). Restore to an earlier instant, or wait for the stream to close its next segment."
        case .beyondWindow(let target, nil):
            "No change segment covers \(target). Is `arca stream` running for this database?"
        case .gap(let slot, let after):
            "The change segments of slot \(slot) have a gap after \(after) (a segment is missing, or the slot was dropped and made again): no instant after it can be reached from an earlier backup. Restore to an instant before it, or after a full backup taken since."
        case .unreplayableSchemaChange(let tag, let at, let reason):
            "A schema change (\(tag)) committed at \(at) cannot be replayed exactly: \(reason). Restore to an instant before it, or after the next full backup (`arca backup`), which the stream's schema changes are anchored to."
        case .schemaChangeInSubset(let tag, let at):
            "A schema change (\(tag)) committed at \(at) lies between the backup and the target; a --table restore cannot replay it. Restore the whole database, or choose an instant before it."
        case .conflict(let table, let operation, let lsn, let rows):
            "Replaying the change stream: the \(operation) of table \(table) in the transaction at \(lsn) matched \(rows) rows instead of one, so the backup and the stream disagree. Nothing was restored; verify the backup and the segments (`arca verify`)."
        case .malformed(let segment, let detail):
            "Change segment \(segment) is malformed: \(detail). Nothing was restored."
        case .missingRole(let role):
            "A schema change to replay was made by role \(role), which the target server does not have. Create it (or restore with --create-roles) and try again."
        case .notSuperuser:
            "Replaying the change stream needs a superuser on the target (session_replication_role = replica keeps triggers from firing twice)."
        }
    }
}

/// A backup and the segments that carry it to the target: what
/// `PointInTime.plan` chooses and a restore replays before it commits.
public struct ReplayPlan: Sendable {
    public var backup: BackupID
    public var archivePath: String
    public var anchor: Manifest.Anchor
    /// The segments to read, in stream order.
    public var segments: [String]
    public var target: ReplayTarget
    public var key: ArchiveKey?
    /// Only these tables' changes (a `--table` restore); nil: all.
    public var tables: Set<Manifest.ChangeData.TableName>?
}

/// Applies the transactions of change segments to a restored database,
/// in commit order, inside the restore's transaction: from the backup's
/// anchor up to the target. Each change becomes one prepared statement
/// with text parameters (the values as pgoutput sent them, formatted
/// under the same settings the session parses them with); identifiers
/// are quoted, no value is pasted into SQL.
final class ChangeReplay {
    let plan: ReplayPlan
    private var relations: [UInt32: PgOutputMessage.Relation] = [:]
    private var statements: [String: String] = [:]
    private var statementCount = 0
    private var relationVersions: [UInt32: Int] = [:]
    private(set) var transactions: UInt64 = 0
    private(set) var changes: UInt64 = 0
    private(set) var lastCommit: Int64?
    /// Changes in the transaction under way: one without any (the
    /// stream's heartbeat) is not counted as replayed.
    private var changesAtBegin: UInt64 = 0

    /// Row changes are pipelined (libpq's pipeline mode): sent without
    /// waiting for each result, which are read in order at each sync
    /// point, every `pipelineDepth` changes and before anything that is
    /// not a row change. A round trip per change was most of a replay's time.
    static let pipelineDepth = 256
    private var pipelining = false
    /// What each queued change must come to, in order.
    private var queued: [Queued] = []
    private struct Queued {
        let operation: String
        let table: String
        let lsn: UInt64
        /// An update or delete changes exactly one row.
        let expectsOneRow: Bool
    }

    init(plan: ReplayPlan) { self.plan = plan }

    private struct Stop: Error {}

    /// Replays into `connection`, which is inside a transaction.
    func apply(to connection: PostgresConnection, encoding: String) throws {
        do {
            try replay(into: connection, encoding: encoding)
        } catch {
            // Out of pipeline mode, so the restore can roll back.
            if pipelining {
                queued.removeAll()
                pipelining = false
                connection.abandonPipeline()
            }
            throw error
        }
    }

    private func replay(into connection: PostgresConnection, encoding: String) throws {
        try SessionSettings.apply(to: connection, encoding: encoding)
        do {
            try connection.execute("SET LOCAL session_replication_role = replica", during: "turning triggers off for the replay")
        } catch let error as PostgresError {
            if case .server(let server, _) = error, server.sqlState == "42501" { throw ReplayError.notSuperuser }
            throw error
        }
        var stoppedIn: Manifest?
        var last: Manifest?
        for path in plan.segments {
            segment = path
            let reader = try PointInTime.segmentReader(path, key: plan.key)
            guard reader.manifest.changes != nil else {
                throw ReplayError.malformed(segment: path, detail: "it is not a change segment")
            }
            last = reader.manifest
            var including = false
            do {
                try reader.readChanges(checking: .chunkContent) { record in
                    let message: PgOutputMessage
                    do {
                        message = try PgOutputMessage.decode(record)
                    } catch {
                        throw ReplayError.malformed(segment: path, detail: "\(error)")
                    }
                    including = try handle(message, including: including, connection: connection)
                }
            } catch is Stop {
                stoppedIn = reader.manifest
                try leavePipeline(connection)
                break
            }
        }
        try leavePipeline(connection)
        // Values captured after the target: each sequence at or past it.
        if let sequences = (stoppedIn ?? last)?.sequences {
            for sequence in sequences {
                try connection.query(
                    """
                    SELECT pg_catalog.setval(c.oid, $3::bigint, $4::boolean)
                      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'S'
                    """, [sequence.schema, sequence.name, String(sequence.lastValue), sequence.isCalled ? "true" : "false"],
                    during: "setting sequence values from the change stream")
            }
        }
        try connection.execute("SET LOCAL session_replication_role = origin", during: "turning triggers back on")
    }

    private var currentLSN: UInt64 = 0
    /// The segment being read: what errors about its records name.
    private var segment = ""

    /// Returns whether the transaction under way is replayed.
    private func handle(_ message: PgOutputMessage, including: Bool, connection: PostgresConnection) throws -> Bool {
        switch message {
        case .relation(let relation):
            relations[relation.oid] = relation
            relationVersions[relation.oid, default: 0] += 1
            return including
        case .begin(let finalLSN, let commitTime, _):
            currentLSN = finalLSN
            guard finalLSN >= plan.anchor.lsn else { return false }
            changesAtBegin = changes
            switch plan.target {
            case .time(let date): if PostgresTime.date(microseconds: commitTime) > date { throw Stop() }
            case .lsn(let lsn): if finalLSN > lsn { throw Stop() }
            }
            return true
        case .commit(_, _, let commitTime):
            if including, changes > changesAtBegin {
                transactions += 1
                lastCommit = commitTime
            }
            return false
        case .message(_, _, let prefix, let content):
            guard including, prefix == ReplicationNames.ddlPrefix else { return including }
            try replaySchemaChange(content, connection: connection)
            return including
        case .insert(let oid, let new):
            guard including, let relation = try relation(oid), selected(relation) else { return including }
            try insert(relation, new, connection)
        case .update(let oid, let old, let oldIsKey, let new):
            guard including, let relation = try relation(oid), selected(relation) else { return including }
            try update(relation, old: old, oldIsKey: oldIsKey, new: new, connection)
        case .delete(let oid, let old, let oldIsKey):
            guard including, let relation = try relation(oid), selected(relation) else { return including }
            try delete(relation, old: old, oldIsKey: oldIsKey, connection)
        case .truncate(let oids, let cascade, let restartIdentity):
            guard including else { return including }
            let names = try oids.compactMap { try relation($0) }.filter(selected).map { SQLIdentifier.qualified($0.schema, $0.name) }
            guard !names.isEmpty else { return including }
            try leavePipeline(connection)
            try connection.execute(
                "TRUNCATE ONLY \(names.joined(separator: ", "))\(restartIdentity ? " RESTART IDENTITY" : "")\(cascade ? " CASCADE" : "")",
                during: "replaying a TRUNCATE")
            changes += 1
        case .ignored:
            return including
        }
        return including
    }

    private func relation(_ oid: UInt32) throws -> PgOutputMessage.Relation? {
        guard let relation = relations[oid] else {
            throw ReplayError.malformed(segment: segment, detail: "a change to relation \(oid) comes before its description")
        }
        return relation
    }

    private func selected(_ relation: PgOutputMessage.Relation) -> Bool {
        plan.tables.map { $0.contains(.init(schema: relation.schema, name: relation.name)) } ?? true
    }

    private func replaySchemaChange(_ content: [UInt8], connection: PostgresConnection) throws {
        guard content.count > 64, let change = try? JSONDecoder().decode(SchemaChangeMessage.self, from: Data(content[64...])) else {
            throw ReplayError.malformed(segment: segment, detail: "a schema-change message cannot be read")
        }
        let at = LSN(currentLSN).description
        if plan.tables != nil { throw ReplayError.schemaChangeInSubset(tag: change.tag, at: at) }
        let statement: String
        switch change.replayStatement {
        case .success(let text): statement = text
        case .failure(let reason): throw ReplayError.unreplayableSchemaChange(tag: change.tag, at: at, reason: reason.text)
        }
        try leavePipeline(connection)
        let roleExists = try connection.query(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", [change.role], during: "looking up a role").rows.count > 0
        guard roleExists else { throw ReplayError.missingRole(change.role) }
        // As it ran: its search_path, its role (who owns what it creates).
        try connection.query(
            "SELECT pg_catalog.set_config('search_path', $1, true), pg_catalog.set_config('role', $2, true)",
            [change.searchPath, change.role], during: "preparing to replay a schema change")
        try connection.execute(statement, during: "replaying a schema change (\(change.tag))")
        try connection.execute("RESET ROLE", during: "resetting the role")
        try SessionSettings.apply(to: connection)
        // Prepared statements of changed tables are planned again by the
        // server; those of dropped columns come with a new description.
        changes += 1
    }

    // MARK: The pipeline

    private func send(
        _ name: String, _ values: [[UInt8]?], _ operation: String, _ relation: PgOutputMessage.Relation, expectsOneRow: Bool,
        _ connection: PostgresConnection
    ) throws {
        if !pipelining {
            try connection.enterPipelineMode(during: "replaying the change stream")
            pipelining = true
        }
        let table = "\(relation.schema).\(relation.name)"
        try connection.sendPrepared(name, values, during: "replaying an \(operation) \(table)")
        queued.append(Queued(operation: operation, table: table, lsn: currentLSN, expectsOneRow: expectsOneRow))
        changes += 1
        if queued.count >= Self.pipelineDepth { try flush(connection) }
    }

    /// Reads the queued changes' results, in order: the first error, or
    /// an update or delete that did not find exactly its one row, fails
    /// the replay (after the rest is read, so the connection can roll back).
    private func flush(_ connection: PostgresConnection) throws {
        guard pipelining, !queued.isEmpty else { return }
        try connection.pipelineSync(during: "replaying the change stream")
        var failure: (any Error)?
        for change in queued {
            let outcome = try connection.pipelineResult(during: "replaying an \(change.operation) \(change.table)")
            guard failure == nil, let outcome else { continue }
            switch outcome {
            case .failure(let error):
                failure = error
            case .success(let rows) where change.expectsOneRow && rows != 1:
                let operation = change.operation.split(separator: " ").first.map(String.init) ?? change.operation
                failure = ReplayError.conflict(table: change.table, operation: operation, lsn: LSN(change.lsn).description, rows: rows)
            case .success:
                break
            }
        }
        queued.removeAll(keepingCapacity: true)
        try connection.awaitSync(during: "replaying the change stream")
        if let failure {
            pipelining = false
            try connection.exitPipelineMode(during: "replaying the change stream")
            throw failure
        }
    }

    /// Reads what is queued and leaves pipeline mode, for a statement run
    /// on its own (a TRUNCATE, a schema change, a PREPARE, the sequences).
    private func leavePipeline(_ connection: PostgresConnection) throws {
        guard pipelining else { return }
        try flush(connection)
        pipelining = false
        try connection.exitPipelineMode(during: "replaying the change stream")
    }

    // MARK: Rows

    private func prepared(_ key: String, _ relation: PgOutputMessage.Relation, parameters: Int, _ sql: () -> String, _ connection: PostgresConnection) throws -> String {
        let key = "\(relation.oid)/\(relationVersions[relation.oid] ?? 0)/\(key)"
        if let name = statements[key] { return name }
        statementCount += 1
        let name = "arca_replay_\(statementCount)"
        try leavePipeline(connection)
        try connection.prepare(name, sql(), parameterCount: parameters, during: "preparing the replay of table \(relation.schema).\(relation.name)")
        statements[key] = name
        return name
    }

    private func tableName(_ relation: PgOutputMessage.Relation) -> String { SQLIdentifier.qualified(relation.schema, relation.name) }

    private func check(_ tuple: PgOutputMessage.Tuple, _ relation: PgOutputMessage.Relation) throws {
        guard tuple.count == relation.columns.count else {
            throw ReplayError.malformed(segment: segment, detail: "a row of \(tuple.count) values for table \(relation.schema).\(relation.name) of \(relation.columns.count) columns")
        }
    }

    private func values(_ tuple: PgOutputMessage.Tuple, _ indexes: [Int]) -> [[UInt8]?] {
        indexes.map { if case .text(let bytes) = tuple[$0] { bytes } else { nil } }
    }

    private func insert(_ relation: PgOutputMessage.Relation, _ new: PgOutputMessage.Tuple, _ connection: PostgresConnection) throws {
        try check(new, relation)
        guard !new.contains(.unchanged) else {
            throw ReplayError.malformed(segment: segment, detail: "an insert into \(relation.schema).\(relation.name) without all its values")
        }
        let columns = relation.columns.map { SQLIdentifier.quote($0.name) }
        let name = try prepared("I", relation, parameters: columns.count, {
            "INSERT INTO \(tableName(relation)) (\(columns.joined(separator: ", "))) OVERRIDING SYSTEM VALUE VALUES (\((1...max(1, columns.count)).map { "$\($0)" }.joined(separator: ", ")))"
        }, connection)
        try send(name, values(new, Array(new.indices)), "insert into", relation, expectsOneRow: false, connection)
    }

    /// The WHERE clause that finds the old row, and its parameters from
    /// `first` on: by key columns (`=`, the key's index), or, for
    /// REPLICA IDENTITY FULL, by every column's text (`format('%s', …)`
    /// is the type's output function: every type compares, even those
    /// without `=`), one row of identical ones by its ctid.
    private func locate(
        _ relation: PgOutputMessage.Relation, old: PgOutputMessage.Tuple, byKey: Bool, first: Int
    ) throws -> (condition: String, values: [[UInt8]?], key: String) {
        var terms: [String] = [], values: [[UInt8]?] = [], shape = ""
        for (index, column) in relation.columns.enumerated() where !byKey || column.isKey {
            let name = SQLIdentifier.quote(column.name)
            switch old[index] {
            case .null:
                terms.append("\(name) IS NULL")
                shape += "n"
            case .text(let bytes):
                values.append(bytes)
                let parameter = "$\(first + values.count - 1)"
                terms.append(byKey ? "\(name) = \(parameter)" : "pg_catalog.format('%s', \(name)) = \(parameter)")
                shape += "t"
            case .unchanged:
                throw ReplayError.malformed(segment: segment, detail: "the old row of a change to \(relation.schema).\(relation.name) lacks a value it is found by")
            }
        }
        guard !terms.isEmpty else {
            throw ReplayError.malformed(segment: segment, detail: "a change to \(relation.schema).\(relation.name) has no key to find its row")
        }
        let condition = terms.joined(separator: " AND ")
        if byKey { return (condition, values, "K" + shape) }
        return ("ctid = (SELECT ctid FROM ONLY \(tableName(relation)) WHERE \(condition) LIMIT 1)", values, "F" + shape)
    }

    private func update(
        _ relation: PgOutputMessage.Relation, old: PgOutputMessage.Tuple?, oldIsKey: Bool, new: PgOutputMessage.Tuple, _ connection: PostgresConnection
    ) throws {
        try check(new, relation)
        if let old { try check(old, relation) }
        // Unchanged TOASTed values are not sent, and are left as they are;
        // without an old row the key is unchanged, and is not set (an
        // identity key GENERATED ALWAYS cannot be).
        let changed = new.indices.filter { index in
            new[index] != .unchanged && !(old == nil && relation.columns[index].isKey)
                && !(old.map { !oldIsKey && $0[index] == new[index] } ?? false)
        }
        let set = changed.enumerated().map { "\(SQLIdentifier.quote(relation.columns[$1].name)) = $\($0 + 1)" }
        guard !set.isEmpty else {
            changes += 1
            return
        }
        let byKey = old == nil || oldIsKey
        let found = try locate(relation, old: old ?? new, byKey: byKey, first: changed.count + 1)
        let name = try prepared("U" + changed.map(String.init).joined(separator: ",") + found.key, relation, parameters: changed.count + found.values.count, {
            "UPDATE ONLY \(tableName(relation)) SET \(set.joined(separator: ", ")) WHERE \(found.condition)"
        }, connection)
        try send(name, values(new, changed) + found.values, "update of", relation, expectsOneRow: true, connection)
    }

    private func delete(_ relation: PgOutputMessage.Relation, old: PgOutputMessage.Tuple, oldIsKey: Bool, _ connection: PostgresConnection) throws {
        try check(old, relation)
        let found = try locate(relation, old: old, byKey: oldIsKey, first: 1)
        let name = try prepared("D" + found.key, relation, parameters: found.values.count, {
            "DELETE FROM ONLY \(tableName(relation)) WHERE \(found.condition)"
        }, connection)
        try send(name, found.values, "delete from", relation, expectsOneRow: true, connection)
    }
}
