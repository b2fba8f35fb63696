import Foundation

/// A table with storage, as the catalog describes it.
public struct TableDescriptor: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case table
        case partition
        case unlogged
    }

    public var oid: UInt32
    public var schema: String
    public var name: String
    public var kind: Kind
    /// The partitioned parent or first inheritance parent, schema-qualified and quoted.
    public var parent: String?
    /// Columns COPY reads and writes: no dropped and no generated columns.
    public var columns: [String]
    /// On-disk size as of the last VACUUM/ANALYZE (`relpages`), for scheduling
    /// largest first. Read from the catalog because `pg_relation_size` would
    /// wait for a lock before the backup takes its own.
    public var estimatedBytes: UInt64

    public var qualifiedName: String { "\(schema).\(name)" }
    public var quotedName: String { SQLIdentifier.qualified(schema, name) }

    /// The column list for COPY (see `SQLIdentifier.columnList`).
    public var copyColumnList: String { SQLIdentifier.columnList(columns) }
}

/// A sequence and the column owning it.
public struct SequenceDescriptor: Sendable, Equatable {
    public var schema: String
    public var name: String
    /// The table and column owning it (serial, identity, `OWNED BY`), if any.
    public var ownerSchema: String?
    public var ownerTable: String?
    public var ownerColumn: String?

    public var quotedName: String { SQLIdentifier.qualified(schema, name) }
}

/// A sequence's state: what `setval` gives back.
public struct SequenceState: Sendable, Equatable {
    public var lastValue: Int64
    public var isCalled: Bool
}

/// The catalog queries the engine needs. All run in the caller's transaction,
/// so inside a backup they see the snapshot.
public enum Catalog {
    /// Every table that has its own rows: ordinary tables, leaf partitions,
    /// inheritance children, unlogged tables, in every schema that is not a
    /// system schema. Tables that belong to an extension are left to the
    /// extension. Sorted by schema and name.
    public static func tables(_ connection: PostgresConnection) throws -> [TableDescriptor] {
        let result = try connection.execute(
            """
            SELECT c.oid, n.nspname, c.relname, c.relpersistence, c.relispartition,
                   c.relpages::bigint * pg_catalog.current_setting('block_size')::bigint AS bytes,
                   (SELECT i.inhparent::pg_catalog.regclass::text FROM pg_catalog.pg_inherits i
                     WHERE i.inhrelid = c.oid ORDER BY i.inhseqno LIMIT 1) AS parent,
                   (SELECT pg_catalog.array_to_json(pg_catalog.array_agg(a.attname ORDER BY a.attnum))::text
                      FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS columns
              FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r'
               AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                  AND d.objid = c.oid AND d.deptype = 'e')
             ORDER BY n.nspname, c.relname
            """, during: "listing tables")
        return try result.rows.map { row in
            guard let oid = row[0].flatMap({ UInt32($0) }), let schema = row[1], let name = row[2] else {
                throw PostgresError.unexpectedResponse(during: "listing tables", message: "a catalog row has no name")
            }
            let kind: TableDescriptor.Kind = row[3] == "u" ? .unlogged : (row[4] == "t" ? .partition : .table)
            return TableDescriptor(
                oid: oid, schema: schema, name: name, kind: kind, parent: row[6],
                columns: try decodeNames(row[7]), estimatedBytes: row[5].flatMap { UInt64($0) } ?? 0)
        }
    }

    /// The columns COPY can load in a table that exists.
    public struct LoadableColumns: Sendable, Equatable {
        /// In the table's order; no dropped and no generated columns.
        public var names: [String]
        /// Those a row must give a value: NOT NULL without a default or identity.
        public var required: [String]
    }

