import ArcaPostgres

/// Session settings shared by every connection Arca opens, so that COPY text
/// written by a backup reads back identically in a restore and in a
/// comparison, whatever the server's or the role's defaults are.
enum SessionSettings {
    static let portable = """
        SET client_min_messages = warning;
        SET DateStyle = 'ISO, YMD';
        SET IntervalStyle = 'postgres';
        SET extra_float_digits = 3;
        SET bytea_output = 'hex';
        SET TimeZone = 'UTC';
        SET search_path = '';
        SET statement_timeout = 0;
        SET idle_in_transaction_session_timeout = 0
        """

    /// For the connections of a parallel restore into its staging database:
    /// index builds get more memory, and commits do not wait for the WAL
    /// flush. That is safe here: the rename that publishes the database
    /// commits synchronously, which flushes all WAL written before it, and
    /// until then a crash only leaves a staging database behind.
    static let bulkLoad = """
        SET maintenance_work_mem = '256MB';
        SET synchronous_commit = off
        """

    static func apply(to connection: PostgresConnection, encoding: String? = nil) throws {
        try connection.execute(portable, during: "setting up the session")
        if let encoding {
            try connection.execute("SET client_encoding = \(SQLIdentifier.literal(encoding))", during: "setting the client encoding")
        }
    }

    /// The database's encoding: COPY text is written and read in it, so no
    /// conversion can lose a character.
    static func databaseEncoding(_ connection: PostgresConnection) throws -> String {
        try connection.execute(
            "SELECT pg_catalog.pg_encoding_to_char(encoding) FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()",
            during: "reading the database encoding"
        ).singleValue ?? "UTF8"
    }
}
