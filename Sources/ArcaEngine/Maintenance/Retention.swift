import ArcaFormat
import Foundation

/// Which backups to keep, in the manner of restic's `forget`: backups
/// younger than `retentionDays` stay; older ones stay when a keep rule holds
/// them (the last N; the newest of each of the last N days, ISO weeks,
/// months); the newest verified backup always stays. Pure: the decision is a
/// function of the backups and the clock, and is unit-tested without files.
public struct RetentionPolicy: Sendable, Codable, Equatable {
    public var retentionDays: Int
    public var keepLast: Int
    public var keepDaily: Int
    public var keepWeekly: Int
    public var keepMonthly: Int

    public init(retentionDays: Int = 30, keepLast: Int = 0, keepDaily: Int = 0, keepWeekly: Int = 0, keepMonthly: Int = 0) {
        self.retentionDays = retentionDays
        self.keepLast = keepLast
        self.keepDaily = keepDaily
        self.keepWeekly = keepWeekly
        self.keepMonthly = keepMonthly
    }

    public struct Candidate: Sendable {
        public var id: BackupID
        public var verified: Bool
        /// When it was taken: its manifest's time where readable, else its id's.
        public var date: Date?
        public init(id: BackupID, verified: Bool, date: Date? = nil) {
            self.id = id
            self.verified = verified
            self.date = date ?? id.date
        }

        /// A listed backup, dated by its manifest; verified when its last verification found it intact.
        public init?(_ listing: BackupListing) {
            guard let id = BackupID(listing.id) else { return nil }
            self.init(id: id, verified: listing.integrity == .verified, date: listing.date)
        }
    }

    public struct Decision: Sendable, Codable, Equatable {
        public var id: String
        public var keep: Bool
        /// Why it stays ("within 30 days", "daily 2024-12-01", ...); empty when removed.
        public var reasons: [String]
    }

    public func decide(_ backups: [Candidate], now: Date) -> [Decision] {
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var reasons: [String: [String]] = [:]
        func hold(_ id: BackupID, _ reason: String) { reasons[id.rawValue, default: []].append(reason) }
        // A backup dated in the future is kept but counts for nothing: it
        // must not outlive, or stand in for, every real backup.
        let future = backups.filter { ArchiveTrust.isFutureDated($0.date, now: now) }
        for backup in future { hold(backup.id, "dated in the future, not counted") }
        let newestFirst = backups.filter { !ArchiveTrust.isFutureDated($0.date, now: now) }
            .sorted { ($0.date ?? .distantPast, $0.id) > ($1.date ?? .distantPast, $1.id) }

        for backup in newestFirst.prefix(keepLast) { hold(backup.id, "last \(keepLast)") }
        func keepNewestPer(_ count: Int, _ label: String, _ bucket: (Date) -> String) {
            guard count > 0 else { return }
            var seen: [String] = []
            for backup in newestFirst {
                guard let date = backup.date else { continue }
                let key = bucket(date)
                if seen.contains(key) { continue }
                guard seen.count < count else { break }
                seen.append(key)
                hold(backup.id, "\(label) \(key)")
            }
        }
        keepNewestPer(keepDaily, "daily") { date in
            let c = calendar.dateComponents([.year, .month, .day], from: date)
            return String(format: "%04d-%02d-%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0)
        }
        keepNewestPer(keepWeekly, "weekly") { date in
            let c = calendar.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
            return String(format: "%04d-W%02d", c.yearForWeekOfYear ?? 0, c.weekOfYear ?? 0)
        }
        keepNewestPer(keepMonthly, "monthly") { date in
            let c = calendar.dateComponents([.year, .month], from: date)
            return String(format: "%04d-%02d", c.year ?? 0, c.month ?? 0)
        }
        let cutoff = now.addingTimeInterval(-Double(retentionDays) * 86_400)
        for backup in newestFirst where (backup.date ?? .distantPast) > cutoff {
            hold(backup.id, "within \(retentionDays) days")
        }
        if let newestVerified = newestFirst.first(where: \.verified) {
            hold(newestVerified.id, "newest verified backup")
        }
        return (future + newestFirst).map { backup in
            let why = reasons[backup.id.rawValue] ?? []
            return Decision(id: backup.id.rawValue, keep: !why.isEmpty, reasons: why)
        }
    }
}
