import ArcaEngine
import ArcaFormat
import ArcaPostgres
import Foundation
import HTTPTypes
import Hummingbird

/// The `/api/backup` routes: the contract the medical-records application
/// speaks (field names exactly as it expects) and the rest of the API.
struct BackupController: Sendable {
    let configuration: ServerConfiguration
    let jobs: BackupJobs
    let audit: AuditSink

    var repository: Repository { configuration.service.repository }

    func register(on api: RouterGroup<ArcaRequestContext>) {
        api.post("backup", use: create)
        api.get("backup", use: list)
        api.delete("backup", use: cleanup)
        api.post("backup/restore", use: restore)
        api.get("backup/:id", use: show)
        api.post("backup/:id/verify", use: verify)
        api.delete("backup/:id", use: delete)
        api.get("status", use: status)
    }

    // MARK: Create

    struct Created: Encodable {
        var success = true
        var backupId: String
        var size: String
        var timestamp: String
        var bytes: UInt64
        var tables: Int
        var rows: UInt64
        var durationSeconds: Double
    }

    struct Accepted: Encodable {
        var success = true
        var backupId: String
        var status = "running"
        var statusUrl: String
    }

    @Sendable func create(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let identity = try context.require(.operator)
        guard let database = configuration.service.database else {
            throw APIError(.serviceUnavailable, "not_configured", "DATABASE_URL is not set on the server.")
        }
        let asynchronous = request.uri.queryParameters["wait"] == "false"
            || (request.headers[HTTPField.Name("Prefer")!] ?? "").lowercased().contains("respond-async")
        var options = BackupOptions(source: database, repository: repository)
        options.jobs = 2
        options.trigger = "api"
        options.encryptionKey = configuration.service.encryptionKey
        options.cloud = configuration.service.cloud
        let trail = audit.trail("backup", actor: identity.subject, clientIP: context.clientIP)
        let jobs = self.jobs
        let runner = BackupRunner(options: options)
        // The id is known once the archive is reserved; an early failure
        // (already running, unreachable database) is answered directly.
        let reserved = AsyncThrowingStream<String, any Error>.makeStream()
        Thread {
            var id: String?
            let result = Result {
                try trail.run(details: ["trigger": "manual"], describe: { (result: BackupResult) in
                    (result.backupId, ["bytes": String(result.bytes), "rows": String(result.rows), "tables": String(result.tables)])
                }) {
                    try runner.run(started: { backupID in
                        id = backupID.rawValue
                        let semaphore = DispatchSemaphore(value: 0)
                        Task { await jobs.started(backupID.rawValue); semaphore.signal() }
                        semaphore.wait()
                        reserved.continuation.yield(backupID.rawValue)
                    }, progress: { progress in
                        if let id { Task { await jobs.progress(id, progress) } }
                    })
                }
            }
            if let id {
                let semaphore = DispatchSemaphore(value: 0)
                Task { await jobs.finished(id, result); semaphore.signal() }
                semaphore.wait()
            }
            switch result {
            case .success: reserved.continuation.finish()
            case .failure(let error): reserved.continuation.finish(throwing: error)
            }
        }.start()

        var iterator = reserved.stream.makeAsyncIterator()
        guard let id = try await iterator.next() else {
            throw APIError(.internalServerError, "backup_failed", "The backup ended without an id.")
        }
        if asynchronous {
            return JSONBody.response(Accepted(backupId: id, statusUrl: "/api/backup/\(id)"), status: .accepted)
        }
        while try await iterator.next() != nil {}
        guard let job = await jobs.job(id), let result = job.result else {
            throw APIError(.internalServerError, "backup_failed", await jobs.job(id)?.error ?? "The backup failed.")
        }
        return JSONBody.response(Created(
            backupId: result.backupId, size: SizeText.format(result.bytes),
            timestamp: BackupID(result.backupId)?.date.map(Manifest.timestamp) ?? job.startedAt,
            bytes: result.bytes, tables: result.tables, rows: result.rows, durationSeconds: result.durationSeconds))
    }

    // MARK: List, show

    struct Listed: Encodable {
        var id: String
        var timestamp: String?
        var size: String
        var type: String
        var integrity: String
        var bytes: UInt64
        var tables: Int?
        var rows: UInt64?
        var location = "local"
    }

