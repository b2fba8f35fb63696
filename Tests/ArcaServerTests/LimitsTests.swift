@testable import ArcaEngine
import ArcaOperations
@testable import ArcaServer
import ArcaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ServiceLifecycle
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 17, points 4 and 5: who the client is, bounded limiter memory,
/// probes' own budget, the metrics token and cache, the bounded pool, and
/// the HTTP server's timeouts and connection cap (through a real socket).
extension APITests {
    // MARK: Client address

    @Test func clientAddressIsTheRightmostUntrustedHop() throws {
        func peer(_ text: String) throws -> SocketAddress { try SocketAddress(ipAddress: text, port: 40000) }
        let none = ClientAddressResolver(trustedProxies: [])
        #expect(none.resolve(peer: try peer("203.0.113.9"), forwardedFor: ["1.2.3.4"]) == "203.0.113.9")

        let proxies = ClientAddressResolver(trustedProxies: [CIDRNetwork("10.0.0.0/8")!, CIDRNetwork("fd00::/8")!])
        // The client writes the left; each trusted proxy appends what it saw.
        #expect(proxies.resolve(peer: try peer("10.0.0.1"), forwardedFor: ["6.6.6.6, 198.51.100.7, 10.0.0.2"]) == "198.51.100.7")
        #expect(proxies.resolve(peer: try peer("10.0.0.1"), forwardedFor: ["6.6.6.6", "198.51.100.7"]) == "198.51.100.7")
        // A peer that is not a trusted proxy is the client, whatever it says.
        #expect(proxies.resolve(peer: try peer("203.0.113.9"), forwardedFor: ["198.51.100.7"]) == "203.0.113.9")
        #expect(proxies.resolve(peer: try peer("fd00::1"), forwardedFor: ["2001:DB8::1"]) == "2001:db8::1")
        #expect(proxies.resolve(peer: try peer("10.0.0.1"), forwardedFor: ["::ffff:198.51.100.7"]) == "198.51.100.7")
        // Garbage is not a hop: the last trusted one is the best-known client.
        #expect(proxies.resolve(peer: try peer("10.0.0.1"), forwardedFor: ["198.51.100.7, <script>"]) == "10.0.0.1")
        #expect(proxies.resolve(peer: try peer("10.0.0.1"), forwardedFor: [String(repeating: "9,", count: 50_000)]) == "10.0.0.1")

        let service = try ServiceConfiguration(environment: [:], repository: TestPaths.temporaryDirectory("proxies"))
        let loopback = try ServerConfiguration(service: service, environment: ["JWT_SECRET": Self.secret, "ARCA_TRUST_PROXY": "1"])
        #expect(loopback.trustedProxies == CIDRNetwork.loopback)
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/8, ::1/129"] {
            #expect {
                try ServerConfiguration(service: service, environment: ["JWT_SECRET": Self.secret, "ARCA_TRUSTED_PROXIES": bad])
            } throws: { "\($0)".contains("ARCA_TRUSTED_PROXIES") }
        }
    }

    // MARK: Limiter memory

    /// 100,000 addresses pass through a table of 1,000; one that sent too
    /// much keeps being refused as the others churn through.
    @Test func limiterMemoryIsBoundedUnderChurn() async {
        let limiter = RateLimiter(limit: 3, window: 900, capacity: 1_000)
        let now = Date()
        for _ in 0..<3 { #expect(await limiter.take("198.51.100.7", now: now).allowed) }
        #expect(await !limiter.take("198.51.100.7", now: now).allowed)
        for index in 0..<100_000 {
            _ = await limiter.take("10.\(index >> 16).\((index >> 8) & 255).\(index & 255)", now: now)
            if index % 500 == 499 {
                #expect(await !limiter.take("198.51.100.7", now: now).allowed, "after \(index + 1) others")
            }
        }
        #expect(await limiter.clients == 1_000)
    }

    // MARK: Probes' budget

    @Test func probesHaveABudgetOfTheirOwn() async throws {
        let f = try await fixture("probe_budget", environment: ["ARCA_RATE_LIMIT": "5/60"])
        defer { f.database.drop() }
        let viewer = try await f.token(.viewer)
        try await f.app().test(.router) { client in
            var statuses: [HTTPResponse.Status: Int] = [:]
            for _ in 0..<1_000 {
                try await client.execute(uri: "/healthz", method: .get) { (response) async throws in
                    statuses[response.status, default: 0] += 1
                }
            }
            #expect(statuses[.tooManyRequests] == nil, "\(statuses)")
            #expect(statuses.keys.allSatisfy { $0 == .ok || $0 == .serviceUnavailable })
            try await client.execute(uri: "/api/status", method: .get, headers: bearer(viewer)) { (response) async throws in
                #expect(response.status == .ok)
                #expect(response.headers[HTTPField.Name("RateLimit-Remaining")!] == "4")
            }
        }
    }

    // MARK: Authentication failures

    @Test func authenticationFailuresAreAuditedAtABoundedRate() async {
        let throttle = AuthenticationFailureThrottle(interval: 60, capacity: 2)
        let start = Date()
        #expect(await throttle.admit("198.51.100.7", now: start) == 0)
        for second in 1...4 { #expect(await throttle.admit("198.51.100.7", now: start + Double(second)) == nil) }
        #expect(await throttle.admit("198.51.100.8", now: start + 5) == 0)
        #expect(await throttle.admit("198.51.100.7", now: start + 61) == 4)
        #expect(await throttle.admit("198.51.100.7", now: start + 62) == nil)
    }

    // MARK: Metrics

    @Test func metricsNeedTheTokenWhenSetAndAreCached() async throws {
        let token = "metrics-token-0123456789abcdef"
        let f = try await fixture("metrics_token", environment: ["ARCA_METRICS_TOKEN": token])
        defer { f.database.drop() }
        _ = try BackupRunner(options: BackupOptions(source: f.database.connectionString, repository: f.repository)).run()
        try await f.app().test(.router) { client in
            for headers: HTTPFields in [[:], bearer("metrics-token-0123456789abcdeX"), bearer(String(token.dropLast())), [.authorization: token]] {
                try await client.execute(uri: "/metrics", method: .get, headers: headers) { (response) async throws in
                    #expect(response.status == .unauthorized, "\(headers)")
                    #expect(!String(buffer: response.body).contains("arca_backups"))
                }
            }
            try await client.execute(uri: "/metrics", method: .get, headers: bearer(token)) { (response) async throws in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("arca_backups{location=\"local\"} 1"))
            }
            // A second backup behind the server's back: the next scrape
            // serves the figures computed a moment ago, not a new listing.
            _ = try BackupRunner(options: BackupOptions(source: f.database.connectionString, repository: f.repository)).run()
            try await client.execute(uri: "/metrics", method: .get, headers: bearer(token)) { (response) async throws in
                #expect(String(buffer: response.body).contains("arca_backups{location=\"local\"} 1"), "\(String(buffer: response.body))")
            }
        }
        #expect(ConstantTime.equal(token, token))
        #expect(!ConstantTime.equal(token, token + "x"))
        #expect(!ConstantTime.equal("", token))
    }

    // MARK: Blocking pool

    @Test(.timeLimit(.minutes(1))) func aFullPoolAnswers503() async throws {
        let f = try await fixture("full_pool")
        defer { f.database.drop() }
        let viewer = try await f.token(.viewer)
        let pool = BlockingPool(threads: 1, queueLength: 1)
        let app = Application(router: buildRouter(f.configuration, authority: f.authority, cancellation: Cancellation(), jobs: BackupJobs(), pool: pool))
        let release = DispatchSemaphore(value: 0)
        // One piece of work running, one waiting: the pool is full.
        for _ in 0..<2 { try pool.submit { release.wait() } }
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/backup", method: .get, headers: bearer(viewer)) { (response) async throws in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] == String(BlockingPool.retryAfterSeconds))
                #expect(try json(response.body)["code"] as? String == "busy")
            }
            release.signal()
            release.signal()
            // The two finish on their own time: a bounded number of tries.
            var status = HTTPResponse.Status.serviceUnavailable
            for _ in 0..<100 where status == .serviceUnavailable {
                try await client.execute(uri: "/api/backup", method: .get, headers: bearer(viewer)) { (response) async throws in
                    status = response.status
                }
                if status == .serviceUnavailable { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(status == .ok)
        }
    }

    // MARK: The real server

    /// Runs the server `buildApplication` makes on 127.0.0.1 and an
    /// ephemeral port, for the length of `body`.
    func withServer(_ f: Fixture, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        var configuration = f.configuration
        configuration.host = "127.0.0.1"
        configuration.port = 0
        var logger = Logger(label: "arca-test")
        logger.logLevel = .critical
        let port = AsyncStream<Int>.makeStream()
        let app = try await buildApplication(configuration, logger: logger, onServerRunning: { channel in
            port.continuation.yield(channel.localAddress?.port ?? 0)
        })
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ports = port.stream.makeAsyncIterator()
            let bound = try #require(await ports.next())
            do {
                try await body(bound)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test(.timeLimit(.minutes(1))) func slowClientsAreDroppedWhileOthersAreServed() async throws {
        let f = try await fixture("slow_clients", environment: [
            "ARCA_HTTP_HEADER_TIMEOUT": "1", "ARCA_HTTP_BODY_TIMEOUT": "1", "ARCA_HTTP_IDLE_TIMEOUT": "120",
        ])
        defer { f.database.drop() }
        try await withServer(f) { port in
            // Half a header line, then nothing.
            let slowHead = try RawConnection(port: port)
            try slowHead.send("GET /healthz HTTP/1.1\r\nHost: lo")
            // A whole head announcing a body that never comes whole.
            let slowBody = try RawConnection(port: port)
            try slowBody.send("POST /api/backup/restore HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"backupId\"")
            // Meanwhile everyone else is answered.
            for _ in 0..<3 {
                let other = try RawConnection(port: port)
                let status = try await onThread { try other.request("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").status }
                #expect(status == 200)
            }
            // Both slow ones are closed by the server (the wait is bounded
            // by the socket's 10 s receive timeout, far above the 1 s limits
            // and far below the 120 s idle timeout).
            #expect(try await onThread { try slowHead.waitForClose() })
            #expect(try await onThread { try slowBody.waitForClose() })
        }
    }

    @Test(.timeLimit(.minutes(1))) func connectionsBeyondTheCapAreRefused() async throws {
        let f = try await fixture("connection_cap", environment: ["ARCA_HTTP_MAX_CONNECTIONS": "2"])
        defer { f.database.drop() }
        try await withServer(f) { port in
            let first = try RawConnection(port: port), second = try RawConnection(port: port)
            for connection in [first, second] {
                #expect(try await onThread { try connection.request("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").status } == 200)
            }
            let third = try RawConnection(port: port)
            let refused = try await onThread { try third.request("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n") }
            #expect(refused.status == 503)
            #expect(refused.headers["retry-after"] != nil)
            #expect(try await onThread { try third.waitForClose() })
            // The first two are still served.
            #expect(try await onThread { try first.request("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").status } == 200)
            // Once one goes, a newcomer gets its place (the server notices
            // the close asynchronously: a bounded number of tries).
            second.close()
            var status = 0
            for _ in 0..<50 where status != 200 {
                let next = try RawConnection(port: port)
                status = try await onThread { try next.request("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").status }
                if status != 200 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(status == 200)
        }
    }

    /// Behind a trusted proxy the client is the hop the proxy saw: rotating
    /// the entries the client writes neither escapes the limit nor changes
    /// the audited address.
    @Test(.timeLimit(.minutes(1))) func forwardedForIsBelievedOnlyFromTrustedProxies() async throws {
        let f = try await fixture("forwarded_for", environment: ["ARCA_TRUSTED_PROXIES": "127.0.0.0/8", "ARCA_RATE_LIMIT": "2/60"])
        defer { f.database.drop() }
        let repository = f.repository
        try await withServer(f) { (port) async throws -> Void in
            var statuses: [Int] = []
            for forwarded in ["6.6.6.1, 198.51.100.1", "6.6.6.2, 198.51.100.1", "6.6.6.3, 198.51.100.1", "198.51.100.2"] {
                let connection = try RawConnection(port: port)
                statuses.append(try await onThread {
                    try connection.request("GET /api/backup HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: \(forwarded)\r\nConnection: close\r\n\r\n").status
                })
            }
            #expect(statuses == [401, 401, 429, 401])
        }
        let addresses = try AuditTrail(repository: repository, action: "test").log.records(action: "login_failed").map(\.event.clientIP)
        #expect(Set(addresses) == ["198.51.100.1", "198.51.100.2"], "\(addresses)")
    }
}

/// A client socket to 127.0.0.1 that does exactly what a test says, with a
/// 10 s receive timeout so that no test can hang on it.
final class RawConnection: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible { var description: String }
    private let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket: \(errno)") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect: \(errno)") }
    }

    deinit { Glibc.close(descriptor) }

    func close() { shutdown(descriptor, Int32(SHUT_RDWR)) }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard Glibc.send(descriptor, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { throw Failure(description: "send: \(errno)") }
    }

    private var pending: [UInt8] = []

    /// Sends a request and reads one response (headers and Content-Length body).
    func request(_ text: String) throws -> (status: Int, headers: [String: String]) {
        try send(text)
        while true {
            if let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: pending[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
                var headers: [String: String] = [:]
                for line in head.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                let length = Int(headers["content-length"] ?? "0") ?? 0
                while pending.count < end.upperBound + length { guard try receive() else { throw Failure(description: "closed mid-body") } }
                pending.removeFirst(end.upperBound + length)
                let status = head.first.flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } } ?? 0
                return (status, headers)
            }
            guard try receive() else { throw Failure(description: "closed before a response") }
        }
    }

    /// Reads until the server closes: true when it does, false when the
    /// receive timeout passes first.
    func waitForClose() throws -> Bool {
        while true {
            do {
                guard try receive() else { return true }
            } catch let failure as Failure where failure.description == "timeout" {
                return false
            }
        }
    }

    /// false at end of stream (or a reset, which is a close too).
    private func receive() throws -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        if count > 0 {
            pending += buffer[..<count]
            return true
        }
        if count == 0 || errno == ECONNRESET { return false }
        if errno == EAGAIN || errno == EWOULDBLOCK { throw Failure(description: "timeout") }
        throw Failure(description: "recv: \(errno)")
    }
}
