import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaS3

/// What kind of failure an error is. Each error type declares its kind once,
/// in this file (the catalogue), and everything a shell says about a
/// failure is read from the kind: the CLI's exit status, the API's HTTP
/// status and the audit trail's outcome.
public enum ErrorKind: String, Sendable, CaseIterable {
    /// The request is malformed or the configuration is incomplete: fix the
    /// arguments or the settings (exit 2, HTTP 400).
    case invalid
    /// Refused by a rule until the caller says more: a restore without
    /// confirmation (exit 2, HTTP 400).
    case refused
    /// What was named does not exist (exit 1, HTTP 404).
    case notFound
    /// The state does not allow it now: another writer runs, the target is
    /// not empty, the backup is being read (exit 1, HTTP 409).
    case conflict
    /// An archive is damaged, or cannot be trusted to be what it claims
    /// (exit 3, HTTP 422).
    case damaged
    /// The key needed to open an archive is missing or wrong: the server's
    /// configuration, not the caller, is at fault (exit 1, HTTP 503).
    case keyUnavailable
    /// A server Arca depends on (PostgreSQL, the bucket) cannot be reached
    /// (exit 1, HTTP 503).
    case unavailable
    /// Stopped by a signal or a shutdown (exit 1, HTTP 503).
    case cancelled
    /// The operation failed (exit 1, HTTP 500).
    case failed

    public static func of(_ error: any Error) -> ErrorKind {
        (error as? any ClassifiedError)?.kind ?? .failed
    }

    /// The API's machine-readable name of `error`.
    public static func code(of error: any Error) -> String {
        (error as? any ClassifiedError)?.code ?? ErrorKind.failed.defaultCode
    }

    /// The CLI's exit status (README, "Exit codes").
    public var exitStatus: Int32 {
        switch self {
        case .invalid, .refused: 2
        case .damaged: 3
        case .notFound, .conflict, .keyUnavailable, .unavailable, .cancelled, .failed: 1
        }
    }

    /// The API's HTTP status code.
    public var httpStatus: Int {
        switch self {
        case .invalid, .refused: 400
        case .notFound: 404
        case .conflict: 409
        case .damaged: 422
        case .keyUnavailable, .unavailable, .cancelled: 503
        case .failed: 500
        }
    }

    /// How the audit trail records an operation that ended with it.
    public var auditOutcome: AuditOutcome {
        switch self {
        case .invalid, .refused, .conflict: .refused
        default: .failure
        }
    }
}

/// An error that knows its kind. `code` is the API's machine-readable name
/// for it (default: the kind's).
public protocol ClassifiedError: Error {
    var kind: ErrorKind { get }
    var code: String { get }
}

extension ClassifiedError {
    public var code: String { kind.defaultCode }
}

extension ErrorKind {
    var defaultCode: String {
        switch self {
        case .invalid: "invalid_request"
        case .refused: "refused"
        case .notFound: "not_found"
        case .conflict: "conflict"
        case .damaged: "archive_damaged"
        case .keyUnavailable: "key_unavailable"
        case .unavailable: "unavailable"
        case .cancelled: "cancelled"
        case .failed: "failed"
        }
    }
}

// MARK: The catalogue

extension ArchiveError: ClassifiedError {
    public var kind: ErrorKind {
        switch self {
        case .keyRequired, .wrongKey, .keyDerivationFailed: .keyUnavailable
        default: .damaged
        }
    }
}

extension ArchiveKey.KeyError: ClassifiedError {
    public var kind: ErrorKind { .invalid }
}

extension ArchiveTrustError: ClassifiedError {
    public var kind: ErrorKind { .damaged }
    public var code: String { "archive_untrusted" }
}

extension RestoreError: ClassifiedError {
    public var kind: ErrorKind {
        switch self {
        case .notConfirmed: .refused
        case .unmatchedPatterns, .invalidOptions, .subsetNeedsDataOnly, .largeObjectsNotRestored, .noSchema, .refersToUnrestored: .invalid
        case .targetNotEmpty, .databaseExists, .tableMissing, .columnsDiffer, .missingRole, .targetLacks, .tooManyObjects,
             .binaryNeedsNewerServer: .conflict
        case .requiresSuperuser, .truncateRefused, .table, .rowCountMismatch, .step, .lockTableFull: .failed
        }
    }

    public var code: String {
        switch kind {
        case .refused, .invalid, .conflict: "restore_refused"
        default: "restore_failed"
        }
    }
}

extension BackupError: ClassifiedError {
    public var kind: ErrorKind {
        switch self {
        case .connect: .unavailable
        case .unmatchedPatterns, .rolePasswordsNeedEncryption, .rolePasswordsUnreadable, .binaryCopyImpossible: .invalid
        case .lockTimeout, .tableChanged: .conflict
        case .snapshot, .table, .schema, .largeObject: .failed
        }
    }

