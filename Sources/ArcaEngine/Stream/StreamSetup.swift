import ArcaFormat
import ArcaPostgres
import Foundation

/// What can stop the change stream, each with what to do.
public enum StreamError: Error, Sendable, CustomStringConvertible {
    case walLevel(String)
    case noReplicaIdentity([String])
    case notSuperuser(String)
    case recordTooLarge(table: String, bytes: Int)
    case upload(segment: String, place: String, underlying: String)
    case alreadyStreaming(slot: String, repository: String)
    case server(PostgresError, during: String)

    public var description: String {
        switch self {
        case .walLevel(let level):
            "The server runs with wal_level = \(level); the change stream needs logical decoding. Set wal_level = logical in postgresql.conf and restart the server (a reload is not enough)."
        case .noReplicaIdentity(let tables):
            "\(tables.count) table(s) have no primary key and no replica identity, so their updates and deletes cannot be streamed, and with a publication for all tables the server would refuse them: \(tables.prefix(20).joined(separator: ", "))\(tables.count > 20 ? ", …" : ""). Give them a primary key, or run `arca stream --replica-identity-full` to let Arca set REPLICA IDENTITY FULL on them (every old row is then written to the WAL in full)."
        case .notSuperuser(let role):
            "Role \(role) cannot set up the change stream: installing the event triggers that record schema changes needs a superuser. Run `arca stream` once as a superuser (later runs need only the REPLICATION attribute)."
        case .recordTooLarge(let table, let bytes):
            "A change to table \(table) is \(bytes) bytes as pgoutput sends it, more than a change segment holds (1 GiB per record). The stream stopped without confirming it; take a full backup, and keep such rows out of the published tables."
        case .upload(let segment, let place, let underlying):
            "Change segment \(segment) could not be uploaded to \(place): \(underlying). The slot keeps its changes until it is; the stream retries."
        case .alreadyStreaming(let slot, let repository):
            "Another `arca stream` already writes the segments of slot \(slot) into \(repository). One streamer per slot and repository: stop the other one first."
        case .server(let error, let during):
            "The change stream failed while \(during): \(error)"
        }
    }
}

/// Installs (and removes) what the change stream needs in the database:
/// a publication of every table, an event trigger for each kind of
/// schema change, and the slot. Idempotent: `arca stream` runs it at
/// every start.
public struct StreamSetup {
    public let target: ConnectionString
    public let slot: String

    public init(target: ConnectionString, slot: String) {
        self.target = target
        self.slot = slot
    }

    /// The tables whose updates and deletes could not be published:
    /// no primary key and identity DEFAULT, or identity NOTHING.
    static let tablesWithoutIdentity = """
        SELECT n.nspname, c.relname
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND c.relpersistence = 'p'
           AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
           AND (c.relreplident = 'n'
                OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
                OR (c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))
         ORDER BY 1, 2
        """

    /// Tables that lack a replica identity, as `schema.name`.
    public static func tablesLackingIdentity(_ connection: PostgresConnection) throws -> [(schema: String, name: String)] {
        try connection.execute(tablesWithoutIdentity, during: "looking for tables without a replica identity").rows.compactMap { row in
            guard let schema = row[0], let name = row[1] else { return nil }
            return (schema, name)
        }
    }

