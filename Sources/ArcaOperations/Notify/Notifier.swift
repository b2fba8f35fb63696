import ArcaEngine
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Sends notification events to the configured webhooks and mail relay.
///
/// Never in the operation's way: `notify` only queues the event (bounded:
/// when full, the oldest is dropped with a warning) and returns; one
/// background thread per notifier delivers, each destination with retries
/// and exponential backoff with jitter, bounded in attempts and time. A
/// delivery that finally fails is a warning on stderr, never an error of
/// the operation. A short-lived process (`arca backup` from cron) calls
/// `Notifier.waitForDeliveries(upTo:)` before it exits.
public final class Notifier: @unchecked Sendable {
    public struct RetryPolicy: Sendable {
        public var attempts = 4
        /// The first wait; each further one doubles, times a random 0.75–1.25
        /// (4 attempts: about 7 s in all, within the CLI's 10 s at exit).
        public var firstDelay = 1.0
        /// Each HTTP request and each SMTP read or write.
        public var timeoutSeconds = 10.0
        public init() {}
    }

    public let settings: NotificationSettings
    let retry: RetryPolicy
    /// How many events may wait; a flood (a failing stream retried every
    /// minute for a week) must not grow memory without bound.
    let capacity: Int

    private let condition = NSCondition()
    private var queue: [NotificationEvent] = []  // guarded by `condition`
    private var delivering = false  // guarded by `condition`
    private var started = false  // guarded by `condition`

    public init(settings: NotificationSettings, retry: RetryPolicy = RetryPolicy(), capacity: Int = 100) {
        self.settings = settings
        self.retry = retry
        self.capacity = capacity
        Self.registry.withLock { $0.append(self) }
    }

    /// Queues `event` if the settings want it (failures and refusals always,
    /// successes with `ARCA_NOTIFY_ON=all`; `always`: the recovery of
    /// something a failure was sent for). Returns at once.
    public func notify(_ event: NotificationEvent, always: Bool = false) {
        guard event.outcome != .started, always || event.isFailure || settings.includeSuccesses else { return }
        condition.lock()
        if queue.count >= capacity {
            let dropped = queue.removeFirst()
            warn("the notification queue is full: dropped the oldest event (\(dropped.action) \(dropped.outcome.rawValue) at \(dropped.time))")
        }
        queue.append(event)
        if !started {
            started = true
            let thread = Thread { [self] in deliverForever() }
            thread.name = "arca notifications"
            thread.start()
        }
        condition.broadcast()
        condition.unlock()
    }

    /// Events waiting, not counting the one being delivered.
    var queuedCount: Int { condition.withLock { queue.count } }

    /// Waits until every queued event is delivered (or given up on), at most
    /// `seconds`; true when nothing is left.
    @discardableResult
    public func waitUntilDelivered(upTo seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while !queue.isEmpty || delivering {
            if !condition.wait(until: deadline) { return queue.isEmpty && !delivering }
        }
        return true
    }

    /// Every notifier of the process: what a command-line run waits for
    /// before it exits (bounded, so a dead webhook delays exit, never hangs it).
    public static func waitForDeliveries(upTo seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        var left = 0
        for notifier in registry.withLock({ $0 }) {
            if !notifier.waitUntilDelivered(upTo: max(0, deadline.timeIntervalSinceNow)) {
                left += notifier.condition.withLock { notifier.queue.count + (notifier.delivering ? 1 : 0) }
            }
        }
        if left > 0 {
            FileHandle.standardError.write(Data("arca: warning: \(left) notification(s) not delivered within \(Int(seconds)) s, before exit.\n".utf8))
        }
    }

    private static let registry = Locked<[Notifier]>([])

    private func deliverForever() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let event = queue.removeFirst()
            delivering = true
            condition.unlock()

            deliver(event)

            condition.lock()
            delivering = false
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Each destination on its own and at the same time: one dead webhook
    /// neither keeps the event from the others nor delays them.
    func deliver(_ event: NotificationEvent) {
        var deliveries: [@Sendable () -> Void] = settings.webhooks.map { webhook in
            { self.attempt("the webhook \(webhook)") { try self.post(event, to: webhook) } }
        }
        if let mail = settings.mail {
            deliveries.append {
                self.attempt("mail through \(mail.host):\(mail.port)") {
                    do {
                        try SMTPClient(host: mail.host, port: mail.port, timeoutSeconds: self.retry.timeoutSeconds)
                            .send(from: mail.sender, to: mail.recipients, message: MailMessage(event, from: mail.sender, to: mail.recipients).text)
                        return .delivered
                    } catch let error as SMTPError {
                        return error.isPermanent ? .permanent("\(error)") : .retry("\(error)")
                    }
                }
            }
        }
        let all = deliveries
        DispatchQueue.concurrentPerform(iterations: all.count) { all[$0]() }
    }

    enum Attempt {
        case delivered
        case retry(String)
        case permanent(String)
    }

    private func attempt(_ destination: String, _ body: () throws -> Attempt) {
        var delay = retry.firstDelay
        for number in 1...max(1, retry.attempts) {
            let result: Attempt
            do { result = try body() } catch { result = .retry(Self.describe(error)) }
            switch result {
            case .delivered:
                return
            case .permanent(let reason):
                warn("a notification to \(destination) was refused: \(reason)")
                return
            case .retry(let reason):
                guard number < retry.attempts else {
                    warn("a notification to \(destination) failed \(number) time(s), giving up: \(reason)")
                    return
                }
                Thread.sleep(forTimeInterval: delay * Double.random(in: 0.75...1.25))
                delay *= 2
            }
        }
    }

    /// No redirects: a webhook that moves must be reconfigured, and the
    /// event must not follow a redirect somewhere else.
    static let httpClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    private func post(_ event: NotificationEvent, to webhook: Webhook) throws -> Attempt {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "User-Agent", value: "arca/\(ArcaVersion.current)")
        let request = try HTTPClient.Request(url: webhook.url, method: .POST, headers: headers, body: .data(event.payload(settings.format)))
        let deadline = NIODeadline.now() + .milliseconds(Int64(retry.timeoutSeconds * 1000))
        // A thread of our own, never an event loop: waiting here is allowed.
        let response = try Self.httpClient.execute(request: request, deadline: deadline).wait()
        switch response.status.code {
        case 200..<300: return .delivered
        case 408, 429, 500..<600: return .retry("HTTP \(response.status.code)")
        default: return .permanent("HTTP \(response.status.code)")
        }
    }

    /// The client's errors name the host at most (HTTPClientError,
    /// NIOConnectionError), never the path or query that hold the secret.
    static func describe(_ error: any Error) -> String { "\(error)" }

    private func warn(_ message: String) {
        FileHandle.standardError.write(Data("arca: warning: \(message)\n".utf8))
    }
}

/// A value behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value  // guarded by `lock`

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try lock.withLock { try body(&value) }
    }
}
