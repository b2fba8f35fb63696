import ArcaEngine
import ArcaPostgres
import Foundation

public struct InitReport: Codable, Sendable {
    public struct Check: Codable, Sendable {
        public var name: String
        /// `ok`, `warning` (optional, or advice) or `error` (required; init fails).
        public var state: String
        public var detail: String
        /// What to set or run to fix it.
        public var fix: String?
    }

    public var ready: Bool
    public var checks: [Check]
}

/// `arca init`: checks the environment and prepares the repository. Safe to
/// run again: it only creates what is missing, and removes leftovers in
/// `temp/` only when no backup is running. Writes nothing secret to disk.
public struct Initialization: Sendable {
    public let environment: [String: String]
    public let repository: String?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, repository: String? = nil) {
        self.environment = environment
        self.repository = repository
    }

    public func run() -> InitReport {
        var checks: [InitReport.Check] = []
        func check(_ name: String, _ state: String, _ detail: String, fix: String? = nil) {
            checks.append(.init(name: name, state: state, detail: detail, fix: fix))
        }

        let configuration: ServiceConfiguration
        do {
            configuration = try ServiceConfiguration(environment: environment, repository: repository)
            check("schedules", "ok", "backups \(configuration.backupSchedule.expression), cleanup \(configuration.cleanupSchedule.expression), time zone \(configuration.timeZone.identifier), retention \(configuration.retention.retentionDays) days")
        } catch {
            check("configuration", "error", "\(error)", fix: "Correct the variable named above (see `arca start --help`).")
            return InitReport(ready: false, checks: checks)
        }

        if let database = configuration.database {
            do {
                let connection = try PostgresConnection(database, applicationName: "arca init")
                let version = try connection.execute("SHOW server_version").singleValue ?? "?"
                let size = try connection.execute("SELECT pg_catalog.pg_database_size(pg_catalog.current_database())").singleValue.flatMap { UInt64($0) } ?? 0
                check("database", "ok", "\(database.redacted): PostgreSQL \(version), \(size / 1_000_000) MB")
                do {
                    let tools = try PostgresTools.describe(serverMajor: connection.serverVersionNumber / 10000, directory: configuration.postgresBinDirectory)
                    check("pg_dump", "ok", tools)
                } catch {
                    check("pg_dump", "error", "\(error)", fix: "apt-get install postgresql-client-\(connection.serverVersionNumber / 10000), or set ARCA_PG_BINDIR")
                }
            } catch {
                check("database", "error", "\(error)", fix: "Check DATABASE_URL and that the server accepts connections (pg_isready).")
            }
        } else {
            check("database", "error", "DATABASE_URL is not set.", fix: "export DATABASE_URL=postgresql://user@host:5432/database")
        }

        if let secret = environment["JWT_SECRET"], !secret.isEmpty {
            if secret.utf8.count < 32 {
                check("JWT_SECRET", "error", "JWT_SECRET has \(secret.utf8.count) bytes; the HTTP API needs at least 32.", fix: "export JWT_SECRET=$(openssl rand -base64 48)")
            } else {
                check("JWT_SECRET", "ok", "set (\(secret.utf8.count) bytes)")
            }
        } else {
            check("JWT_SECRET", "warning", "JWT_SECRET is not set: the HTTP API will refuse to start without it.", fix: "export JWT_SECRET=$(openssl rand -base64 48)")
        }

        if let cloud = configuration.cloud {
            do {
                let archives = try cloud.archives()
                check("cloud storage", "ok", "\(cloud.place) reachable, \(archives.count) backup(s); cloud retention \(configuration.cloudRetention.retentionDays) days")
            } catch {
                check("cloud storage", "error", "\(error)", fix: "Check AWS_S3_BUCKET, AWS_REGION, the credentials and AWS_ENDPOINT_URL, and that the bucket exists.")
            }
        } else {
            check("cloud storage", "warning", "not configured: backups stay on this host only",
                  fix: "Set AWS_S3_BUCKET, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for non-AWS storage).")
        }
        switch configuration.encryptionKey {
        case .key(_)?:
            check("encryption", "ok", "every backup is encrypted (AES-256-GCM), key id \(configuration.encryptionKey?.keyID ?? "-")")
        case .passphrase(let passphrase)?:
            check("encryption", "ok", "every backup is encrypted (AES-256-GCM) under a passphrase (\(passphrase.cost))")
        case nil:
            check("encryption", "warning", "no key: backups are stored unencrypted",
                  fix: "arca keygen --output /path/to/arca.key && export ARCA_KEY_FILE=/path/to/arca.key")
        }

        let repository = configuration.repository
        do {
            try repository.prepare()
            var detail = "\(repository.root) (local/ and temp/, mode 0700)"
            if let lock = try? repository.lockForWriting("init") {
                // lockForWriting removed what a crashed run left in temp/.
                lock.release()
            } else {
                detail += "; a backup is running, temp/ left alone"
            }
            try AuditTrail(repository: repository, action: "init", mirror: configuration.auditMirror).record(outcome: .success)
            check("repository", "ok", detail + "; audit log \(repository.root)/audit.log")
        } catch {
            check("repository", "error", "\(error)", fix: "Choose a writable folder with --repo or ARCA_REPO.")
        }
        return InitReport(ready: !checks.contains { $0.state == "error" }, checks: checks)
    }
}
