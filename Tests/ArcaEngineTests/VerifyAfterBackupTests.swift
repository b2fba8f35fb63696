import ArcaEngine
import ArcaFormat
import ArcaOperations
import ArcaTesting
import Foundation
import Testing

/// Every backup of the service is read back once published, and its
/// integrity recorded; a restore drill is scheduled monthly by default.
@Suite struct VerifyAfterBackupTests {
    @Test func theServicesBackupsAreVerifiedUnlessTurnedOff() async throws {
        let source = try TestDatabase("verify_after")
        defer { source.drop() }
        try source.execute("CREATE TABLE visit (id int PRIMARY KEY); INSERT INTO visit SELECT generate_series(1, 500)")
        let repo = TestPaths.temporaryDirectory("verify-after") + "/repo"
        let environment = ["DATABASE_URL": source.connectionString.conninfo, "ARCA_REPO": repo]
        let configuration = try ServiceConfiguration(environment: environment)
        #expect(configuration.verifyAfterBackup)
        let scheduled = Operations(configuration: configuration, requester: .scheduler(.scheduled))
        let result = try await onThread { try scheduled.backup() }
        #expect(result.verified == true && result.cloudVerified == nil)
        let listing = try #require(try configuration.repository.listings().first { $0.id == result.backupId })
        #expect(listing.integrity == .verified)
        let actions = try configuration.repository.prepareAndReadAudit().filter { $0.event.outcome != .started }.map(\.event.action)
        #expect(Array(actions.suffix(2)) == ["backup", "verify"], "\(actions)")

        // Turned off for the service: the backup stays unverified.
        let off = try ServiceConfiguration(environment: environment.merging(["ARCA_VERIFY_AFTER_BACKUP": "0"]) { $1 })
        #expect(!off.verifyAfterBackup)
        let unverified = try await onThread { try Operations(configuration: off, requester: .scheduler(.scheduled)).backup() }
        #expect(unverified.verified == nil)
        #expect(try off.repository.listings().first { $0.id == unverified.backupId }?.integrity == .unverified)
        #expect(throws: OperationError.self) {
            _ = try ServiceConfiguration(environment: environment.merging(["ARCA_VERIFY_AFTER_BACKUP": "sometimes"]) { $1 })
        }
    }

    @Test func aDrillIsScheduledMonthlyByDefault() throws {
        #expect(try ServiceConfiguration(environment: [:]).drillSchedule?.expression == ServiceConfiguration.defaultDrillSchedule)
        #expect(try ServiceConfiguration(environment: ["ARCA_DRILL_SCHEDULE": "off"]).drillSchedule == nil)
        #expect(try ServiceConfiguration(environment: ["ARCA_DRILL_SCHEDULE": "0 5 * * 1"]).drillSchedule?.expression == "0 5 * * 1")
        #expect(throws: OperationError.self) { _ = try ServiceConfiguration(environment: ["ARCA_DRILL_SCHEDULE": "monthly-ish"]) }
    }

    /// A drill that cannot run is said, in `status`, never skipped in silence.
    @Test func aDrillThatCannotRunIsSaid() async throws {
        let database = try TestDatabase("drill_ready")
        let role = "arca_no_createdb_\(getpid())"
        defer {
            database.drop()
            try? TestServer.execute("DROP ROLE IF EXISTS \(role)")
        }
        let repo = TestPaths.temporaryDirectory("drill-ready") + "/repo"
        let ready = try ServiceConfiguration(environment: ["DATABASE_URL": database.connectionString.conninfo, "ARCA_REPO": repo])
        #expect(Operations(configuration: ready, requester: .commandLine).drillReadiness() == nil)

        try TestServer.execute("CREATE ROLE \(role) LOGIN NOCREATEDB")
        let limited = database.connectionString.setting("user", to: role).conninfo
        let refused = try ServiceConfiguration(environment: ["DATABASE_URL": limited, "ARCA_REPO": repo])
        let operations = Operations(configuration: refused, requester: .commandLine)
        let reason = try #require(operations.drillReadiness())
        #expect(reason.contains("CREATEDB") && reason.contains(role), "\(reason)")
        let status = try await onThread { try operations.status() }
        #expect(!status.healthy && status.problems.contains(reason), "\(status.problems)")

        let off = try ServiceConfiguration(environment: ["DATABASE_URL": limited, "ARCA_REPO": repo, "ARCA_DRILL_SCHEDULE": "off"])
        #expect(Operations(configuration: off, requester: .commandLine).drillReadiness() == nil)
        let nowhere = try ServiceConfiguration(environment: ["ARCA_REPO": repo])
        #expect(Operations(configuration: nowhere, requester: .commandLine).drillReadiness()?.contains("no server") == true)
    }

    /// Retention holds the newest backup whose verification found it
    /// intact; a newer one that failed verification, or was never verified,
    /// does not stand in for it.
    @Test func onlyAVerifiedBackupCountsAsTheOneKept() {
        let now = Date()
        // As `arca list --json` gives them.
        func listing(_ daysAgo: Double, _ integrity: String) -> BackupListing {
            let date = now.addingTimeInterval(-daysAgo * 86_400)
            let json = #"{"id":"\#(BackupID(date: date))","timestamp":"\#(Manifest.timestamp(date))","bytes":1,"integrity":"\#(integrity)","location":"local","path":""}"#
            return try! JSONDecoder().decode(BackupListing.self, from: Data(json.utf8))
        }
        let listings = [listing(40, "failed"), listing(50, "unverified"), listing(60, "verified"), listing(70, "verified")]
        let decisions = RetentionPolicy(retentionDays: 30).decide(listings.compactMap(RetentionPolicy.Candidate.init), now: now)
        #expect(decisions.filter(\.keep).map(\.id) == [listings[2].id], "\(decisions)")
        #expect(decisions.first { $0.id == listings[2].id }?.reasons == ["newest verified backup"])
    }
}
