import ArcaPostgres
import Foundation

/// A PostgreSQL 15 cluster of one test's own, for faults the shared test
/// server must not suffer: stopping it, crashing it, replicating it.
///
/// `initdb` refuses root, so the cluster belongs to the `postgres` OS user
/// and every server program runs as that user. It listens only on a unix
/// socket in its own folder (no TCP), so its port merely names the socket
/// file and can never collide with another server. `destroy()` stops it and
/// deletes the folder.
public final class PrivateCluster: Sendable {
    public static let binaries = "/usr/lib/postgresql/15/bin"
    static let osUser = "postgres"

    /// Root (initdb refuses to run as root, but only root can become
    /// `postgres` without a password), the `postgres` user and the binaries.
    public static var isAvailable: Bool {
        getuid() == 0 && getpwnam(osUser) != nil && FileManager.default.isExecutableFile(atPath: binaries + "/initdb")
    }

    /// The folder holding `data/`, the socket and `server.log`; owned by `postgres`.
    public let root: String
    public let port: Int
    public var dataDirectory: String { root + "/data" }
    public var socketDirectory: String { root }
    public var logFile: String { root + "/server.log" }

    private static let ports = Counter()

    /// Makes the folder; the cluster itself is made by `init(label:settings:)`
    /// or `standby(label:)`.
    private init(label: String) throws {
        // Under /tmp, not NSTemporaryDirectory(): `postgres` must be able to
        // enter it, and a unix socket path must stay under 108 bytes.
        root = "/tmp/arca-pg-\(label.prefix(20))-\(UUID().uuidString.prefix(8))"
        port = 55_000 + Self.ports.next()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try Tool.run("chown", [Self.osUser + ":", root])
    }

    /// A new, running cluster with `settings` added to postgresql.conf.
    public convenience init(label: String, settings: [String: String] = [:]) throws {
        try self.init(label: label)
        do {
            try runAsPostgres("initdb", ["-D", dataDirectory, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            // The tests crash servers on purpose; losing fsync's guarantee
            // against an OS crash costs nothing here and saves a lot of time.
            try configure(["fsync": "off"].merging(settings) { $1 })
            try start()
        } catch {
            destroy()
            throw error
        }
    }

    /// A hot standby of this cluster, streaming its WAL: a base backup made
    /// with `pg_basebackup -R`, which writes `primary_conninfo` (this
    /// cluster's socket) and `standby.signal`.
    public func standby(label: String) throws -> PrivateCluster {
        let standby = try PrivateCluster(label: label)
        do {
            try runAsPostgres("pg_basebackup", [
                "-D", standby.dataDirectory, "-R", "-X", "stream", "-c", "fast", "--no-sync",
                "-h", socketDirectory, "-p", String(port), "-U", "postgres",
            ])
            // The copied postgresql.conf names this cluster's port and
            // socket; later lines win.
            try standby.configure(["hot_standby": "on"])
            try standby.start()
        } catch {
            standby.destroy()
            throw error
        }
        return standby
    }

    private func configure(_ settings: [String: String]) throws {
        var lines = [
            "listen_addresses = ''",
            "port = \(port)",
            "unix_socket_directories = '\(socketDirectory)'",
        ]
        lines += settings.sorted { $0.key < $1.key }.map { "\($0.key) = '\($0.value)'" }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory + "/postgresql.conf"))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(("\n# PrivateCluster\n" + lines.joined(separator: "\n") + "\n").utf8))
    }

    public func start() throws {
        try runAsPostgres("pg_ctl", ["-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "start"])
    }

    /// `mode`: `smart`, `fast` or `immediate` (the postmaster and every
    /// backend quit at once, as in a crash; the next start recovers).
    public func stop(mode: String = "fast") throws {
        try runAsPostgres("pg_ctl", ["-D", dataDirectory, "-m", mode, "-w", "-t", "60", "stop"])
    }

    public var isRunning: Bool {
        (try? runAsPostgres("pg_ctl", ["-D", dataDirectory, "status"])) != nil
    }

    /// Stops the server if it runs and deletes everything. Never throws: it
    /// runs from `defer`.
    public func destroy() {
        if isRunning { try? stop(mode: "immediate") }
        try? FileManager.default.removeItem(atPath: root)
    }

    public func connectionString(database: String = "postgres") throws -> ConnectionString {
        try ConnectionString("host=\(socketDirectory) port=\(port) user=postgres dbname=\(database)")
    }

    public func connect(database: String = "postgres") throws -> PostgresConnection {
        try PostgresConnection(try connectionString(database: database), applicationName: "arca tests")
    }

    @discardableResult
    public func execute(_ sql: String, database: String = "postgres") throws -> QueryResult {
        try connect(database: database).execute(sql)
    }

    public func value(_ sql: String, database: String = "postgres") throws -> String? {
        try execute(sql, database: database).singleValue
    }

    public func createDatabase(_ name: String) throws {
        try execute("CREATE DATABASE \(SQLIdentifier.quote(name)) TEMPLATE template0")
    }

    /// Runs a server program as `postgres`, from `/` (the test's own working
    /// folder may be closed to that user), through a shell that first closes
    /// every inherited descriptor above stderr. Foundation's `Process` learns
    /// that a child exited when a socket it hands the child is closed; the
    /// server that `pg_ctl start` leaves running would inherit that socket and
    /// make `waitUntilExit` wait until the server stops.
    @discardableResult
    private func runAsPostgres(_ program: String, _ arguments: [String]) throws -> Tool.Output {
        let closeDescriptorsThenRun = #"cd / && for fd in /proc/$$/fd/*; do fd=${fd##*/}; if (( fd > 2 )); then eval "exec $fd>&-"; fi; done; exec "$@""#
        return try Tool.run(
            "/bin/bash", ["-c", closeDescriptorsThenRun, "bash", "runuser", "-u", Self.osUser, "--", Self.binaries + "/" + program] + arguments)
    }
}
