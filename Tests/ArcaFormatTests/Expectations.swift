@testable import ArcaFormat
import Testing

extension Sample {
    /// The `ArchiveError` `body` throws, nil when it succeeds; any other
    /// error is a test failure.
    static func archiveError(_ body: () throws -> Void) -> ArchiveError? {
        do {
            try body()
            return nil
        } catch let error as ArchiveError {
            return error
        } catch {
            Issue.record("unexpected error type \(error)")
            return nil
        }
    }
}