    /// Checks the server, gives the tables without a key REPLICA IDENTITY
    /// FULL when allowed (else refuses), installs the triggers and the
    /// publication, and returns the key that authenticates DDL messages.
    public func install(_ connection: PostgresConnection, replicaIdentityFull: Bool) throws -> String {
        func run(_ sql: String, _ what: String) throws -> QueryResult {
            do { return try connection.execute(sql, during: what) } catch let error as PostgresError { throw StreamError.server(error, during: what) }
        }
        let level = try run("SHOW wal_level", "reading wal_level").singleValue ?? "unknown"
        guard level == "logical" else { throw StreamError.walLevel(level) }
        let lacking = try Self.tablesLackingIdentity(connection)
        if !lacking.isEmpty {
            guard replicaIdentityFull else { throw StreamError.noReplicaIdentity(lacking.map { "\($0.schema).\($0.name)" }) }
            for table in lacking {
                _ = try run("ALTER TABLE \(SQLIdentifier.qualified(table.schema, table.name)) REPLICA IDENTITY FULL", "setting REPLICA IDENTITY FULL")
            }
        }
        let isSuperuser = try run("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user", "reading the role").singleValue == "t"
        let installed = try run(
            """
            SELECT (SELECT count(*) FROM pg_catalog.pg_event_trigger WHERE evtname IN ('arca_stream_ddl', 'arca_stream_drop', 'arca_stream_rewrite')) = 3
               AND (SELECT pg_catalog.obj_description(oid, 'pg_namespace') FROM pg_catalog.pg_namespace WHERE nspname = 'arca_stream') = \(SQLIdentifier.literal(Self.version))
            """, "looking for the event triggers").singleValue == "t"
        if !installed {
            guard isSuperuser else { throw StreamError.notSuperuser(connection.user) }
            _ = try run(Self.installScript, "installing the schema-change triggers")
        }
        let hasPublication = try run(
            "SELECT count(*) FROM pg_catalog.pg_publication WHERE pubname = \(SQLIdentifier.literal(ReplicationNames.publication))",
            "looking for the publication").singleValue != "0"
        if !hasPublication {
            _ = try run("CREATE PUBLICATION \(SQLIdentifier.quote(ReplicationNames.publication)) FOR ALL TABLES", "creating the publication")
        }
        let key = try run("SELECT key FROM \(SQLIdentifier.quote(ReplicationNames.schema)).key", "reading the message key").singleValue ?? ""
        guard let bytes = Hex.decode(key), bytes.count == 32 else {
            throw StreamError.server(.unexpectedResponse(during: "reading the message key", message: "the key is not 32 bytes of hex"), during: "reading the message key")
        }
        return key
    }

    /// Where the slot stands: nil when it does not exist.
    public func slotPosition(_ connection: PostgresConnection) throws -> (confirmed: UInt64, database: String)? {
        let row = try connection.query(
            "SELECT confirmed_flush_lsn::text, database FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND slot_type = 'logical'",
            [slot], during: "looking for the replication slot").rows.first
        guard let row else { return nil }
        return ((row[0].flatMap { LSN($0) } ?? .zero).value, row[1] ?? "")
    }

    /// Drops the slot, the publication, the triggers and Arca's schema:
    /// the server keeps no WAL for Arca afterwards.
    public func uninstall(_ connection: PostgresConnection) throws -> [String] {
        var removed: [String] = []
        func run(_ sql: String, _ what: String) throws -> QueryResult {
            do { return try connection.execute(sql, during: what) } catch let error as PostgresError { throw StreamError.server(error, during: what) }
        }
        if try connection.query(
            "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            [slot], during: "dropping the replication slot").rows.count > 0 {
            removed.append("replication slot \(slot)")
        }
        if try run(
            "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = \(SQLIdentifier.literal(ReplicationNames.publication))",
            "looking for the publication").rows.count > 0 {
            _ = try run("DROP PUBLICATION \(SQLIdentifier.quote(ReplicationNames.publication))", "dropping the publication")
            removed.append("publication \(ReplicationNames.publication)")
        }
        if try run("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = \(SQLIdentifier.literal(ReplicationNames.schema))", "looking for Arca's schema").rows.count > 0 {
            _ = try run(
                """
                DROP EVENT TRIGGER IF EXISTS arca_stream_ddl; DROP EVENT TRIGGER IF EXISTS arca_stream_drop;
                DROP EVENT TRIGGER IF EXISTS arca_stream_rewrite; DROP SCHEMA \(SQLIdentifier.quote(ReplicationNames.schema)) CASCADE
                """, "dropping the schema-change triggers")
            removed.append("event triggers and schema \(ReplicationNames.schema)")
        }
        return removed
    }