    /// The COPY columns of each of `tables` in the connected database, in
    /// their order, nil for a table that does not exist. One query for all.
    public static func columns(
        of tables: [(schema: String, name: String)], _ connection: PostgresConnection
    ) throws -> [LoadableColumns?] {
        let pairs = try JSONEncoder().encode(tables.map { [$0.schema, $0.name] })
        let result = try connection.query(
            """
            SELECT e.i,
                   (SELECT pg_catalog.array_to_json(pg_catalog.array_agg(a.attname ORDER BY a.attnum))::text
                      FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
                   (SELECT pg_catalog.array_to_json(pg_catalog.array_agg(a.attname ORDER BY a.attnum))::text
                      FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
                       AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = '')
              FROM pg_catalog.jsonb_array_elements($1::pg_catalog.jsonb) WITH ORDINALITY AS e (pair, i)
              JOIN pg_catalog.pg_namespace n ON n.nspname = e.pair->>0
              JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = e.pair->>1 AND c.relkind IN ('r', 'p')
            """, [String(decoding: pairs, as: UTF8.self)], during: "looking up the tables to restore")
        var columns = [LoadableColumns?](repeating: nil, count: tables.count)
        for row in result.rows {
            guard let position = row[0].flatMap({ Int($0) }), position >= 1, position <= tables.count else {
                throw PostgresError.unexpectedResponse(during: "looking up the tables to restore", message: "a catalog row of no table asked for")
            }
            columns[position - 1] = LoadableColumns(names: try decodeNames(row[1]), required: try decodeNames(row[2]))
        }
        return columns
    }

    /// A trigger and its `pg_trigger.tgenabled` state.
    public struct TriggerState: Sendable, Equatable {
        public var schema: String
        public var table: String
        public var name: String
        /// "A" (ENABLE ALWAYS) or "R" (ENABLE REPLICA).
        public var enabled: String
    }

    /// The triggers of `tables` that fire even with
    /// `session_replication_role = replica`: ENABLE ALWAYS and ENABLE
    /// REPLICA ones, user-defined or internal.
    public static func triggersFiringInReplicaMode(
        on tables: [(schema: String, name: String)], _ connection: PostgresConnection
    ) throws -> [TriggerState] {
        let pairs = try JSONEncoder().encode(tables.map { [$0.schema, $0.name] })
        let result = try connection.query(
            """
            SELECT n.nspname, c.relname, t.tgname, t.tgenabled::text
              FROM pg_catalog.pg_trigger t
              JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE t.tgenabled IN ('A', 'R')
               AND (n.nspname, c.relname) IN
                   (SELECT e->>0, e->>1 FROM pg_catalog.jsonb_array_elements($1::pg_catalog.jsonb) e)
             ORDER BY 1, 2, 3
            """, [String(decoding: pairs, as: UTF8.self)], during: "listing the triggers that fire during a restore")
        return try result.rows.map { row in
            guard let schema = row[0], let table = row[1], let name = row[2], let enabled = row[3] else {
                throw PostgresError.unexpectedResponse(during: "listing triggers", message: "a catalog row has no name")
            }
            return TriggerState(schema: schema, table: table, name: name, enabled: enabled)
        }
    }

    /// Every sequence outside the system schemas (and not an extension's),
    /// with its owning column; `sequenceStates` reads their values.
    public static func sequences(_ connection: PostgresConnection) throws -> [SequenceDescriptor] {
        let list = try connection.execute(
            """
            SELECT n.nspname, s.relname, tn.nspname, t.relname, a.attname
              FROM pg_catalog.pg_class s
              JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
              LEFT JOIN pg_catalog.pg_depend d
                     ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = s.oid
                    AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i')
                    AND d.refobjsubid > 0
              LEFT JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
              LEFT JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
              LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
             WHERE s.relkind = 'S'
               AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                                WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                  AND e.objid = s.oid AND e.deptype = 'e')
             ORDER BY n.nspname, s.relname
            """, during: "listing sequences")
        return try list.rows.map { row in
            guard let schema = row[0], let name = row[1] else {
                throw PostgresError.unexpectedResponse(during: "listing sequences", message: "a catalog row has no name")
            }
            return SequenceDescriptor(schema: schema, name: name, ownerSchema: row[2], ownerTable: row[3], ownerColumn: row[4])
        }
    }

