import ArcaEngine
import Foundation

/// Runs a program and captures its output. Used to drive `arca` itself,
/// psql, pg_dump and the shared comparison script as a user would.
public enum Tool {
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String

        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    public struct Failed: Error, CustomStringConvertible {
        public var command: String
        public var output: Output
        public var description: String { "\(command) exited \(output.status): \(output.stderr)\(output.stdout.suffix(2000))" }
    }

    /// Runs `program` (looked up in PATH unless it contains a slash) and
    /// throws unless it exits 0.
    @discardableResult
    public static func run(_ program: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Output {
        let output = try capture(program, arguments, environment: environment)
        guard output.status == 0 else { throw Failed(command: ([program] + arguments).joined(separator: " "), output: output) }
        return output
    }

    /// Runs `program` and returns its status and output, whatever the status.
    public static func capture(_ program: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Output {
        let process = Process()
        if program.contains("/") {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [program] + arguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let stdout = try ChildPipe(), stderr = try ChildPipe()
        process.standardOutput = stdout.writing
        process.standardError = stderr.writing
        process.standardInput = FileHandle.nullDevice
        // Process.waitUntilExit polls every 50 ms; the handler fires at once.
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        try? stdout.writing.close()
        try? stderr.writing.close()
        // Read both pipes concurrently so a full pipe never blocks the child.
        let group = DispatchGroup()
        let errBox = Box()
        group.enter()
        DispatchQueue.global().async {
            errBox.data = stderr.reading.readDataToEndOfFile()
            group.leave()
        }
        let out = stdout.reading.readDataToEndOfFile()
        group.wait()
        exited.wait()
        return Output(
            status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: errBox.data, as: UTF8.self))
    }

    private final class Box: @unchecked Sendable { var data = Data() }
}

/// Paths the tests need: the package root, its fixtures, the built `arca`
/// binary, and the optional `../shared` tools beside the checkout.
public enum TestPaths {
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    public static var fixtures: String { packageRoot + "/Tests/Fixtures" }

    /// `arca`, built beside the test bundle by `swift build --build-tests`.
    public static var arca: String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundle, bundle.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("arca").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return packageRoot + "/.build/debug/arca"
    }

    /// `../shared` beside the checkout (present in development and CI, not in
    /// a user's clone): the shared sample databases and comparison script.
    public static var shared: String? {
        let path = (packageRoot as NSString).deletingLastPathComponent + "/shared"
        return FileManager.default.fileExists(atPath: path + "/tools/compare.sh") ? path : nil
    }

    /// A fresh private directory under the system temp directory.
    public static func temporaryDirectory(_ label: String) -> String {
        let path = NSTemporaryDirectory() + "arca-test-\(label)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// A program started in the background, for tests that signal or race it.
/// Output goes to files, so a full pipe can never block it.
public final class Spawned: @unchecked Sendable {
    private let process = Process()
    private let stdoutPath: String
    private let stderrPath: String

    public init(_ program: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        let directory = TestPaths.temporaryDirectory("spawn")
        stdoutPath = directory + "/stdout"
        stderrPath = directory + "/stderr"
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    public func wait() -> Tool.Output {
        process.waitUntilExit()
        return Tool.Output(
            status: process.terminationStatus,
            stdout: (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "")
    }

    /// Waits up to `seconds` for `condition`; false on time-out.
    public static func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition()
    }
}
