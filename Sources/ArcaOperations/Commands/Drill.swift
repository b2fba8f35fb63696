import ArcaEngine
import ArcaFormat
import ArcaPostgres
import Foundation

extension Operations {
    /// Restores a backup (default: the newest, by its manifest's time, in
    /// the repository or else the bucket) into a scratch database on
    /// `ARCA_DRILL_URL`'s server (default `DATABASE_URL`'s), checks it and
    /// drops it. A drill whose check fails throws `DrillFailure`.
    public func drill(backup: String? = nil, allowUnencrypted: Bool = false) throws -> DrillResult {
        try trail("drill").run(target: backup, details: ["trigger": requester.trigger.rawValue], summary: { (result: DrillResult) in
            AuditSummary(target: result.backupId, details: ["passed": String(result.passed), "rows": String(result.rows)])
        }) {
            guard let server = configuration.drillTarget ?? configuration.database else {
                throw OperationError.invalidConfiguration("A drill needs a server: set DATABASE_URL (the drill uses a scratch database there) or ARCA_DRILL_URL.")
            }
            let archive: ArchiveReference
            if let backup {
                archive = try locate(backup)
            } else {
                archive = try newestArchive()
            }
            var drill = Drill(archive: archive, server: server)
            drill.key = configuration.encryptionKey
            drill.allowUnencrypted = allowUnencrypted
            drill.postgresBinDirectory = configuration.postgresBinDirectory
            drill.cloud = configuration.cloud
            let result = try drill.run()
            guard result.passed else { throw DrillFailure(result: result) }
            return result
        }
    }

    /// Why the scheduled drills cannot run, or nil when they can (or none
    /// is scheduled): no server, a server that cannot be reached, or a role
    /// that may not create the scratch database. Said at start-up and in
    /// `status`, so a drill is never skipped in silence.
    public func drillReadiness() -> String? {
        guard configuration.drillSchedule != nil else { return nil }
        guard let server = configuration.drillTarget ?? configuration.database else {
            return "Restore drills are scheduled but have no server: set DATABASE_URL (the drill uses a scratch database there) or ARCA_DRILL_URL, or ARCA_DRILL_SCHEDULE=off."
        }
        let maintenance = server.replacing(database: "postgres")
        do {
            let connection = try PostgresConnection(maintenance, applicationName: "arca drill check")
            defer { connection.close() }
            let allowed = try connection.execute(
                "SELECT rolsuper OR rolcreatedb FROM pg_catalog.pg_roles WHERE rolname = current_user", during: "checking the drill role"
            ).singleValue == "t"
            guard allowed else {
                return "Restore drills cannot run on \(maintenance.redacted): role \(connection.user) may not create the scratch database (it needs CREATEDB). Grant it, or point ARCA_DRILL_URL at a server where it may."
            }
            return nil
        } catch {
            return "Restore drills cannot run: \(error)"
        }
    }

    /// The newest backup (`newestBackup`), its local copy if it has one.
    func newestArchive(now: Date = Date()) throws -> ArchiveReference {
        let listings = try self.listings(now: now)
        guard let newest = listings.newest(now: now) else {
            throw OperationError.noBackup(
                "There is no readable backup in \(repository.root)\(configuration.cloud.map { " or \($0.location)" } ?? "") (backups dated in the future are left out). Run `arca backup` first.")
        }
        let local = listings.first { $0.id == newest.id && $0.location == .local }
        guard let local else { return try locate(newest.id, fromCloud: true) }
        return .file(local.path)
    }
}
