import Foundation

/// `Tests/Fixtures/notification_sink.py`: a local HTTP listener and SMTP
/// server (aiosmtpd) that write what they receive into a folder, for the
/// notification tests. One per test; `stop()` it (it is killed at exit otherwise).
public final class NotificationSink: Sendable {
    public let webhookURL: String
    public let smtpURL: String
    public let directory: String
    private let processID: Int32

    /// `failFirst`: that many HTTP requests are answered 500 first.
    public init(failFirst: Int = 0) throws {
        directory = TestPaths.temporaryDirectory("notification-sink")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let httpPort = try freeLocalPort(), smtpPort = try freeLocalPort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", TestPaths.fixtures + "/notification_sink.py", "--dir", directory,
            "--http-port", String(httpPort), "--smtp-port", String(smtpPort), "--fail-first", String(failFirst),
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        RunningProcesses.shared.add(process.processIdentifier)
        processID = process.processIdentifier
        // The secret-looking path and query stand for a real webhook's token.
        webhookURL = "http://127.0.0.1:\(httpPort)/hooks/T000/SECRET-HOOK-TOKEN?sig=SECRET-SIG"
        smtpURL = "smtp://127.0.0.1:\(smtpPort)"
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: directory + "/ready") {
            guard process.isRunning else { throw TestSetupError("notification_sink.py exited during start-up (is aiosmtpd installed? scripts/setup.sh installs it)") }
            guard Date() < deadline else { throw TestSetupError("notification_sink.py did not start within 30 s") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    public struct Request: Decodable, Sendable {
        public var path: String
        public var headers: [String: String]
        public var body: String
        public var status: Int
    }

    public struct Mail: Decodable, Sendable {
        public var from: String
        public var to: [String]
        public var data: String
    }

    /// What arrived so far, in order.
    public var requests: [Request] { received("http") }
    public var mails: [Mail] { received("mail") }

    /// Waits (blocking: call from a thread of its own) until `count` requests
    /// and `mails` mails arrived, or `seconds` passed.
    public func wait(requests count: Int = 0, mails: Int = 0, seconds: Double = 30) {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, requests.count < count || self.mails.count < mails { Thread.sleep(forTimeInterval: 0.05) }
    }

    private func received<Item: Decodable>(_ prefix: String) -> [Item] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix(prefix + "-") && $0.hasSuffix(".json") }
            .sorted { Int($0.dropFirst(prefix.count + 1).dropLast(5)) ?? 0 < Int($1.dropFirst(prefix.count + 1).dropLast(5)) ?? 0 }
            .compactMap { name in
                FileManager.default.contents(atPath: directory + "/" + name).flatMap { try? JSONDecoder().decode(Item.self, from: $0) }
            }
    }

    public func stop() {
        kill(processID, SIGKILL)
        RunningProcesses.shared.remove(processID)
    }
}
