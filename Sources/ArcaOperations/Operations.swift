import ArcaEngine
import ArcaFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Who asked for an operation: recorded in the audit trail (actor, client
/// address) and, for a backup, as the trigger in its manifest.
public struct Requester: Sendable {
    public var actor: String
    public var clientIP: String?
    public var trigger: BackupTrigger

    public init(actor: String, clientIP: String? = nil, trigger: BackupTrigger) {
        self.actor = actor
        self.clientIP = clientIP
        self.trigger = trigger
    }

    /// A person or a script at the command line: `cli:<user>`.
    public static var commandLine: Requester { Requester(actor: AuditTrail.cliActor, trigger: .manual) }

    public static func scheduler(_ trigger: BackupTrigger) -> Requester { Requester(actor: "scheduler", trigger: trigger) }

    /// An API client: its token's subject and its address.
    public static func api(subject: String, clientIP: String) -> Requester {
        Requester(actor: subject, clientIP: clientIP, trigger: .api)
    }
}

/// The operations the CLI, the REST API and the scheduler call. Each is
/// built once, here, from the configuration plus the call's own choices,
/// runs under the audit trail once and returns a typed result; the three
/// shells only translate arguments and results.
///
/// Operations block (libpq, files, S3 through their own threads): the API
/// calls them off its event loops.
public struct Operations: Sendable {
    public let configuration: ServiceConfiguration
    public let requester: Requester
    /// Stops a running backup cleanly (signals, a service shutting down).
    public var cancellation = Cancellation()

    public init(configuration: ServiceConfiguration, requester: Requester) {
        self.configuration = configuration
        self.requester = requester
    }

    public var repository: Repository { configuration.repository }

    /// The audit trail of one operation, as this requester.
    public func trail(_ action: String) -> AuditTrail {
        AuditTrail(
            repository: repository, action: action, actor: requester.actor, clientIP: requester.clientIP,
            mirror: configuration.auditMirror, notifier: configuration.notifier)
    }

    /// `reference` (a backup id or an archive path) in the repository, else
    /// in the bucket; `fromCloud` looks in the bucket only.
    public func locate(_ reference: String, fromCloud: Bool = false) throws -> ArchiveReference {
        try ArchiveReference.locate(reference, repository: repository, cloud: configuration.cloud, preferCloud: fromCloud)
    }
}
