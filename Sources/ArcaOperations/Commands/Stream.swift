import ArcaEngine
import ArcaFormat
import ArcaPostgres
import Foundation

/// What `arca stream` may choose beyond the configuration.
public struct StreamRequest: Sendable {
    /// nil: `ARCA_SLOT`, else the database's default slot.
    public var slot: String?
    /// nil: `ARCA_SEGMENT_SECONDS`.
    public var segmentSeconds: Double?
    /// Also allowed by `ARCA_REPLICA_IDENTITY_FULL=1`.
    public var replicaIdentityFull = false

    public init() {}
}

extension Operations {
    /// Runs the change stream of `DATABASE_URL` until cancelled (audited
    /// when it starts and when it ends).
    public func stream(_ request: StreamRequest = StreamRequest(), events: (StreamEvent) -> Void) throws {
        guard let database = configuration.database else {
            throw OperationError.invalidConfiguration("DATABASE_URL is not set: there is no database to stream. Set it (or pass --database-url).")
        }
        let slot = try ReplicationNames.slot(for: database, configured: request.slot ?? configuration.streamSlot)
        var options = StreamOptions(source: database, repository: repository, slot: slot)
        options.segmentSeconds = request.segmentSeconds ?? Double(configuration.segmentSeconds)
        options.compressionLevel = configuration.compressionLevel
        options.encryptionKey = configuration.encryptionKey
        options.cloud = configuration.cloud
        options.replicaIdentityFull = request.replicaIdentityFull || configuration.replicaIdentityFull
        options.cancellation = cancellation
        try trail("stream").run(target: slot, details: ["database": database.redacted], summary: { (_: Void) in
            AuditSummary(target: slot, details: [:])
        }) {
            try ChangeStreamer(options: options).run { event in
                events(event)
                // The window resumes at the next anchored backup: take it now.
                if case .backupForced = event { forceBackup() }
            }
        }
    }

    /// A full backup beside the stream, after a schema change it cannot
    /// replay; its failure is audited like any backup's.
    private func forceBackup() {
        let operations = self
        Thread.detachNewThread { _ = try? operations.backup() }
    }

    /// Drops the change stream's slot, publication and triggers: the
    /// server keeps no more WAL for Arca. Segments already written stay.
    public func dropStream(slot configured: String? = nil) throws -> [String] {
        guard let database = configuration.database else {
            throw OperationError.invalidConfiguration("DATABASE_URL is not set: there is no database to drop the stream of. Set it (or pass --database-url).")
        }
        let slot = try ReplicationNames.slot(for: database, configured: configured ?? configuration.streamSlot)
        return try trail("stream-drop").run(target: slot, details: ["database": database.redacted], summary: { (removed: [String]) in
            AuditSummary(target: slot, details: ["removed": removed.joined(separator: "; ")])
        }) {
            let connection = try PostgresConnection(database, applicationName: "arca stream drop")
            defer { connection.close() }
            return try StreamSetup(target: database, slot: slot).uninstall(connection)
        }
    }
}