    /// The state of each of `sequences`, in their order, in one query.
    /// Sequence values are not transactional: they are read as they are
    /// now, which inside a backup's snapshot is at or past every value the
    /// snapshot's rows hold. Reading a sequence locks it until the
    /// transaction (or subtransaction) ends.
    public static func sequenceStates(_ sequences: some Collection<SequenceDescriptor>, _ connection: PostgresConnection) throws -> [SequenceState] {
        guard !sequences.isEmpty else { return [] }
        let query = sequences.enumerated().map { index, sequence in
            "SELECT \(index), last_value::text, is_called FROM \(sequence.quotedName)"
        }.joined(separator: " UNION ALL ")
        let result = try connection.execute(query, during: "reading \(sequences.count) sequence(s)")
        var states = [SequenceState?](repeating: nil, count: sequences.count)
        for row in result.rows {
            guard let index = row[0].flatMap({ Int($0) }), states.indices.contains(index),
                  let value = row[1].flatMap({ Int64($0) }) else { continue }
            states[index] = SequenceState(lastValue: value, isCalled: row[2] == "t")
        }
        return try zip(sequences, states).map { sequence, state in
            guard let state else {
                throw PostgresError.unexpectedResponse(during: "reading sequence \(sequence.schema).\(sequence.name)", message: "no value")
            }
            return state
        }
    }

    /// Partitioned tables (quoted, qualified) all of whose leaf partitions are
    /// among `tables`.
    public static func partitionedTables(coveredBy tables: [(schema: String, name: String)], _ connection: PostgresConnection) throws -> [String] {
        let pairs = try JSONEncoder().encode(tables.map { [$0.schema, $0.name] })
        let result = try connection.query(
            """
            SELECT p.oid::pg_catalog.regclass::text
              FROM pg_catalog.pg_class p
             WHERE p.relkind = 'p'
               AND NOT EXISTS (
                   SELECT 1 FROM pg_catalog.pg_partition_tree(p.oid) tree
                     JOIN pg_catalog.pg_class l ON l.oid = tree.relid
                     JOIN pg_catalog.pg_namespace ln ON ln.oid = l.relnamespace
                    WHERE tree.isleaf
                      AND (ln.nspname, l.relname) NOT IN
                          (SELECT e->>0, e->>1 FROM pg_catalog.jsonb_array_elements($1::pg_catalog.jsonb) e))
             ORDER BY 1
            """, [String(decoding: pairs, as: UTF8.self)], during: "finding partitioned tables")
        return result.rows.compactMap { $0[0] }
    }

    /// On-disk sizes of tables. Waits for no lock only once the caller
    /// holds one on each table (pg_relation_size takes ACCESS SHARE).
    public static func relationSizes(_ oids: [UInt32], _ connection: PostgresConnection) throws -> [UInt32: UInt64] {
        let list = "{" + oids.map(String.init).joined(separator: ",") + "}"
        let result = try connection.query(
            "SELECT o, pg_catalog.pg_relation_size(o) FROM pg_catalog.unnest($1::pg_catalog.oid[]) AS o",
            [list], during: "measuring tables")
        var sizes: [UInt32: UInt64] = [:]
        for row in result.rows {
            if let oid = row[0].flatMap({ UInt32($0) }), let size = row[1].flatMap({ UInt64($0) }) { sizes[oid] = size }
        }
        return sizes
    }

    /// A column whose values COPY's binary format cannot carry exactly
    /// from one database to another, and its type as SQL writes it.
    public struct TextOnlyColumn: Sendable, Equatable {
        public var name: String
        public var type: String
    }

