import ArcaEngine

/// What the audit trail records of an operation that returned.
public struct AuditSummary: Sendable {
    public var target: String?
    public var details: [String: String]
    /// An operation can return and still have failed: a verification that
    /// found damage, a sync some of whose copies failed.
    public var outcome: AuditOutcome
    public var error: String?

    public init(target: String? = nil, details: [String: String] = [:], outcome: AuditOutcome = .success, error: String? = nil) {
        self.target = target
        self.details = details
        self.outcome = outcome
        self.error = error
    }
}

extension AuditTrail {
    /// Runs an operation and records how it ended, with `details` (e.g. the
    /// trigger) on both a success and a failure. A success whose record
    /// cannot be written is reported as a failure: every operation is audited.
    ///
    /// An operation that changes something (`changes`) first records that
    /// it starts; when that record cannot be written it is refused before
    /// it touches anything (`AuditRefusal`): the audit fails closed.
    public func run<Result>(
        target: String? = nil, details: [String: String] = [:], changes: Bool = true,
        summary: (Result) -> AuditSummary = { _ in AuditSummary() },
        _ body: () throws -> Result
    ) throws -> Result {
        if changes {
            do {
                try record(outcome: .started, target: target, details: details.isEmpty ? nil : details)
            } catch {
                throw AuditRefusal(action: action, cause: error)
            }
        }
        let result: Result
        do {
            result = try body()
        } catch {
            recordFailure(error, target: target, details: details)
            throw error
        }
        let summary = summary(result)
        let all = details.merging(summary.details) { $1 }
        try record(outcome: summary.outcome, target: summary.target ?? target, error: summary.error, details: all.isEmpty ? nil : all)
        return result
    }
}

/// An operation refused because its start could not be audited.
public struct AuditRefusal: Error, Sendable, CustomStringConvertible {
    public var action: String
    public var cause: any Error

    public var description: String {
        "The \(action) was refused, and nothing was changed: its start could not be recorded in the audit trail. \(cause)"
    }
}