    /// The event triggers (FORMAT.md, "Schema changes"). Each emits a
    /// transactional logical message, so it is decoded in its
    /// transaction, in order with the rows. The trigger functions run as
    /// the role that made the change, to record its search_path; `emit`
    /// is SECURITY DEFINER with a fixed search_path (to read the key,
    /// which no other role can: a new schema and table grant nothing to
    /// PUBLIC), refuses to run outside the event it reports, and seals
    /// the message with a MAC under the key, so a message any role can
    /// emit with pg_logical_emit_message is not taken for a schema change.
    /// Marks the installed triggers' version (the schema's comment): a
    /// newer Arca replaces older ones. The event triggers are dropped
    /// first, so installing records no schema change of its own.
    static let version = "Arca change stream, triggers version 1"

    static let installScript = """
        DROP EVENT TRIGGER IF EXISTS arca_stream_ddl;
        DROP EVENT TRIGGER IF EXISTS arca_stream_drop;
        DROP EVENT TRIGGER IF EXISTS arca_stream_rewrite;
        CREATE SCHEMA IF NOT EXISTS arca_stream;
        COMMENT ON SCHEMA arca_stream IS \(SQLIdentifier.literal(version));
        GRANT USAGE ON SCHEMA arca_stream TO PUBLIC;
        CREATE TABLE IF NOT EXISTS arca_stream.key (key text PRIMARY KEY);
        INSERT INTO arca_stream.key SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.gen_random_uuid()::text || pg_catalog.clock_timestamp()::text || pg_catalog.random()::text, 'UTF8')), 'hex')
         WHERE NOT EXISTS (SELECT 1 FROM arca_stream.key);
        CREATE OR REPLACE FUNCTION arca_stream.emit(kind text, tag text, path text) RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $arca$
        DECLARE
            body text;
            secret text;
        BEGIN
            -- Each fails outside its own event: no one calls this by hand.
            IF kind = 'rewrite' THEN PERFORM pg_event_trigger_table_rewrite_oid();
            ELSIF tag LIKE 'DROP %' THEN PERFORM pg_event_trigger_dropped_objects();
            ELSE PERFORM pg_event_trigger_ddl_commands();
            END IF;
            body := json_build_object('kind', kind, 'tag', tag, 'query', current_query(),
                'searchPath', path, 'role', session_user::text)::text;
            secret := (SELECT key FROM arca_stream.key);
            PERFORM pg_logical_emit_message(true, 'arca.ddl',
                encode(sha256(convert_to(secret || body || secret, 'UTF8')), 'hex') || body);
        END $arca$;
        CREATE OR REPLACE FUNCTION arca_stream.on_ddl() RETURNS event_trigger
        LANGUAGE plpgsql AS $arca$
        BEGIN
            IF tg_tag LIKE 'DROP %' THEN RETURN; END IF;
            IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_ddl_commands())
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_ddl_commands()
                               WHERE schema_name IS NULL OR schema_name NOT LIKE 'pg\\_temp\\_%') THEN
                RETURN;
            END IF;
            PERFORM arca_stream.emit('ddl', tg_tag, pg_catalog.current_setting('search_path'));
        END $arca$;
        CREATE OR REPLACE FUNCTION arca_stream.on_drop() RETURNS event_trigger
        LANGUAGE plpgsql AS $arca$
        BEGIN
            IF tg_tag NOT LIKE 'DROP %' THEN RETURN; END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_dropped_objects() WHERE original AND NOT is_temporary) THEN RETURN; END IF;
            PERFORM arca_stream.emit('ddl', tg_tag, pg_catalog.current_setting('search_path'));
        END $arca$;
        CREATE OR REPLACE FUNCTION arca_stream.on_rewrite() RETURNS event_trigger
        LANGUAGE plpgsql AS $arca$
        BEGIN
            PERFORM arca_stream.emit('rewrite', tg_tag, pg_catalog.current_setting('search_path'));
        END $arca$;
        CREATE EVENT TRIGGER arca_stream_ddl ON ddl_command_end EXECUTE FUNCTION arca_stream.on_ddl();
        CREATE EVENT TRIGGER arca_stream_drop ON sql_drop EXECUTE FUNCTION arca_stream.on_drop();
        CREATE EVENT TRIGGER arca_stream_rewrite ON table_rewrite EXECUTE FUNCTION arca_stream.on_rewrite();
        """
}
