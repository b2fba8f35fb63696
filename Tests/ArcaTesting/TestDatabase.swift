import ArcaPostgres
import Foundation

/// The PostgreSQL server the tests run against: the throwaway cluster that
/// `scripts/test.sh` starts, found through the libpq variables it exports
/// (PGHOST, PGPORT, PGUSER) and `ARCA_TEST_PG=1`. Tests fail, rather than
/// skip, when it is missing: a skipped test proves nothing.
public enum TestServer {
    public struct NotConfigured: Error, CustomStringConvertible {
        public var description: String {
            "No PostgreSQL test server: run the tests with scripts/test.sh, which starts one and sets PGHOST, PGPORT, PGUSER and ARCA_TEST_PG=1."
        }
    }

    public static func connectionString(database: String = "postgres") throws -> ConnectionString {
        try TestCluster.primary.connectionString(database: database)
    }

    public static func execute(_ sql: String) throws {
        try TestCluster.primary.execute(sql)
    }
}

/// One of the servers the tests use: the primary one (PostgreSQL 15, through
/// the libpq variables) or the PostgreSQL 18 one that `scripts/test.sh`
/// starts beside it and names in ARCA_TEST_PG18_HOST (its socket folder),
/// ARCA_TEST_PG18_PORT and ARCA_TEST_PG18_BINDIR (its psql and pg_dump).
public struct TestCluster: Sendable, CustomStringConvertible {
    /// Connection settings besides the database ("" = the libpq variables).
    let settings: String
    /// Where this server's own psql and pg_dump are; nil: those on PATH.
    public let binDirectory: String?
    public let description: String

    public static let primary = TestCluster(settings: "", binDirectory: nil, description: "the PostgreSQL 15 test server")

    /// The PostgreSQL 18 server, or nil when the environment names none.
    public static let postgres18: TestCluster? = {
        let environment = ProcessInfo.processInfo.environment
        guard let host = environment["ARCA_TEST_PG18_HOST"], let port = environment["ARCA_TEST_PG18_PORT"],
              let bin = environment["ARCA_TEST_PG18_BINDIR"], !host.isEmpty, !port.isEmpty, !bin.isEmpty
        else { return nil }
        let settings = "host=\(ConnectionString.quoteValue(host)) port=\(ConnectionString.quoteValue(port)) user=postgres"
        return TestCluster(settings: settings, binDirectory: bin, description: "the PostgreSQL 18 test server")
    }()

    /// Why the PostgreSQL 18 tests are skipped when `postgres18` is nil.
    public static let postgres18Absent =
        "no PostgreSQL 18 test server: ARCA_TEST_PG18_HOST, ARCA_TEST_PG18_PORT and ARCA_TEST_PG18_BINDIR are not set (scripts/test.sh starts one and sets them)"

    public func connectionString(database: String = "postgres") throws -> ConnectionString {
        guard ProcessInfo.processInfo.environment["ARCA_TEST_PG"] == "1" else { throw TestServer.NotConfigured() }
        return try ConnectionString("\(settings) dbname=\(ConnectionString.quoteValue(database))")
    }

    public func execute(_ sql: String) throws {
        let connection = try PostgresConnection(try connectionString())
        try connection.execute(sql)
    }

    /// This server's `program` (psql, pg_dump, …): its own when it has a bin folder.
    public func program(_ name: String) -> String {
        binDirectory.map { $0 + "/" + name } ?? name
    }
}

/// A database of its own for one test, dropped by `drop()`. Names are unique
/// per process and call, so tests can run in parallel.
public final class TestDatabase: Sendable {
    public let name: String
    public let connectionString: ConnectionString
    public let server: TestCluster

    private static let counter = Counter()

    /// `creating: false` only reserves the name, for a restore that creates
    /// the database (`--create`): the name is unique, so no such database
    /// exists, and none has to be dropped first (a drop waits for every
    /// backend of the cluster, see `drop`).
    public init(_ label: String, on server: TestCluster = .primary, creating: Bool = true) throws {
        let safe = label.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }
        name = "t_\(String(safe).prefix(30))_\(getpid())_\(Self.counter.next())"
        self.server = server
        connectionString = try server.connectionString(database: name)
        guard creating else { return }
        try server.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(name)) WITH (FORCE)")
        try server.execute("CREATE DATABASE \(SQLIdentifier.quote(name)) TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'")
    }

    /// DROP DATABASE waits until every backend of the cluster has absorbed
    /// a signal barrier, and a backend sending COPY data to a client that
    /// is not reading (another test's backup, stopped on purpose or slowed
    /// by its destination) does so only once it can send again. Tests call
    /// this from the cooperative pool's few threads: so a short wait, then
    /// the drop finishes on a thread of its own. (Not to make room for a
    /// database of the same name: see `init(_:on:creating:)`.)
    public func drop() {
        let sql = "DROP DATABASE IF EXISTS \(SQLIdentifier.quote(name)) WITH (FORCE)"
        let server = server
        do {
            let connection = try PostgresConnection(try server.connectionString())
            try connection.execute("SET statement_timeout = '2s'")
            try connection.execute(sql)
        } catch let error as PostgresError where error.sqlState == "57014" {
            Thread { try? server.execute(sql) }.start()
        } catch {}
    }

    public func connect() throws -> PostgresConnection {
        try PostgresConnection(connectionString, applicationName: "arca tests")
    }

    @discardableResult
    public func execute(_ sql: String) throws -> QueryResult {
        try connect().execute(sql)
    }

    public func value(_ sql: String) throws -> String? {
        try execute(sql).singleValue
    }

    /// Copies this database's schema (no data) into `other`, the way a user
    /// prepares a target for a data-only restore; with the owners, which
    /// `arca compare` compares (the test cluster has every role).
    public func copySchema(to other: TestDatabase) throws {
        let dump = try Tool.run(server.program("pg_dump"), ["--schema-only", "--dbname", connectionString.conninfo])
        // PostgreSQL 15.14+ wraps plain dumps in \restrict / \unrestrict psql
        // meta-commands, which the server itself does not understand.
        let sql = dump.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }
            .joined(separator: "\n")
        try other.execute(sql)
    }

    /// Loads an SQL file with psql (files with COPY ... FROM stdin need psql).
    public func load(file: String) throws {
        try Tool.run(server.program("psql"), ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", connectionString.conninfo, "-f", file])
    }

    /// A fingerprint of everything the comparison looks at, to show that a
    /// failed operation left the database exactly as it was.
    public func snapshotText() throws -> String {
        try Tool.run(server.program("pg_dump"), ["--data-only", "--dbname", connectionString.conninfo]).stdout
            .split(separator: "\n").filter { !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }
            .joined(separator: "\n")
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
