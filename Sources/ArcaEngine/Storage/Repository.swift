import ArcaFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A folder of backups:
///
///     <root>/local/<id>.arca              finished archives
///     <root>/local/<id>.arca.md5          their md5sum sidecars
///     <root>/local/<id>.verify.json       the last verification's result
///     <root>/temp/<id>.arca.partial       archives being written
///
/// An archive appears in `local/` only by an atomic rename after it was
/// completely written and fsynced, so every `.arca` in `local/` is whole.
public struct Repository: Sendable {
    public let root: String

    public init(root: String) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    /// `--repo` if given, else `$ARCA_REPO`, else `./backups`.
    public static func resolve(_ explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> Repository {
        Repository(root: explicit ?? environment["ARCA_REPO"].flatMap { $0.isEmpty ? nil : $0 } ?? "backups")
    }

    public var localDirectory: String { root + "/local" }
    public var temporaryDirectory: String { root + "/temp" }

    public func archivePath(_ id: BackupID) -> String { "\(localDirectory)/\(id).arca" }
    public static func checksumPath(ofArchive path: String) -> String { path + ".md5" }
    public func verificationPath(_ id: BackupID) -> String { "\(localDirectory)/\(id).verify.json" }

    /// Creates the folders (mode 0700) if needed.
    public func prepare() throws {
        try FileSystem.makePrivateDirectory(root)
        try FileSystem.makePrivateDirectory(localDirectory, refusingLinks: true)
        try FileSystem.makePrivateDirectory(temporaryDirectory, refusingLinks: true)
    }

    /// A backup being written: its id and its temporary file, created
    /// exclusively so two writers can never share an id.
    public struct Reservation {
        public let id: BackupID
        public let temporaryPath: String
        public let sink: FileSink
    }

    public func reserve(startedAt date: Date) throws -> Reservation {
        // A new id's random part makes a second try all but unheard of.
        for _ in 0..<8 {
            let id = BackupID(date: date)
            let temporary = "\(temporaryDirectory)/\(id).arca.partial"
            if FileSystem.exists(archivePath(id)) { continue }
            let sink: FileSink
            do {
                sink = try FileSink(creatingExclusively: temporary)
            } catch RepositoryError.io(_, _, EEXIST) {
                continue
            }
            // Another writer may have published this id between the check and the create.
            if FileSystem.exists(archivePath(id)) {
                FileSystem.remove(temporary)
                continue
            }
            return Reservation(id: id, temporaryPath: temporary, sink: sink)
        }
        throw OperationError.noFreeID(place: localDirectory, date: date)
    }

    /// Moves a finished, fsynced archive into `local/` with its sidecar.
    /// The sidecar goes first, so any `.arca` visible in `local/` has one.
    public func publish(_ reservation: Reservation, fileMD5: String) throws -> String {
        let archive = archivePath(reservation.id)
        try FileSystem.writeAtomically(Self.sidecar(md5: fileMD5, id: reservation.id), to: Self.checksumPath(ofArchive: archive), temporaryDirectory: temporaryDirectory)
        try FileSystem.rename(reservation.temporaryPath, to: archive)
        try FileSystem.syncDirectory(localDirectory)
        return archive
    }

    /// A sidecar's contents, in `md5sum` format (the same in the bucket).
    static func sidecar(md5: String, id: BackupID) -> [UInt8] { Array("\(md5)  \(id).arca\n".utf8) }

    /// A sidecar is one line of about 70 bytes; anything much larger is not
    /// one, and is not read (or downloaded) whole.
    static let sidecarSizeLimit = 4096
    /// A verification record is a few hundred bytes (a few KiB with problems listed).
    static let verificationRecordSizeLimit = 1 << 20

    /// The MD5 a sidecar records.
    static func recordedMD5(inSidecar bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self).prefix { !$0.isWhitespace }.lowercased()
    }

    /// An id (looked up in `local/`) or a path to an archive file.
    public func locate(_ reference: String) throws -> String {
        if let id = BackupID(reference) {
            let path = archivePath(id)
            guard FileSystem.exists(path) else { throw RepositoryError.backupNotFound(reference, repository: root) }
            return path
        }
        guard !reference.isEmpty, !reference.contains("\u{0}"),
              reference.contains("/") || reference.hasSuffix(".arca") else {
            throw RepositoryError.invalidReference(reference)
        }
        guard FileSystem.exists(reference) else { throw RepositoryError.backupNotFound(reference, repository: root) }
        return reference
    }

    /// The finished archives in `local/`, newest first.
    public func backupIDs() throws -> [BackupID] {
        guard FileSystem.exists(localDirectory) else { return [] }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: localDirectory)
        } catch {
            throw RepositoryError.io(operation: "list", path: localDirectory, errno: EACCES)
        }
        return names.compactMap { name in
            name.hasSuffix(".arca") ? BackupID(String(name.dropLast(5))) : nil
        }.sorted(by: >)
    }

    // MARK: Verification records

    public struct VerificationRecord: Codable, Sendable, Equatable {
        public var verifiedAt: String
        public var intact: Bool
        public var problems: [String]
        public var tool: String

        public var integrity: Integrity { intact ? .verified : .failed }
    }

    public func verificationRecord(_ id: BackupID) -> VerificationRecord? {
        // A record that cannot be read counts as none: the archive shows as unverified.
        guard let bytes = try? FileSystem.readSmallFile(verificationPath(id), limit: Self.verificationRecordSizeLimit) else { return nil }
        return try? JSONDecoder().decode(VerificationRecord.self, from: Data(bytes))
    }

    public func recordVerification(_ id: BackupID, _ record: VerificationRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try prepare()
        try FileSystem.writeAtomically(Array(try encoder.encode(record)), to: verificationPath(id), temporaryDirectory: temporaryDirectory)
    }

    /// The id of an archive at `path` when it lives in this repository's `local/`.
    public func backupID(ofArchiveAt path: String) -> BackupID? {
        let name = (path as NSString).lastPathComponent
        guard name.hasSuffix(".arca"), let id = BackupID(String(name.dropLast(5))),
              (path as NSString).standardizingPath == (archivePath(id) as NSString).standardizingPath else { return nil }
        return id
    }
}
