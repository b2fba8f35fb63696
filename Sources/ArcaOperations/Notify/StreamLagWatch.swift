import ArcaEngine
import ArcaFormat
import Foundation

/// Notifies when a change stream falls further behind than
/// `ARCA_MAX_LAG_SECONDS`, and again when it has caught up: once per
/// crossing, however often it is checked (the scheduler checks every
/// minute while it runs the stream).
public final class StreamLagWatch: @unchecked Sendable {
    private let lock = NSLock()
    private var behind: Set<String> = []  // slots notified as behind; guarded by `lock`

    public init() {}

    /// Reads the streams' lag and sends what changed since the last check.
    @discardableResult
    public func check(_ operations: Operations, now: Date = Date()) -> [NotificationEvent] {
        guard let notifier = operations.configuration.notifier else { return [] }
        let events = changes(operations.streamStatuses(now: now).streams, maxLagSeconds: operations.configuration.maxLagSeconds, now: now)
        // The all-clear goes wherever the alarm went, whatever ARCA_NOTIFY_ON says.
        for event in events { notifier.notify(event, always: true) }
        return events
    }

    /// The crossings in `streams` since the last call. A stream whose lag
    /// is unknown (no segment yet) keeps its state.
    func changes(_ streams: [StreamStatus], maxLagSeconds: Int, now: Date) -> [NotificationEvent] {
        lock.withLock {
            var events: [NotificationEvent] = []
            for stream in streams {
                guard let lag = stream.lagSeconds else { continue }
                let isBehind = lag > Double(maxLagSeconds)
                guard isBehind != behind.contains(stream.slot) else { continue }
                if isBehind {
                    behind.insert(stream.slot)
                    events.append(NotificationEvent(
                        event: "stream_lag", action: "stream", outcome: .failure, target: stream.slot,
                        time: Manifest.timestamp(now),
                        error: "The change stream is \(Int(lag)) s behind (ARCA_MAX_LAG_SECONDS is \(maxLagSeconds)): instants after \(stream.newestRestorable ?? "?") cannot be restored yet."))
                } else {
                    behind.remove(stream.slot)
                    events.append(NotificationEvent(
                        event: "stream_lag", action: "stream", outcome: .success, target: stream.slot, time: Manifest.timestamp(now)))
                }
            }
            return events
        }
    }
}