    /// The columns of each of `oids` (COPY's columns: no dropped or
    /// generated ones) that must be copied as text, by table; a table
    /// without an entry can be copied in binary exactly.
    ///
    /// Binary COPY is exact across databases and into newer major versions
    /// for a type whose binary form PostgreSQL defines and that names no
    /// object by OID. So a column qualifies when its type, after resolving
    /// domains to their base type (a domain's binary form is its base
    /// type's), is a base, range or multirange type with an OID below
    /// 10000 (FirstGenbkiObjectId: fixed in PostgreSQL's sources, the same
    /// in every database and version; 10000 to 16383 are numbered by
    /// initdb), with send and receive functions, and not an OID alias
    /// (`regclass` and the other `reg*` types, whose binary form is the
    /// object's OID); and, when it has an element type (arrays, whose binary
    /// form embeds the element type's OID), that element type qualifies by
    /// the same rule without resolving domains (an array of a domain embeds
    /// the domain's OID). Enums, composites and extension types are
    /// user-defined (OID 16384 on): text.
    public static func textOnlyColumns(_ oids: [UInt32], _ connection: PostgresConnection) throws -> [UInt32: [TextOnlyColumn]] {
        guard !oids.isEmpty else { return [:] }
        let list = "{" + oids.map(String.init).joined(separator: ",") + "}"
        let during = "checking which tables can be copied in binary"
        let result = try connection.query(
            """
            WITH RECURSIVE columns AS (
                SELECT a.attrelid, a.attnum, a.attname, a.atttypid, a.atttypmod
                  FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = ANY ($1::pg_catalog.oid[]) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
            ), resolving (start, current, depth) AS (
                SELECT DISTINCT atttypid, atttypid, 0 FROM columns
                UNION ALL
                SELECT r.start, t.typbasetype, r.depth + 1
                  FROM resolving r JOIN pg_catalog.pg_type t ON t.oid = r.current
                 WHERE t.typtype = 'd' AND r.depth < 64
            ), exact AS (
                SELECT t.oid FROM pg_catalog.pg_type t
                 WHERE t.oid < 10000 AND t.typtype IN ('b', 'r', 'm')
                   AND t.typsend <> 0 AND t.typreceive <> 0 AND t.typname NOT LIKE 'reg%'
            ), qualified AS (
                SELECT r.start
                  FROM resolving r
                  JOIN pg_catalog.pg_type t ON t.oid = r.current
                 WHERE r.current IN (SELECT oid FROM exact)
                   AND (t.typelem = 0 OR t.typelem IN (SELECT oid FROM exact))
            )
            SELECT c.attrelid, c.attname, pg_catalog.format_type(c.atttypid, c.atttypmod)
              FROM columns c
             WHERE c.atttypid NOT IN (SELECT start FROM qualified)
             ORDER BY c.attrelid, c.attnum
            """, [list], during: during)
        var columns: [UInt32: [TextOnlyColumn]] = [:]
        for row in result.rows {
            guard let oid = row[0].flatMap({ UInt32($0) }), let name = row[1], let type = row[2] else {
                throw PostgresError.unexpectedResponse(during: during, message: "a catalog row has no column")
            }
            columns[oid, default: []].append(TextOnlyColumn(name: name, type: type))
        }
        return columns
    }

    /// The tables among `oids` whose storage was replaced after this
    /// transaction's snapshot was taken: the snapshot's
    /// `pg_class.relfilenode` differs from the file the server uses now
    /// (`pg_relation_filenode` reads the current catalog). TRUNCATE and the
    /// rewriting forms of ALTER TABLE do this and are not MVCC-safe: an older
    /// snapshot sees the new file, with none of the rows. Ask only while
    /// holding a lock on the tables, so no new rewrite can slip in.
    public static func rewrittenSinceSnapshot(_ oids: [UInt32], _ connection: PostgresConnection) throws -> Set<UInt32> {
        let list = "{" + oids.map(String.init).joined(separator: ",") + "}"
        let result = try connection.query(
            """
            SELECT c.oid FROM pg_catalog.pg_class c
             WHERE c.oid = ANY ($1::pg_catalog.oid[])
               AND pg_catalog.pg_relation_filenode(c.oid) IS NOT NULL  -- relations without storage (partitioned parents)
               AND c.relfilenode IS DISTINCT FROM pg_catalog.pg_relation_filenode(c.oid)
            """, [list], during: "checking that no table was rewritten since the snapshot")
        return Set(result.rows.compactMap { $0[0].flatMap { UInt32($0) } })
    }