    @Sendable func list(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let identity = try context.require(.viewer)
        let repository = self.repository
        let key = configuration.service.encryptionKey
        let listings = try await blocking { try repository.listings(key: key) }
        await audit.record(action: "list", actor: identity.subject, clientIP: context.clientIP, outcome: "success")
        struct Body: Encodable {
            var success = true
            var backups: [Listed]
        }
        return JSONBody.response(Body(backups: listings.map { listing in
            Listed(
                id: listing.id, timestamp: listing.timestamp, size: SizeText.format(listing.bytes),
                type: listing.trigger == "scheduled" || listing.trigger == "missed" ? "scheduled" : "manual",
                integrity: listing.integrity == "verified" ? "verified" : listing.integrity == "unverified" ? "unverified" : "failed",
                bytes: listing.bytes, tables: listing.tables, rows: listing.rows)
        }))
    }

    @Sendable func show(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        _ = try context.require(.viewer)
        let id = try backupID(context)
        if let job = await jobs.job(id.rawValue), job.status != "completed" {
            struct Running: Encodable {
                var success = true
                var backupId: String
                var status: String
                var startedAt: String
                var progress: Progress
                var error: String?
                struct Progress: Encodable { var tablesDone: Int; var tablesTotal: Int; var rawBytes: UInt64 }
            }
            return JSONBody.response(Running(
                backupId: id.rawValue, status: job.status, startedAt: job.startedAt,
                progress: .init(tablesDone: job.tablesDone, tablesTotal: job.tablesTotal, rawBytes: job.rawBytes), error: job.error))
        }
        let repository = self.repository
        let key = configuration.service.encryptionKey
        let (manifest, size, integrity) = try await blocking {
            let source = try FileSource(path: try repository.locate(id.rawValue))
            let manifest = try ArchiveReader(source: source, key: key).manifest
            let record = repository.verificationRecord(id)
            return (manifest, source.size, record.map { $0.intact ? "verified" : "failed" } ?? "unverified")
        }
        struct Summary: Encodable {
            var success = true
            var backupId: String
            var status = "completed"
            var timestamp: String
            var completedAt: String
            var size: String
            var bytes: UInt64
            var integrity: String
            var database: String
            var serverVersion: String
            var rows: UInt64
            var tables: [Table]
            struct Table: Encodable { var name: String; var rows: UInt64; var bytes: UInt64 }
        }
        return JSONBody.response(Summary(
            backupId: manifest.backupId, timestamp: manifest.startedAt, completedAt: manifest.completedAt,
            size: SizeText.format(size), bytes: size, integrity: integrity, database: manifest.source.database,
            serverVersion: manifest.source.serverVersion, rows: manifest.totals.rows,
            tables: manifest.tables.map { .init(name: $0.qualifiedName, rows: $0.rows, bytes: $0.rawBytes) }))
    }

    // MARK: Verify, delete, cleanup

    @Sendable func verify(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let identity = try context.require(.operator)
        let id = try backupID(context)
        let repository = self.repository
        let trail = audit.trail("verify", actor: identity.subject, clientIP: context.clientIP)
        let key = configuration.service.encryptionKey
        let result = try await blocking {
            let result = try Verification(path: try repository.locate(id.rawValue), repository: repository, key: key).run()
            try trail.record(outcome: result.intact ? "success" : "failure", target: id.rawValue, error: result.problems.first)
            return result
        }
        struct Body: Encodable {
            var success: Bool
            var backupId: String
            var integrity: String
            var problems: [String]
            var chunks: Int
            var bytes: UInt64
        }
        return JSONBody.response(Body(
            success: result.intact, backupId: id.rawValue, integrity: result.intact ? "verified" : "failed",
            problems: result.problems, chunks: result.chunks, bytes: result.bytes))
    }

    @Sendable func delete(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let identity = try context.require(.admin)
        let id = try backupID(context)
        let repository = self.repository
        let trail = audit.trail("delete", actor: identity.subject, clientIP: context.clientIP)
        let freed = try await blocking { try trail.run(target: id.rawValue) { try repository.remove(id) } }
        struct Body: Encodable { var success = true; var message: String; var freedBytes: UInt64 }
        return JSONBody.response(Body(message: "Backup \(id) removed", freedBytes: freed))
    }

