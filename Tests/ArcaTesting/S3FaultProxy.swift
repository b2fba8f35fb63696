import Foundation

/// `Tests/Fixtures/s3_fault_proxy.py` in front of a real S3-compatible
/// server: the server keeps the state, the proxy fails chosen requests.
public final class S3FaultProxy: Sendable {
    public let endpoint: URL
    private let processID: Int32

    /// `failPart`: UploadPart requests for this part number get a 500.
    /// `failPutsEndingWith`: so do PUTs of keys with this suffix.
    /// `failDeletes`: so do deletions of objects.
    /// `cutGets`: the first this many GET answers over 1 MiB stop halfway (the connection drops).
    /// `ignoreConditions`: writes lose their `If-None-Match` (a store without conditional writes).
    /// `loseConditionalAnswers`: the first this many conditional writes are done, but never answered.
    /// `refuseConditionalWrites`: every conditional write is answered 412, not forwarded.
    public init(
        upstream: URL, failPart: Int? = nil, failPutsEndingWith suffix: String? = nil, failDeletes: Bool = false, cutGets: Int = 0,
        ignoreConditions: Bool = false, loseConditionalAnswers: Int = 0, refuseConditionalWrites: Bool = false
    ) throws {
        let port = try freeLocalPort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var arguments: [String] = [
            "python3", TestPaths.fixtures + "/s3_fault_proxy.py", "--listen", String(port), "--upstream", upstream.absoluteString,
            "--cut-gets", String(cutGets),
        ]
        if let failPart { arguments += ["--fail-part", String(failPart)] }
        if let suffix { arguments += ["--fail-put-suffix", suffix] }
        if failDeletes { arguments.append("--fail-deletes") }
        if ignoreConditions { arguments.append("--ignore-conditions") }
        if loseConditionalAnswers > 0 { arguments += ["--lose-conditional-answers", String(loseConditionalAnswers)] }
        if refuseConditionalWrites { arguments.append("--refuse-conditional-writes") }
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        RunningProcesses.shared.add(process.processIdentifier)
        processID = process.processIdentifier
        endpoint = URL(string: "http://127.0.0.1:\(port)")!
        // It prints "ready" once it listens.
        let line = output.fileHandleForReading.availableData
        guard String(decoding: line, as: UTF8.self).hasPrefix("ready") else {
            throw TestSetupError("s3_fault_proxy.py did not start")
        }
    }

    public func stop() {
        kill(processID, SIGKILL)
        RunningProcesses.shared.remove(processID)
    }
}