    /// What happened to a table since the transaction's snapshot.
    public enum TableChangeSinceSnapshot: Sendable, Equatable {
        /// Its name now names another table, or none: dropped or renamed.
        case replaced
        /// Its storage was replaced (see `rewrittenSinceSnapshot`).
        case rewritten
    }

    /// A query that tells, for each table (its OID, and the name the
    /// snapshot calls it), whether it changed since the snapshot;
    /// `changesSinceSnapshot` reads its result. A query, not a call, so the
    /// caller can send it in one round trip with the locks it must hold
    /// first (see `rewrittenSinceSnapshot`).
    public static func changesSinceSnapshotQuery(_ tables: [(oid: UInt32, quotedName: String)]) -> String {
        let values = tables.map { "(\($0.oid)::pg_catalog.oid, \(SQLIdentifier.literal($0.quotedName))::pg_catalog.text)" }
        return """
            SELECT t.oid, pg_catalog.to_regclass(t.name) IS DISTINCT FROM t.oid,
                   c.relfilenode IS DISTINCT FROM pg_catalog.pg_relation_filenode(c.oid)
              FROM (VALUES \(values.joined(separator: ", "))) AS t (oid, name)
              JOIN pg_catalog.pg_class c ON c.oid = t.oid
            """
    }

    /// The tables of `changesSinceSnapshotQuery` that changed, by OID;
    /// `expected` is how many tables it asked about.
    public static func changesSinceSnapshot(_ result: QueryResult, expected: Int) throws -> [UInt32: TableChangeSinceSnapshot] {
        guard result.rows.count == expected else {
            throw PostgresError.unexpectedResponse(during: "checking tables against the snapshot", message: "\(result.rows.count) catalog rows for \(expected) tables")
        }
        var changes: [UInt32: TableChangeSinceSnapshot] = [:]
        for row in result.rows {
            guard row.count == 3, let oid = row[0].flatMap({ UInt32($0) }) else {
                throw PostgresError.unexpectedResponse(during: "checking tables against the snapshot", message: "a malformed catalog row")
            }
            if row[1] == "t" {
                changes[oid] = .replaced
            } else if row[2] == "t" {
                changes[oid] = .rewritten
            }
        }
        return changes
    }

    /// OIDs of every large object, ascending.
    public static func largeObjects(_ connection: PostgresConnection) throws -> [UInt32] {
        try connection.execute("SELECT oid FROM pg_catalog.pg_largeobject_metadata ORDER BY oid", during: "listing large objects")
            .rows.compactMap { $0[0].flatMap { UInt32($0) } }
    }

    /// For each table (by OID), the OIDs of what belongs to it: itself, its
    /// indexes, constraints, triggers, rules, policies, column defaults,
    /// owned sequences and extended statistics. These are the object ids
    /// pg_dump's table of contents uses.
    public static func dependentObjects(_ connection: PostgresConnection) throws -> [UInt32: [UInt32]] {
        let result = try connection.execute(
            """
            SELECT t.oid, o.oid FROM pg_catalog.pg_class t,
                   LATERAL (SELECT t.oid
                            UNION ALL SELECT indexrelid FROM pg_catalog.pg_index WHERE indrelid = t.oid
                            UNION ALL SELECT oid FROM pg_catalog.pg_constraint WHERE conrelid = t.oid
                            UNION ALL SELECT oid FROM pg_catalog.pg_trigger WHERE tgrelid = t.oid AND NOT tgisinternal
                            UNION ALL SELECT oid FROM pg_catalog.pg_rewrite WHERE ev_class = t.oid
                            UNION ALL SELECT oid FROM pg_catalog.pg_policy WHERE polrelid = t.oid
                            UNION ALL SELECT oid FROM pg_catalog.pg_attrdef WHERE adrelid = t.oid
                            UNION ALL SELECT oid FROM pg_catalog.pg_statistic_ext WHERE stxrelid = t.oid
                            UNION ALL SELECT d.objid FROM pg_catalog.pg_depend d
                                       WHERE d.refobjid = t.oid AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                         AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                         AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0) AS o(oid)
             WHERE t.relkind IN ('r', 'p')
             ORDER BY 1, 2
            """, during: "listing the objects that belong to each table")
        var objects: [UInt32: [UInt32]] = [:]
        for row in result.rows {
            guard let table = row[0].flatMap({ UInt32($0) }), let object = row[1].flatMap({ UInt32($0) }) else { continue }
            objects[table, default: []].append(object)
        }
        return objects
    }

