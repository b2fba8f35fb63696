import Foundation

/// A rate in bytes per second, as people write it: `40MiB`, `40MB`,
/// `500KiB`, `1GiB`, or plain bytes (`/s` may follow; per second is implied).
/// The CLI's flags and the `ARCA_*_MAX_RATE` settings share this one parser.
public struct ByteRate: Sendable, Equatable, CustomStringConvertible {
    public let bytesPerSecond: UInt64

    /// Below this a setting is almost surely a forgotten unit (`40` for
    /// `40MiB`), and a backup would take days.
    public static let minimum: UInt64 = 64 << 10

    public init(bytesPerSecond: UInt64) {
        precondition(bytesPerSecond >= Self.minimum, "a rate below \(Self.minimum) bytes per second")
        self.bytesPerSecond = bytesPerSecond
    }

    static let units: [String: UInt64] = [
        "": 1, "b": 1,
        "kb": 1_000, "mb": 1_000_000, "gb": 1_000_000_000,
        "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
    ]

    /// `setting` names the flag or variable in the error: `--max-rate`, `ARCA_MAX_RATE`.
    public init(parsing text: String, setting: String) throws {
        func refuse(_ reason: String) -> OperationError {
            .invalidConfiguration(
                "\(setting) \(reason), not \"\(text.prefix(40))\": bytes per second as a whole number and a unit, for example 40MiB (KiB, MiB, GiB, KB, MB, GB, or plain bytes).")
        }
        var body = text.filter { !$0.isWhitespace }.lowercased()[...]
        if body.hasSuffix("/s") { body = body.dropLast(2) }
        let digits = body.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let unit = Self.units[String(body.dropFirst(digits.count))] else {
            throw refuse("must be a rate")
        }
        guard let count = UInt64(digits) else { throw refuse("is too large") }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: unit)
        guard !overflow else { throw refuse("is too large") }
        guard bytes > 0 else { throw refuse("must be more than 0") }
        guard bytes >= Self.minimum else { throw refuse("must be at least 64KiB (a forgotten unit?)") }
        bytesPerSecond = bytes
    }

    /// `40 MiB/s`, `500 KiB/s`, `40000000 B/s`: exact, for messages and logs.
    public var description: String {
        for (name, size) in [("GiB", UInt64(1) << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytesPerSecond % size == 0 {
            return "\(bytesPerSecond / size) \(name)/s"
        }
        return "\(bytesPerSecond) B/s"
    }
}

/// A token bucket shared by every thread or task that moves the bytes it
/// limits: each takes tokens for the bytes it moved (or is about to send)
/// and waits while the bucket is in debt. The bucket holds at most `burst`
/// tokens, so an idle spell buys at most `burst` bytes at full speed; a
/// take larger than the balance is allowed and repaid by waiting (a rate
/// below one chunk per second still works, a chunk at a time). After `t`
/// seconds at most `burst + rate × t` bytes have been taken, whatever the
/// number of takers.
public final class RateLimiter: @unchecked Sendable {
    public let rate: ByteRate
    public let burst: UInt64
    private let lock = NSLock()
    /// Negative: debt, repaid at `rate`.
    private var tokens: Double
    private var last: UInt64?

    /// The longest sleep between looks at `stopped`: a cancelled backup stops this soon.
    static let slice: UInt64 = 50_000_000

    public init(rate: ByteRate, burst: UInt64 = UInt64(4 << 20)) {
        self.rate = rate
        self.burst = max(burst, 1)
        tokens = Double(self.burst)
    }

    /// Takes `bytes` tokens at `now` (monotonic nanoseconds); returns how
    /// long the taker must wait, in nanoseconds, for the debt to be repaid.
    func reserve(_ bytes: Int, now: UInt64) -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        if let last, now > last {
            tokens = min(Double(burst), tokens + Double(now - last) * Double(rate.bytesPerSecond) / 1e9)
        }
        last = max(last ?? now, now)
        tokens -= Double(max(bytes, 0))
        guard tokens < 0 else { return 0 }
        return UInt64((-tokens / Double(rate.bytesPerSecond) * 1e9).rounded(.up))
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Thrown by the blocking `take` when `stopped` became true while it waited.
    public struct Stopped: Error {}

    /// Takes tokens for `bytes`, blocking the calling thread while the
    /// bucket is in debt. For the engine's own threads only: never on
    /// Swift's cooperative pool. `stopped` (a cancellation, a failed
    /// sibling) is looked at every 50 ms while waiting.
    public func take(_ bytes: Int, unless stopped: () -> Bool) throws(Stopped) {
        let deadline = Self.now() + reserve(bytes, now: Self.now())
        while true {
            if stopped() { throw Stopped() }
            let now = Self.now()
            guard now < deadline else { return }
            usleep(UInt32(min(deadline - now, Self.slice) / 1000) + 1)
        }
    }

    /// Takes tokens for `bytes`, suspending (not blocking) while the bucket
    /// is in debt. Throws `CancellationError` when the task is cancelled or
    /// `stopped` becomes true.
    public func take(_ bytes: Int, unless stopped: @Sendable () -> Bool = { false }) async throws {
        let deadline = Self.now() + reserve(bytes, now: Self.now())
        while true {
            if stopped() { throw CancellationError() }
            try Task.checkCancellation()
            let now = Self.now()
            guard now < deadline else { return }
            try await Task.sleep(nanoseconds: min(deadline - now, Self.slice))
        }
    }
}
