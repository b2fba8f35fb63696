import Foundation

/// How far a long operation has come: what the CLI's status line and
/// `--progress json`, the API's job status and `/metrics` all show.
public struct OperationProgress: Sendable, Codable, Equatable {
    public enum Operation: String, Sendable, Codable {
        case backup, restore, verify, upload, download
    }

    public var operation: Operation
    /// What it is doing now, in words ("copying tables", "building indexes and keys").
    public var phase: String
    public var tablesDone: Int
    public var tablesTotal: Int
    /// The table (or object) being worked on, when there is one.
    public var current: String?
    /// Bytes done: of COPY text read (backup) or loaded (restore), of the
    /// archive read (verify) or sent (upload, download).
    public var bytesDone: UInt64
    /// All the bytes there are to do, when known beforehand. A backup
    /// estimates it from the tables' size on disk.
    public var bytesTotal: UInt64?
    public var elapsedSeconds: Double
    /// 0–100, from the bytes; below 100 until the operation ends.
    public var percent: Double?
    public var bytesPerSecond: Double
    public var secondsLeft: Double?

    public init(
        operation: Operation, phase: String, tablesDone: Int = 0, tablesTotal: Int = 0, current: String? = nil, bytesDone: UInt64,
        bytesTotal: UInt64?, elapsedSeconds: Double, finished: Bool = false
    ) {
        self.operation = operation
        self.phase = phase
        self.tablesDone = tablesDone
        self.tablesTotal = tablesTotal
        self.current = current
        self.bytesDone = bytesDone
        self.bytesTotal = bytesTotal
        self.elapsedSeconds = elapsedSeconds
        bytesPerSecond = elapsedSeconds > 0 ? Double(bytesDone) / elapsedSeconds : 0
        if finished {
            percent = 100
            secondsLeft = 0
        } else if let bytesTotal, bytesTotal > 0 {
            // An estimate can be passed; the operation is not done until it says so.
            let fraction = min(Double(bytesDone) / Double(bytesTotal), 0.99)
            percent = (fraction * 1000).rounded(.down) / 10
            secondsLeft = fraction > 0 ? elapsedSeconds * (1 - fraction) / fraction : nil
        }
    }
}

/// Calls `report` at most every `interval` (and always for a final report),
/// so per-chunk updates cost a clock read, not a line on the screen.
final class ProgressThrottle: @unchecked Sendable {
    private let interval: Duration
    private let lock = NSLock()
    private var last: ContinuousClock.Instant?
    let started = ContinuousClock.now

    init(interval: Duration = .milliseconds(200)) { self.interval = interval }

    var elapsedSeconds: Double { (ContinuousClock.now - started).seconds }

    /// Whether a report is due now (and, when it is, marks it as made).
    func due(final: Bool = false) -> Bool {
        let now = ContinuousClock.now
        return lock.withLock {
            if !final, let last, now - last < interval { return false }
            last = now
            return true
        }
    }
}

/// An operation's progress as it goes: worker threads count, the thread
/// that runs the operation sends (at most five reports a second, and one
/// at every change of phase).
public final class ProgressReporter: @unchecked Sendable {
    let operation: OperationProgress.Operation
    let report: (OperationProgress) -> Void
    let throttle = ProgressThrottle()
    private let lock = NSLock()
    private var phaseName = ""
    private var tablesDone = 0
    private var tablesTotal = 0
    private var current: String?
    private var bytes: UInt64 = 0
    private var bytesTotal: UInt64?

    public init(_ operation: OperationProgress.Operation, report: @escaping (OperationProgress) -> Void) {
        self.operation = operation
        self.report = report
    }

    public var elapsedSeconds: Double { throttle.elapsedSeconds }

    /// A new phase: reported at once.
    public func phase(_ name: String) {
        lock.withLock { phaseName = name }
        send(final: true)
    }

    /// What there is to do; `bytes` may be an estimate.
    public func estimate(tables: Int, bytes: UInt64?) {
        lock.withLock {
            tablesTotal = tables
            bytesTotal = bytes
        }
    }

    /// How many tables (or table parts) there are to do.
    public func expect(tables: Int) {
        lock.withLock { tablesTotal = tables }
    }

    public func update(tablesDone: Int, bytes: UInt64, current: String? = nil) {
        lock.withLock {
            self.tablesDone = tablesDone
            self.bytes = bytes
            self.current = current
        }
    }

    /// What is being worked on now (nil: nothing in particular).
    public func working(on current: String?) {
        lock.withLock { self.current = current }
    }

    /// From any thread: more bytes done, and optionally a table finished.
    public func count(bytes: UInt64, tableFinished: Bool = false) {
        lock.withLock {
            self.bytes &+= bytes
            if tableFinished { tablesDone += 1 }
        }
    }

    /// Reports the current state, when a report is due.
    public func send(final: Bool = false) {
        guard throttle.due(final: final) else { return }
        report(lock.withLock {
            OperationProgress(
                operation: operation, phase: phaseName, tablesDone: tablesDone, tablesTotal: tablesTotal, current: current,
                bytesDone: bytes, bytesTotal: bytesTotal, elapsedSeconds: elapsedSeconds)
        })
    }

    /// The last report: 100 %.
    public func finish() {
        _ = throttle.due(final: true)
        report(lock.withLock {
            OperationProgress(
                operation: operation, phase: "done", tablesDone: tablesTotal, tablesTotal: tablesTotal, bytesDone: bytes,
                bytesTotal: bytes, elapsedSeconds: elapsedSeconds, finished: true)
        })
    }
}
