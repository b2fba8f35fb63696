extension AuditTrail {
    /// Runs an operation and records its outcome, with `details` (e.g. the
    /// trigger) on both a success and a failure. A success whose record
    /// cannot be written is reported as a failure: every operation is audited.
    public func run<Result>(
        target: String? = nil, details: [String: String] = [:],
        describe: (Result) -> (target: String?, details: [String: String]) = { _ in (nil, [:]) },
        _ body: () throws -> Result
    ) throws -> Result {
        let result: Result
        do {
            result = try body()
        } catch {
            recordFailure(error, target: target, details: details)
            throw error
        }
        let description = describe(result)
        let all = details.merging(description.details) { $1 }
        try record(outcome: "success", target: description.target ?? target, details: all.isEmpty ? nil : all)
        return result
    }
}
