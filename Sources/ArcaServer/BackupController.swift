import ArcaEngine
import ArcaFormat
import ArcaOperations
import ArcaPostgres
import Foundation
import HTTPTypes
import Hummingbird

/// The `/api/backup` routes: the contract the medical-records application
/// speaks (field names exactly as it expects) and the rest of the API.
struct BackupController: Sendable {
    let configuration: ServerConfiguration
    let jobs: BackupJobs
    /// Set when the server shuts down: a backup it started stops cleanly.
    let cancellation: Cancellation
    /// The threads blocking work runs on (bounded; full is 503).
    let pool: BlockingPool

    /// The operations as this request's caller: audited with the token's
    /// subject and the client's address.
    func operations(_ identity: Identity, _ context: ArcaRequestContext) -> Operations {
        var operations = Operations(configuration: configuration.service, requester: .api(subject: identity.subject, clientIP: context.clientIP))
        operations.cancellation = cancellation
        return operations
    }

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
        /// An incremental backup: its base and how many tables it refers to.
        var base: String?
        var referencedTables: Int?
    }

    /// The optional body of a backup request.
    struct CreateBody: Decodable {
        /// true: incremental; false: full; absent: the server's policy (`ARCA_FULL_BACKUP_EVERY`).
        var incremental: Bool?
        /// `auto`, `text` or `binary`; absent: the server's (`ARCA_COPY_FORMAT`).
        var copyFormat: String?
    }

    struct Accepted: Encodable {
        var success = true
        var backupId: String
        var status = "running"
        var statusUrl: String
    }

    @Sendable func create(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let identity = try context.require(.operator)
        guard configuration.service.database != nil else {
            throw APIError(.serviceUnavailable, "not_configured", "DATABASE_URL is not set on the server.")
        }
        let body = try await JSONBody.decodeIfPresent(CreateBody.self, from: request, context: context, known: ["incremental", "copyFormat"])
        let copyFormat: CopyFormatChoice?
        do {
            copyFormat = try body?.copyFormat.map { try CopyFormatChoice(parsing: $0, setting: "copyFormat") }
        } catch {
            throw APIError(.badRequest, "invalid_body", "\(error)")
        }
        let backupRequest = {
            var backupRequest = BackupRequest()
            backupRequest.incremental = body?.incremental
            backupRequest.copyFormat = copyFormat
            return backupRequest
        }()
        let asynchronous = request.uri.queryParameters["wait"] == "false"
            || (request.headers[HTTPField.Name("Prefer")!] ?? "").lowercased().contains("respond-async")
        let operations = operations(identity, context)
        let jobs = self.jobs
        // The id is known once the archive is reserved; an early failure
        // (already running, unreachable database) is answered directly.
        let reserved = AsyncThrowingStream<String, any Error>.makeStream()
        try pool.submit {
            var id: String?
            let result = Result {
                try operations.backup(backupRequest, started: { backupID in
                    id = backupID.rawValue
                    jobs.started(backupID.rawValue)
                    reserved.continuation.yield(backupID.rawValue)
                }, progress: { progress in
                    if let id { jobs.progress(id, progress) }
                })
            }
            if let id { jobs.finished(id, result) }
            switch result {
            case .success: reserved.continuation.finish()
            case .failure(let error): reserved.continuation.finish(throwing: error)
            }
        }

        var iterator = reserved.stream.makeAsyncIterator()
        guard let id = try await iterator.next() else {
            throw APIError(.internalServerError, "backup_failed", "The backup ended without an id.")
        }
        if asynchronous {
            return JSONBody.response(Accepted(backupId: id, statusUrl: "/api/backup/\(id)"), status: .accepted)
        }
        while try await iterator.next() != nil {}
        guard let job = jobs.job(id), let result = job.result else {
            throw APIError(.internalServerError, "backup_failed", jobs.job(id)?.error ?? "The backup failed.")
        }
        return JSONBody.response(Created(
            backupId: result.backupId, size: SizeText.format(result.bytes),
            timestamp: BackupID(result.backupId)?.date.map(Manifest.timestamp) ?? job.startedAt,
            bytes: result.bytes, tables: result.tables, rows: result.rows, durationSeconds: result.durationSeconds,
            base: result.base, referencedTables: result.referencedTables))
    }

    // MARK: List, show

    struct Listed: Encodable {
        var id: String
        var timestamp: String?
        var size: String
        var type: String
        var integrity: Integrity
        var bytes: UInt64
        var tables: Int?
        var rows: UInt64?
        var location: StorageLocation
        var encrypted: Bool?
        var base: String?
        var durationSeconds: Double?
        /// The database it is a backup of; nil when its manifest cannot be read.
        var source: SourceIdentity?
    }

    /// A `true`/`false` query parameter, false when absent.
    static func flag(_ name: String, of request: Request) throws -> Bool {
        switch request.uri.queryParameters[Substring(name)].map(String.init) {
        case nil, "false": return false
        case "true": return true
        default: throw APIError(.badRequest, "invalid_parameter", "\(name) must be true or false.")
        }
    }

    @Sendable func list(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let operations = operations(try context.require(.viewer), context)
        let allSources = try Self.flag("allSources", of: request)
        let listings = try await pool.run { try operations.list(allSources: allSources) }
        struct Body: Encodable {
            var success = true
            var backups: [Listed]
        }
        return JSONBody.response(Body(backups: listings.map { listing in
            Listed(
                id: listing.id, timestamp: listing.timestamp, size: SizeText.format(listing.bytes),
                type: listing.trigger == .scheduled || listing.trigger == .missed ? "scheduled" : "manual",
                integrity: listing.integrity == .unreadable ? .failed : listing.integrity,
                bytes: listing.bytes, tables: listing.tables, rows: listing.rows, location: listing.location,
                encrypted: listing.encrypted, base: listing.base, durationSeconds: listing.durationSeconds, source: listing.source)
        }))
    }

    @Sendable func show(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let operations = operations(try context.require(.viewer), context)
        let id = try backupID(context)
        if let job = jobs.job(id.rawValue), job.status != .completed {
            struct Running: Encodable {
                var success = true
                var backupId: String
                var status: BackupJobs.Status
                var startedAt: String
                /// The same figures `arca backup --progress json` prints.
                var progress: OperationProgress?
                var error: String?
            }
            return JSONBody.response(Running(
                backupId: id.rawValue, status: job.status, startedAt: job.startedAt, progress: job.progress, error: job.error))
        }
        let inspection = try await pool.run { try operations.inspect(id.rawValue) }
        let (manifest, size, integrity) = (inspection.manifest, inspection.bytes, inspection.integrity)
        struct Summary: Encodable {
            var success = true
            var backupId: String
            var status = "completed"
            var timestamp: String
            var completedAt: String
            var size: String
            var bytes: UInt64
            var integrity: Integrity
            var database: String
            var serverVersion: String
            var rows: UInt64
            var tables: [Table]
            struct Table: Encodable { var name: String; var rows: UInt64; var bytes: UInt64; var copyFormat: String }
        }
        return JSONBody.response(Summary(
            backupId: manifest.backupId, timestamp: manifest.startedAt, completedAt: manifest.completedAt,
            size: SizeText.format(size), bytes: size, integrity: integrity, database: manifest.source.database,
            serverVersion: manifest.source.serverVersion, rows: manifest.tableRows,
            tables: manifest.tables.map { .init(name: $0.qualifiedName, rows: $0.rows, bytes: $0.rawBytes, copyFormat: $0.format.rawValue) }))
    }

    // MARK: Verify, delete, cleanup

    @Sendable func verify(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let operations = operations(try context.require(.operator), context)
        let id = try backupID(context)
        let result = try await pool.run { try operations.verify(VerifyRequest(backup: id.rawValue)) }
        struct Body: Encodable {
            var success: Bool
            var backupId: String
            var integrity: Integrity
            var problems: [String]
            var chunks: Int
            var bytes: UInt64
        }
        return JSONBody.response(Body(
            success: result.intact, backupId: id.rawValue, integrity: result.intact ? .verified : .failed,
            problems: result.problems, chunks: result.chunks, bytes: result.bytes))
    }

    @Sendable func delete(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let operations = operations(try context.require(.admin), context)
        let id = try backupID(context)
        let allowOtherSource = try Self.flag("allowOtherSource", of: request)
        let freed = try await pool.run { try operations.delete(id, allowOtherSource: allowOtherSource) }
        struct Body: Encodable { var success = true; var message: String; var freedBytes: UInt64 }
        return JSONBody.response(Body(message: "Backup \(id) removed", freedBytes: freed))
    }

    @Sendable func cleanup(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let operations = operations(try context.require(.admin), context)
        let result = try await pool.run { try operations.cleanup() }
        struct Body: Encodable { var success = true; var deletedCount: Int; var message: String; var freedBytes: UInt64 }
        return JSONBody.response(Body(
            deletedCount: result.removedCount, message: "\(result.removedCount) old backups removed", freedBytes: result.freedBytes))
    }

    // MARK: Restore

    struct RestoreBody: Decodable {
        var backupId: String
        var confirmRestore: Bool?
        var tables: [String]?
        /// A database named by the server's configuration (default: DATABASE_URL's).
        var target: String?
        /// No longer accepted: a request names a target, it never supplies a connection.
        var targetUrl: String?
        /// Restore a backup of another database than the configured one.
        var allowOtherSource: Bool?
    }

    @Sendable func restore(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let identity = try context.require(.admin)
        let body = try await JSONBody.decode(
            RestoreBody.self, from: request, context: context, known: ["backupId", "confirmRestore", "tables", "target", "targetUrl", "allowOtherSource"])
        guard body.confirmRestore == true else {
            throw APIError(.badRequest, "confirmation_required", "Set \"confirmRestore\": true to replace the database's contents with the backup.")
        }
        guard let id = BackupID(body.backupId) else {
            throw APIError(.badRequest, "invalid_backup_id", "\"\(body.backupId.prefix(64))\" is not a backup id (backup_YYYYMMDD_HHMMSS_mmmrrrrr).")
        }
        guard body.targetUrl == nil else {
            throw APIError(.badRequest, "invalid_target", "targetUrl is not accepted: name a target with \"target\" (DATABASE_URL's database or one of ARCA_RESTORE_TARGETS); the server supplies the connection.")
        }
        guard let target = configuration.restoreTarget(named: body.target) else {
            guard body.target != nil else {
                throw APIError(.serviceUnavailable, "not_configured", "DATABASE_URL is not set on the server.")
            }
            // The name is the caller's: say only that it is not configured.
            throw APIError(.forbidden, "target_not_allowed", "That restore target is not configured on the server (ARCA_RESTORE_TARGETS).")
        }
        var restore = RestoreRequest(backup: id.rawValue)
        restore.target = target
        restore.confirmed = true
        restore.allowOtherSource = body.allowOtherSource ?? false
        // Replace what the backup holds, atomically: drop and recreate its objects in one transaction.
        restore.clean = (body.tables ?? []).isEmpty
        restore.dataOnly = !(body.tables ?? []).isEmpty
        restore.tables = TableFilter(include: body.tables ?? [])
        let operations = operations(identity, context)
        let request = restore
        let result = try await pool.run { try operations.restore(request) }
        struct Body: Encodable { var success = true; var message = "Backup restored successfully"; var restoredTables: [String]; var rows: UInt64 }
        return JSONBody.response(Body(
            restoredTables: result.restoredTables.map { $0.hasPrefix("public.") ? String($0.dropFirst(7)) : $0 }, rows: result.rows))
    }

    // MARK: Status

    @Sendable func status(_ request: Request, context: ArcaRequestContext) async throws -> Response {
        let operations = operations(try context.require(.viewer), context)
        let status = try await pool.run { try operations.status() }
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
            throw APIError(.badRequest, "invalid_backup_id", "\"\(text.prefix(80))\" is not a backup id (backup_YYYYMMDD_HHMMSS_mmmrrrrr).")
        }
        return id
    }
}
