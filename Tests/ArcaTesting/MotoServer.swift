import AsyncHTTPClient
import Foundation
import NIOCore

/// A moto_server (S3-compatible fake, PyPI moto) for the tests. One shared instance per test
/// process (`MotoServer.shared()`), started on first use and killed at exit; set
/// ARCA_TEST_S3_ENDPOINT to use an already-running server instead.
public struct MotoServer: Sendable {
    public let endpoint: URL
    /// nil for a server this process did not start.
    public let processID: Int32?

    public static func shared() async throws -> MotoServer {
        try await SharedMoto.instance.server()
    }

    /// A fresh server of its own, e.g. for a test that switches authentication on
    /// (a server-wide setting). `stop()` it at the end; it is killed at exit otherwise.
    public static func start(environment extra: [String: String] = [:]) async throws -> MotoServer {
        var lastError: (any Error)?
        // The free port found may be taken by someone else before moto binds it: try again.
        for _ in 1...3 {
            let port = try freeLocalPort()
            let process = Process()
            process.executableURL = try executable(named: "moto_server")
            process.arguments = ["-H", "127.0.0.1", "-p", String(port)]
            process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            RunningProcesses.shared.add(process.processIdentifier)
            let server = MotoServer(endpoint: URL(string: "http://127.0.0.1:\(port)")!, processID: process.processIdentifier)
            do {
                try await server.waitUntilAnswering(process)
                return server
            } catch {
                lastError = error
                server.stop()
            }
        }
        throw lastError!
    }

    /// Creates a bucket (moto accepts unsigned requests) and returns its name.
    public func createBucket(_ label: String) async throws -> String {
        let name = "arca-\(label)-\(UUID().uuidString.prefix(8).lowercased())"
        var request = HTTPClientRequest(url: endpoint.absoluteString + "/" + name)
        request.method = .PUT
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else { throw TestSetupError("moto_server refused to create bucket \(name): \(response.status)") }
        return name
    }

    public func stop() {
        guard let processID else { return }
        kill(processID, SIGKILL)
        RunningProcesses.shared.remove(processID)
    }

    private func waitUntilAnswering(_ process: Process) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            guard process.isRunning else { throw TestSetupError("moto_server exited during start-up") }
            var request = HTTPClientRequest(url: endpoint.absoluteString + "/moto-api/")
            request.method = .GET
            if let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)) {
                _ = try? await response.body.collect(upTo: 10 * 1024 * 1024)
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSetupError("moto_server did not answer on \(endpoint) within 30 s")
    }

    private static func executable(named name: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return URL(fileURLWithPath: candidate) }
        }
        throw TestSetupError("\(name) is not on PATH: install it with `pip install 'moto[server]'`")
    }
}

/// Starts the shared server once, however many tests ask for it concurrently.
private actor SharedMoto {
    static let instance = SharedMoto()
    private var starting: Task<MotoServer, any Error>?

    func server() async throws -> MotoServer {
        if starting == nil {
            starting = Task {
                if let endpoint = ProcessInfo.processInfo.environment["ARCA_TEST_S3_ENDPOINT"].flatMap(URL.init(string:)) {
                    return MotoServer(endpoint: endpoint, processID: nil)
                }
                return try await MotoServer.start()
            }
        }
        return try await starting!.value
    }
}

/// Servers started by this process, killed when it exits (Swift Testing has no global tear-down).
public final class RunningProcesses: @unchecked Sendable {
    public static let shared: RunningProcesses = {
        let processes = RunningProcesses()
        atexit { RunningProcesses.shared.killAll() }
        return processes
    }()

    private let lock = NSLock()
    private var processIDs: Set<Int32> = []  // guarded by `lock`

    public func add(_ processID: Int32) { lock.withLock { _ = processIDs.insert(processID) } }
    public func remove(_ processID: Int32) { lock.withLock { _ = processIDs.remove(processID) } }

    func killAll() {
        for processID in lock.withLock({ processIDs }) { kill(processID, SIGKILL) }
    }
}

public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A TCP port nobody listens on right now (bound to port 0, then released).
public func freeLocalPort() throws -> Int {
    #if os(Linux)
    let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let socketFD = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard socketFD >= 0 else { throw TestSetupError("socket() failed") }
    defer { close(socketFD) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
            bind(socketFD, socketAddress, length) == 0 && getsockname(socketFD, socketAddress, &length) == 0
        }
    }
    guard bound else { throw TestSetupError("could not bind a local port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
