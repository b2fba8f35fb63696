import ArcaFormat
import Foundation

public struct VerifyResult: Codable, Sendable {
    public var backupId: String?
    public var path: String
    public var intact: Bool
    public var problems: [String]
    public var tables: Int
    public var chunks: Int
    public var bytes: UInt64
    public var rawBytes: UInt64
    /// `match`, `mismatch` or `missing`: the `.md5` sidecar against the file.
    public var sidecar: String
    /// `full` (every chunk decoded, authenticated and hashed) or `stored-bytes`
    /// (an encrypted archive checked without its key: the bytes are the
    /// ones written, nothing about their contents).
    public var depth: String
    /// Whether the archive is encrypted: a full check then also authenticated every chunk.
    public var encrypted: Bool
    public var durationSeconds: Double
    /// An incremental backup: the backups whose archives hold its
    /// referenced tables, read and checked too ("through the chain").
    public var chain: [String]?
}

/// Verifies an archive file completely (one sequential read), compares the
/// whole-file MD5 with the sidecar, and records the outcome in the
/// repository when the archive lives there.
public struct Verification: Sendable {
    public let archive: ArchiveReference
    public let repository: Repository
    /// Opens an encrypted archive: every chunk is then authenticated too.
    public var key: ArchiveKey?
    /// Check only the stored bytes against the trailer's digests (no key
    /// needed, nothing decoded). A full check is recorded as the archive's
    /// verification; this one is not.
    public var storedBytesOnly = false
    /// Verify an unencrypted archive although a key is configured (see `ArchiveTrust`).
    public var allowUnencrypted = false
    /// Where an incremental backup's referenced archives are also looked for.
    public var cloud: CloudStore?

    public init(archive: ArchiveReference, repository: Repository, key: ArchiveKey? = nil) {
        self.archive = archive
        self.repository = repository
        self.key = key
    }

    /// A local archive file.
    public init(path: String, repository: Repository, key: ArchiveKey? = nil) {
        self.init(archive: .file(path), repository: repository, key: key)
    }

    public func run(progress: @escaping (OperationProgress) -> Void = { _ in }) throws -> VerifyResult {
        try run(reporter: ProgressReporter(.verify, report: progress))
    }

    private func run(reporter: ProgressReporter) throws -> VerifyResult {
        let clock = ContinuousClock.now
        let source = try archive.open(sequential: true)
        reporter.estimate(tables: 0, bytes: source.size)
        reporter.phase(storedBytesOnly ? "checking the stored bytes" : "reading and checking every chunk")
        func read(_ position: UInt64) {
            reporter.update(tablesDone: 0, bytes: position)
            reporter.send()
        }
        var problems: [String] = []
        var report = VerificationReport()
        var backupID: String?
        var chain: [String] = []
        do {
            // Refused (thrown, not recorded): a planted archive must not be listed as verified.
            let outline = try ArchiveTrust.outline(of: source, archive: archive.description, key: key, allowUnencrypted: allowUnencrypted || storedBytesOnly)
            if storedBytesOnly {
                report = try ArchiveVerifier.verifyStoredBytes(source: source, progress: read)
                problems = report.problems.map { $0.description }
            } else {
                let reader = try ArchiveReader(source: source, outline: outline, key: key)
                backupID = reader.manifest.backupId
                report = try ArchiveVerifier(reader: reader).verify(progress: read)
                problems = report.problems.map { $0.description }
                problems += try verifyReferences(of: reader, into: &report)
                chain = reader.manifest.referencedBackups
            }
        } catch let error as ArchiveError {
            // A missing or wrong key says nothing about the archive itself.
            switch error {
            case .keyRequired, .wrongKey, .keyDerivationFailed: throw error
            default: problems = [error.description]
            }
        }

        let sidecar: String
        if let recorded = try archive.recordedMD5() {
            if report.fileMD5.isEmpty {
                sidecar = "unchecked"
            } else if recorded == report.fileMD5 {
                sidecar = "match"
            } else {
                sidecar = "mismatch"
                problems.append("The sidecar of \(archive) records MD5 \(recorded), but the archive's MD5 is \(report.fileMD5).")
            }
        } else {
            sidecar = "missing"
        }

        // Only a local archive of this repository keeps a verification record.
        var localID: BackupID?
        if case .file(let path) = archive { localID = repository.backupID(ofArchiveAt: path) }
        if case .cloud(_, let id) = archive, backupID == nil { backupID = id.rawValue }
        let duration = ContinuousClock.now - clock
        let result = VerifyResult(
            backupId: backupID ?? localID?.rawValue, path: archive.description, intact: problems.isEmpty,
            problems: problems, tables: report.tablesChecked, chunks: report.chunksChecked, bytes: source.size,
            rawBytes: report.rawBytes, sidecar: sidecar, depth: storedBytesOnly ? "stored-bytes" : "full", encrypted: report.encrypted,
            durationSeconds: duration.seconds, chain: chain.isEmpty ? nil : chain)
        reporter.finish()
        if !storedBytesOnly, let id = localID {
            try repository.recordVerification(id, .init(
                verifiedAt: Manifest.timestamp(Date()), intact: result.intact, problems: problems, tool: ArcaVersion.current))
        }
        return result
    }

    /// Verify "through the chain": an incremental backup's tables stored in
    /// other archives are read there, each chunk checked and each stream's
    /// MD5 and SHA-256 recomputed, after the reference itself is checked
    /// (`ArchiveChain`). Damage and a missing or forged reference are
    /// problems of this backup; a missing or wrong key is thrown.
    private func verifyReferences(of reader: ArchiveReader, into report: inout VerificationReport) throws -> [String] {
        let referenced = reader.manifest.referencedTables
        guard !referenced.isEmpty else { return [] }
        let chain = ArchiveChain(primary: reader, reference: archive, key: key, allowUnencrypted: allowUnencrypted, cloud: cloud)
        defer { chain.release() }
        let decoders = ArchiveChain.Decoders()
        var problems: [String] = []
        for table in referenced {
            do {
                try chain.readTable(table, decoders: decoders, checking: .streamDigests) { raw in
                    report.rawBytes = [report.rawBytes, UInt64(raw.count)].checkedSum ?? .max
                }
                report.tablesChecked += 1
                report.chunksChecked += table.chunkCount
            } catch let error as ArchiveError {
                switch error {
                case .keyRequired, .wrongKey, .keyDerivationFailed: throw error
                default: problems.append("\(error) (table \(table.qualifiedName), stored in backup \(table.storedIn ?? ""))")
                }
            } catch let error as ChainError {
                problems.append(error.description)
            }
        }
        return problems
    }
}