    @Sendable func cleanup(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let identity = try context.require(.admin)
        var configured = Cleanup(repository: repository, policy: configuration.service.retention)
        configured.cloud = configuration.service.cloud.map { ($0, configuration.service.cloudRetention) }
        configured.staleUploadHours = configuration.service.staleUploadHours
        configured.key = configuration.service.encryptionKey
        let cleanup = configured
        let trail = audit.trail("cleanup", actor: identity.subject, clientIP: context.clientIP)
        let result = try await blocking {
            try trail.run(details: ["trigger": "api"], describe: { (result: CleanupResult) in
                (nil, ["removed": String(result.removed.count), "freedBytes": String(result.freedBytes)])
            }) { try cleanup.run() }
        }
        struct Body: Encodable { var success = true; var deletedCount: Int; var message: String; var freedBytes: UInt64 }
        return JSONBody.response(Body(
            deletedCount: result.removed.count, message: "\(result.removed.count) old backups removed", freedBytes: result.freedBytes))
    }

    // MARK: Restore

    struct RestoreRequest: Decodable {
        var backupId: String
        var confirmRestore: Bool?
        var tables: [String]?
        var targetUrl: String?
    }

    @Sendable func restore(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let identity = try context.require(.admin)
        let body = try await JSONBody.decode(
            RestoreRequest.self, from: request, context: context, known: ["backupId", "confirmRestore", "tables", "targetUrl"])
        guard body.confirmRestore == true else {
            throw APIError(.badRequest, "confirmation_required", "Set \"confirmRestore\": true to replace the database's contents with the backup.")
        }
        guard let id = BackupID(body.backupId) else {
            throw APIError(.badRequest, "invalid_backup_id", "\"\(body.backupId)\" is not a backup id (backup_YYYYMMDD_HHMMSS).")
        }
        let target: ConnectionString
        if let url = body.targetUrl {
            guard let parsed = try? ConnectionString(url) else { throw APIError(.badRequest, "invalid_target", "targetUrl is not a valid connection string.") }
            guard configuration.allowsRestore(into: parsed) else {
                throw APIError(.forbidden, "target_not_allowed", "Restores into \(parsed.redacted) are not allowed by the server's configuration (ARCA_RESTORE_TARGETS).")
            }
            target = parsed
        } else {
            guard let database = configuration.service.database else {
                throw APIError(.serviceUnavailable, "not_configured", "DATABASE_URL is not set on the server.")
            }
            target = database
        }
        let repository = self.repository
        let key = configuration.service.encryptionKey
        let cloud = configuration.service.cloud
        let trail = audit.trail("restore", actor: identity.subject, clientIP: context.clientIP)
        let result = try await blocking {
            try trail.run(target: id.rawValue, details: ["database": target.redacted], describe: { (result: RestoreResult) in
                (result.backupId, ["tables": String(result.restoredTables.count), "rows": String(result.rows)])
            }) {
                let archive = try ArchiveReference.locate(id.rawValue, repository: repository, cloud: cloud)
                var options = RestoreOptions(archive: archive, target: target)
                options.confirmed = true
                options.key = key
                // Replace what the backup holds, atomically: drop and recreate its objects in one transaction.
                options.clean = (body.tables ?? []).isEmpty
                options.dataOnly = !(body.tables ?? []).isEmpty
                options.tables = TableFilter(include: body.tables ?? [])
                return try RestoreRunner(options: options).run()
            }
        }
        struct Body: Encodable { var success = true; var message = "Backup restored successfully"; var restoredTables: [String]; var rows: UInt64 }
        return JSONBody.response(Body(
            restoredTables: result.restoredTables.map { $0.hasPrefix("public.") ? String($0.dropFirst(7)) : $0 }, rows: result.rows))
    }

    // MARK: Status

    @Sendable func status(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        _ = try context.require(.viewer)
        let service = configuration.service
        let status = try await blocking { try service.status() }
        struct Body: Encodable {
            var success = true
            var status: ServiceStatus
            enum CodingKeys: CodingKey { case success }
            func encode(to encoder: any Encoder) throws {
                try status.encode(to: encoder)
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(success, forKey: .success)
            }
        }
        return JSONBody.response(Body(status: status))
    }

    /// The `{id}` path parameter, checked to be a backup id before any file is touched.
    private func backupID(_ context: ArcaRequestContext) throws -> BackupID {
        let text = context.parameters.get("id") ?? ""
        guard let id = BackupID(text) else {
            throw APIError(.badRequest, "invalid_backup_id", "\"\(text.prefix(80))\" is not a backup id (backup_YYYYMMDD_HHMMSS).")
        }
        return id
    }
}
