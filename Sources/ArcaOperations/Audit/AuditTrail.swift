import ArcaEngine
import ArcaFormat
import ArcaPostgres
import Foundation

/// Records one operation in the repository's audit log: who, from where,
/// what, on which backup, how it ended, how long it took. Secrets and row
/// data never go in: errors are recorded by their description, which never
/// holds a password.
public struct AuditTrail: Sendable {
    public let repository: Repository
    public let action: String
    public let actor: String
    public let clientIP: String?
    /// A PostgreSQL database that receives a copy of every event (table
    /// `arca_audit`, created if missing), for SQL queries. Best effort: the
    /// local log is the record; a failure to mirror is reported on stderr.
    public let mirror: ConnectionString?
    /// Told how the operation ended (never that it started): the one place
    /// notifications come from, for the CLI, the API and the scheduler alike.
    public let notifier: Notifier?
    private let started = ContinuousClock.now

    public init(
        repository: Repository, action: String, actor: String = AuditTrail.cliActor, clientIP: String? = nil,
        mirror: ConnectionString? = nil, notifier: Notifier? = nil
    ) {
        self.repository = repository
        self.action = action
        self.actor = actor
        self.clientIP = clientIP
        self.mirror = mirror
        self.notifier = notifier
    }

    /// `ARCA_AUDIT_DATABASE_URL`, when set and valid.
    public static func mirror(from environment: [String: String]) -> ConnectionString? {
        environment["ARCA_AUDIT_DATABASE_URL"].flatMap { $0.isEmpty ? nil : try? ConnectionString($0) }
    }

    /// `cli:<user>` for commands run by a person or cron.
    /// From the real user id, never from `$USER`, which anyone can set.
    public static var cliActor: String {
        if let entry = getpwuid(getuid()), let name = entry.pointee.pw_name { return "cli:" + String(cString: name) }
        return "cli:uid \(getuid())"
    }

    public var log: AuditLog {
        AuditLog(path: repository.root + "/audit.log", sha256: { Digest.hash(.sha256, $0) })
    }

    /// Appends the event; throws when it cannot be written (an operation
    /// whose audit record is lost must fail).
    public func record(outcome: AuditOutcome, target: String? = nil, error: String? = nil, details: [String: String]? = nil) throws {
        try repository.prepare()
        let duration = ContinuousClock.now - started
        let event = AuditEvent(
            time: Manifest.timestamp(Date()), actor: actor, clientIP: clientIP, action: action, target: target,
            outcome: outcome,
            durationSeconds: (duration.seconds * 1000).rounded() / 1000,
            error: error, details: details)
        try log.append(event)
        if outcome != .started { notifier?.notify(NotificationEvent(event)) }
        if let mirror {
            do {
                try Self.insert(event, into: mirror)
            } catch {
                FileHandle.standardError.write(Data("arca: warning: the audit event was not copied to ARCA_AUDIT_DATABASE_URL: \(error)\n".utf8))
            }
        }
    }

    static func insert(_ event: AuditEvent, into database: ConnectionString) throws {
        let connection = try PostgresConnection(database, applicationName: "arca audit")
        try connection.execute(
            """
            CREATE TABLE IF NOT EXISTS arca_audit (
                id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL, client_ip text,
                action text NOT NULL, resource text NOT NULL, target text, outcome text NOT NULL,
                duration_seconds double precision, error text, details jsonb)
            """, during: "creating the arca_audit table")
        let details = try event.details.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        try connection.query(
            """
            INSERT INTO arca_audit (created_at, actor, client_ip, action, resource, target, outcome, duration_seconds, error, details)
            VALUES ($1::timestamptz, $2, $3, $4, 'Backup', $5, $6, $7::double precision, $8, $9::jsonb)
            """,
            [event.time, event.actor, event.clientIP, event.action, event.target, event.outcome.rawValue,
             event.durationSeconds.map { String($0) }, event.error, details],
            during: "copying the audit event")
    }

    /// Records a failure, with the outcome its kind gives (refused or
    /// failure); a failure to record it is swallowed, because the
    /// operation's own error is what the caller must report.
    public func recordFailure(_ error: any Error, target: String? = nil, details: [String: String]? = nil) {
        try? record(outcome: ErrorKind.of(error).auditOutcome, target: target, error: "\(error)", details: details)
    }
}
