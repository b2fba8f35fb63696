@testable import ArcaEngine
import ArcaOperations
import Foundation
import Testing

/// `ByteRate` (the one parser of `--max-rate`, `ARCA_MAX_RATE`,
/// `ARCA_UPLOAD_MAX_RATE`) and `RateLimiter`. Timing is asserted only as a
/// lower bound (the bucket can never let bytes through faster than its
/// rate plus its burst), which holds however loaded the machine is.
@Suite struct RateLimiterTests {
    static let accepted: [(String, UInt64)] = [
        ("40MiB", UInt64(40 << 20)), ("40MB", 40_000_000), ("500KiB", 500 << 10), ("1GiB", 1 << 30),
        ("1048576", 1 << 20), ("1048576B", 1 << 20), ("40mib", 40 << 20), ("40MiB/s", 40 << 20), (" 40 MiB ", 40 << 20),
        ("64KiB", 64 << 10), ("2GB", 2_000_000_000),
    ]

    @Test(arguments: accepted)
    func acceptedRates(text: String, bytes: UInt64) throws {
        #expect(try ByteRate(parsing: text, setting: "ARCA_MAX_RATE").bytesPerSecond == bytes)
    }

    static let refused: [(String, String)] = [
        ("0", "more than 0"), ("0MiB", "more than 0"), ("-5MiB", "must be a rate"), ("fast", "must be a rate"),
        ("", "must be a rate"), ("MiB", "must be a rate"), ("40XB", "must be a rate"), ("1.5GiB", "must be a rate"),
        ("40MiB/h", "must be a rate"), ("0x40", "must be a rate"), ("99999999999999999999", "too large"),
        ("17179869184GiB", "too large"), ("40", "at least 64KiB"), ("65535", "at least 64KiB"),
    ]

    @Test(arguments: refused)
    func refusedRates(text: String, reason: String) {
        let error = #expect(throws: OperationError.self) { try ByteRate(parsing: text, setting: "--max-rate") }
        let message = error.map { "\($0)" } ?? ""
        #expect(message.hasPrefix("--max-rate ") && message.contains(reason) && message.contains("40MiB"), "\(message)")
    }

    @Test func descriptions() {
        #expect(ByteRate(bytesPerSecond: 40 << 20).description == "40 MiB/s")
        #expect(ByteRate(bytesPerSecond: 1 << 30).description == "1 GiB/s")
        #expect(ByteRate(bytesPerSecond: 40_000_000).description == "40000000 B/s")
    }

    @Test func configurationValidatesBothSettings() throws {
        let configuration = try ServiceConfiguration(environment: ["ARCA_MAX_RATE": "40MiB"], repository: "/tmp/arca-rate")
        #expect(configuration.backupMaxRate?.bytesPerSecond == 40 << 20)
        #expect(configuration.uploadMaxRate == nil)
        for variable in ["ARCA_MAX_RATE", "ARCA_UPLOAD_MAX_RATE"] {
            let error = #expect(throws: OperationError.self) {
                try ServiceConfiguration(environment: [variable: "-1"], repository: "/tmp/arca-rate")
            }
            #expect(error.map { "\($0)".hasPrefix(variable + " ") } == true, "\(String(describing: error))")
        }
        let cloud = try ServiceConfiguration(
            environment: [
                "ARCA_UPLOAD_MAX_RATE": "20MiB", "AWS_S3_BUCKET": "arca-rate", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                "AWS_REGION": "us-east-1",
            ], repository: "/tmp/arca-rate")
        #expect(cloud.cloud?.uploadLimiter?.rate.bytesPerSecond == 20 << 20)
    }

    /// The bucket's arithmetic on a clock of our own.
    @Test func tokensBurstAndDebt() {
        let limiter = RateLimiter(rate: ByteRate(bytesPerSecond: 1 << 20), burst: 256 << 10)
        let second: UInt64 = 1_000_000_000
        // The burst goes at once; the next byte waits for its token.
        #expect(limiter.reserve(256 << 10, now: 10 * second) == 0)
        #expect(limiter.reserve(512 << 10, now: 10 * second) == second / 2)
        // Two takers together: the second waits for the first one's debt too.
        #expect(limiter.reserve(512 << 10, now: 10 * second) == second)
        // A long idle spell refills the bucket only up to the burst.
        #expect(limiter.reserve(256 << 10, now: 100 * second) == 0)
        #expect(limiter.reserve(1 << 20, now: 100 * second) == second)
        // A take larger than the burst is allowed, and repaid by waiting.
        let small = RateLimiter(rate: ByteRate(bytesPerSecond: 64 << 10), burst: 64 << 10)
        #expect(small.reserve(4 << 20, now: 0) == 63 * second)
    }

    @Test func threadsTogetherNeverBeatTheRate() throws {
        let rate: UInt64 = 2 << 20
        let burst: UInt64 = 128 << 10
        let limiter = RateLimiter(rate: ByteRate(bytesPerSecond: rate), burst: burst)
        let takes = 16, piece = 32 << 10, threads = 2
        let start = Date()
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            Thread {
                for _ in 0..<takes { try? limiter.take(piece) { false } }
                group.leave()
            }.start()
        }
        #expect(group.wait(timeout: .now() + 60) == .success)
        let total = Double(takes * piece * threads)
        let least = (total - Double(burst)) / Double(rate)
        #expect(Date().timeIntervalSince(start) >= least * 0.99, "1 MiB at 2 MiB/s with a 128 KiB burst")
    }

    @Test func aStoppedWaitEndsSoon() throws {
        let limiter = RateLimiter(rate: ByteRate(bytesPerSecond: 64 << 10), burst: 64 << 10)
        let cancellation = Cancellation()
        let done = DispatchSemaphore(value: 0)
        let outcome = StopFlag()
        Thread {
            // About 17 minutes of debt: only the cancellation ends it.
            do { try limiter.take(64 << 20) { cancellation.isCancelled } } catch { outcome.stopped = true }
            done.signal()
        }.start()
        Thread.sleep(forTimeInterval: 0.1)
        cancellation.cancel()
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(outcome.stopped)
    }

    @Test func asyncTakersSuspendAndObeyCancellation() async throws {
        let rate: UInt64 = 2 << 20
        let limiter = RateLimiter(rate: ByteRate(bytesPerSecond: rate), burst: 64 << 10)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<2 { group.addTask { for _ in 0..<8 { try await limiter.take(32 << 10) } } }
            try await group.waitForAll()
        }
        let least = Double((2 * 8 * (32 << 10)) - (64 << 10)) / Double(rate)
        #expect((ContinuousClock.now - start).seconds >= least * 0.99)

        let stuck = Task { try await limiter.take(64 << 20) }
        try await Task.sleep(for: .milliseconds(50))
        stuck.cancel()
        await #expect(throws: CancellationError.self) { try await stuck.value }
        let closed = StopFlag()
        closed.stopped = true
        await #expect(throws: CancellationError.self) { try await limiter.take(64 << 20) { closed.stopped } }
    }
}

private final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var stopped: Bool {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}