    public var code: String { kind == .invalid ? kind.defaultCode : "backup_failed" }
}

extension OperationError: ClassifiedError {
    public var kind: ErrorKind {
        switch self {
        case .alreadyRunning: .conflict
        case .inUse, .noFreeID: .conflict
        case .cancelled: .cancelled
        case .noBackup: .notFound
        case .invalidConfiguration: .invalid
        }
    }

    public var code: String {
        switch self {
        case .alreadyRunning: "already_running"
        case .inUse: "backup_in_use"
        case .noBackup: "backup_not_found"
        default: kind.defaultCode
        }
    }
}

extension RepositoryError: ClassifiedError {
    public var kind: ErrorKind {
        switch self {
        case .backupNotFound: .notFound
        case .invalidReference, .notARegularFile, .symbolicLink: .invalid
        case .malformedFile: .damaged
        case .io, .diskFull: .failed
        }
    }

    public var code: String {
        switch self {
        case .backupNotFound: "backup_not_found"
        case .invalidReference: "invalid_backup_id"
        default: "storage_error"
        }
    }
}

extension CloudError: ClassifiedError {
    public var kind: ErrorKind {
        switch self {
        case .downloadMismatch: .damaged
        case .uploadFailed, .archiveLeftWithoutSidecar: .failed
        case .idTaken: .conflict
        }
    }

    public var code: String {
        switch self {
        case .idTaken: "backup_id_taken"
        default: kind.defaultCode
        }
    }
}

extension OtherSourceError: ClassifiedError {
    public var kind: ErrorKind { .refused }
    public var code: String { "other_source" }
}

extension S3Error: ClassifiedError {
    public var kind: ErrorKind {
        switch self {
        case .invalidCredentials, .accessDenied, .noSuchBucket, .invalidRequest: .invalid
        case .noSuchKey, .noSuchUpload: .notFound
        case .objectExists: .conflict
        case .unreachable, .serviceError: .unavailable
        case .invalidResponse: .failed
        }
    }

    public var code: String { "storage_error" }
}

extension PostgresError: ClassifiedError {
    public var kind: ErrorKind {
        switch self {
        case .connectionFailed, .connectionLost: .unavailable
        case .server, .unexpectedResponse: .failed
        }
    }
}

extension ConnectionString.ParseError: ClassifiedError {
    public var kind: ErrorKind { .invalid }
}

extension SchemaError: ClassifiedError {
    public var kind: ErrorKind {
        switch self {
        case .toolMissing, .toolTooOld: .invalid
        case .toolFailed: .failed
        case .unreadableScript: .damaged
        }
    }
}

extension AuditError: ClassifiedError {
    public var kind: ErrorKind { .failed }
    public var code: String { "audit_unavailable" }
}

extension AuditRefusal: ClassifiedError {
    public var kind: ErrorKind { .unavailable }
    public var code: String { "audit_unavailable" }
}

extension BlockingPool.Full: ClassifiedError {
    public var kind: ErrorKind { .unavailable }
    public var code: String { "busy" }
}

extension CronError: ClassifiedError {
    public var kind: ErrorKind { .invalid }
}

extension ChainError: ClassifiedError {
    public var kind: ErrorKind {
        switch self {
        case .missingBackup: .notFound
        case .referenceMismatch, .unreadable: .damaged
        }
    }

    public var code: String {
        switch self {
        case .missingBackup: "base_backup_missing"
        default: "archive_damaged"
        }
    }
}

extension DependencyError: ClassifiedError {
    public var kind: ErrorKind { .conflict }
    public var code: String { "backup_needed" }
}

extension DrillFailure: ClassifiedError {
    public var kind: ErrorKind { .damaged }
    public var code: String { "drill_failed" }
}

extension StreamError: ClassifiedError {
    public var kind: ErrorKind {
        switch self {
        case .walLevel, .noReplicaIdentity, .notSuperuser: .invalid
        case .alreadyStreaming: .conflict
        case .upload: .unavailable
        case .recordTooLarge, .server: .failed
        }
    }

    public var code: String { kind == .invalid || kind == .conflict ? "stream_refused" : "stream_failed" }
}

extension ReplayError: ClassifiedError {
    public var kind: ErrorKind {
        switch self {
        case .noAnchoredBackup: .notFound
        case .beyondWindow, .gap, .unreplayableSchemaChange, .schemaChangeInSubset: .invalid
        case .missingRole, .notSuperuser: .conflict
        case .conflict, .malformed: .damaged
        }
    }

    public var code: String {
        switch kind {
        case .notFound, .invalid: "target_not_restorable"
        default: "replay_failed"
        }
    }
}