    /// For each table, its ancestors (partitioned parents and inheritance
    /// parents, recursively): restoring a table needs them to exist.
    public static func ancestors(_ connection: PostgresConnection) throws -> [UInt32: [UInt32]] {
        let result = try connection.execute(
            """
            WITH RECURSIVE up(child, parent) AS (
                SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits
                UNION
                SELECT up.child, i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.parent)
            SELECT child, parent FROM up ORDER BY 1, 2
            """, during: "listing table ancestors")
        var ancestors: [UInt32: [UInt32]] = [:]
        for row in result.rows {
            guard let child = row[0].flatMap({ UInt32($0) }), let parent = row[1].flatMap({ UInt32($0) }) else { continue }
            ancestors[child, default: []].append(parent)
        }
        return ancestors
    }

    /// The server's lock table: `max_locks_per_transaction`, and how many
    /// objects all sessions together can hold locked, by PostgreSQL's
    /// documented formula `max_locks_per_transaction × (max_connections +
    /// max_prepared_transactions)`. One transaction may use all of it.
    public static func lockTable(_ connection: PostgresConnection) throws -> (perTransaction: Int, capacity: Int) {
        let row = try connection.execute(
            """
            SELECT pg_catalog.current_setting('max_locks_per_transaction'),
                   pg_catalog.current_setting('max_connections'),
                   pg_catalog.current_setting('max_prepared_transactions')
            """, during: "reading the lock table's size").rows.first
        guard let row, let perTransaction = row[0].flatMap({ Int($0) }), let connections = row[1].flatMap({ Int($0) }),
              let prepared = row[2].flatMap({ Int($0) }) else {
            throw PostgresError.unexpectedResponse(during: "reading the lock table's size", message: "no setting")
        }
        let (sessions, overflow1) = connections.addingReportingOverflow(prepared)
        let (capacity, overflow2) = perTransaction.multipliedReportingOverflow(by: sessions)
        return (perTransaction, overflow1 || overflow2 ? .max : capacity)
    }

    /// What a database holds besides what every new database has: a short
    /// description per kind of object, empty for an empty database.
    public static func userObjects(_ connection: PostgresConnection) throws -> [String] {
        let result = try connection.execute(
            """
            SELECT 'relation ' || c.oid::pg_catalog.regclass::text
              FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
            UNION ALL
            SELECT 'schema ' || pg_catalog.quote_ident(nspname) FROM pg_catalog.pg_namespace
             WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\\_%'
            UNION ALL
            SELECT 'function ' || p.oid::pg_catalog.regprocedure::text
              FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
            UNION ALL
            SELECT 'type ' || t.oid::pg_catalog.regtype::text
              FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
               AND t.typrelid = 0 AND t.typelem = 0
            UNION ALL
            SELECT 'extension ' || extname FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql'
            UNION ALL
            SELECT 'large object ' || oid FROM pg_catalog.pg_largeobject_metadata
            LIMIT 20
            """, during: "checking whether the database is empty")
        return result.rows.compactMap { $0[0] }
    }

    /// Column names arrive as a JSON array of strings (json_agg keeps any
    /// character in a name intact, unlike array text output).
    static func decodeNames(_ json: String?) throws -> [String] {
        guard let json else { return [] }
        guard let names = try? JSONDecoder().decode([String].self, from: Data(json.utf8)) else {
            throw PostgresError.unexpectedResponse(during: "reading column names", message: "malformed JSON from the catalog")
        }
        return names
    }
}
