import ArcaFormat
import Foundation

/// An archive and the archives its referenced tables are stored in (an
/// incremental backup's chain, FORMAT.md "Incremental backups"), read as
/// one: restore, verify and drills ask it for a table's reader and get the
/// archive that physically holds the table.
///
/// A referenced archive is looked for beside the first one (the same
/// folder, or the same bucket) and, for a local archive, in `cloud`. It is
/// opened with the same key and trust rule, and before any of its data is
/// used, its manifest must carry the backup id named and hold the table with
/// the same columns and identical parts (`Manifest.Table.sameData`): a
/// forged reference cannot point at anything unchecked.
///
/// Thread-safe: parallel restore workers share one chain, each with its
/// own `Decoders`.
public final class ArchiveChain: @unchecked Sendable {
    public let primary: ArchiveReader
    public let reference: ArchiveReference
    let key: ArchiveKey?
    let allowUnencrypted: Bool
    let cloud: CloudStore?
    /// Take a shared lock on each local archive opened, as a restore does
    /// on its own: cleanup then leaves them alone while they are read.
    let lockingFiles: Bool

    private let lock = NSLock()
    /// Each referenced archive opened, with its tables by `schema\0name`.
    private var opened: [String: (reader: ArchiveReader, tables: [String: Int])] = [:]
    private var fileLocks: [FileLock] = []

    public init(
        primary: ArchiveReader, reference: ArchiveReference, key: ArchiveKey?, allowUnencrypted: Bool, cloud: CloudStore? = nil,
        lockingFiles: Bool = false
    ) {
        self.primary = primary
        self.reference = reference
        self.key = key
        self.allowUnencrypted = allowUnencrypted
        self.cloud = cloud
        self.lockingFiles = lockingFiles
    }

    deinit { release() }

    /// Releases the locks taken on referenced local archives.
    public func release() {
        lock.lock()
        let locks = fileLocks
        fileLocks = []
        lock.unlock()
        for fileLock in locks { fileLock.release() }
    }

    /// Opens every archive `tables` need and checks each referenced table
    /// there: a restore calls it before it changes anything.
    public func check(_ tables: [Manifest.Table]) throws {
        for table in tables where !table.isStoredHere { _ = try reader(for: table) }
    }

    /// The reader of the archive that holds `table`'s parts.
    public func reader(for table: Manifest.Table) throws -> ArchiveReader {
        guard let storedIn = table.storedIn else { return primary }
        let (reader, tables) = try open(storedIn, for: table)
        guard let index = tables["\(table.schema)\u{0}\(table.name)"], table.sameData(as: reader.manifest.tables[index]) else {
            throw ChainError.referenceMismatch(table: table.qualifiedName, backup: primary.manifest.backupId, storedIn: storedIn)
        }
        return reader
    }

    /// One decoder per archive read, for one thread.
    public final class Decoders {
        private var decoders: [ObjectIdentifier: ChunkDecoder] = [:]
        public init() {}

        public func decoder(for reader: ArchiveReader) -> ChunkDecoder {
            if let decoder = decoders[ObjectIdentifier(reader)] { return decoder }
            let decoder = reader.makeDecoder()
            decoders[ObjectIdentifier(reader)] = decoder
            return decoder
        }
    }

    /// Streams `table`'s rows (all its parts, in order) from the archive that holds them.
    public func readTable(
        _ table: Manifest.Table, decoders: Decoders, checking: ArchiveReader.StreamCheck,
        _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let reader = try reader(for: table)
        try reader.readTable(table, decoder: decoders.decoder(for: reader), checking: checking, body)
    }

    /// Streams one part of `table` from the archive that holds it.
    public func readPart(
        _ table: Manifest.Table, part: Int, decoders: Decoders, checking: ArchiveReader.StreamCheck,
        _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let reader = try reader(for: table)
        try reader.readStream(
            table.parts[part], named: table.displayName(part: part), decoder: decoders.decoder(for: reader), checking: checking, body)
    }

    private func open(_ storedIn: String, for table: Manifest.Table) throws -> (reader: ArchiveReader, tables: [String: Int]) {
        lock.lock()
        defer { lock.unlock() }
        if let archive = opened[storedIn] { return archive }
        let needing = primary.manifest.backupId
        guard let id = BackupID(storedIn) else {
            // Validation refuses such a manifest; kept for a reader built otherwise.
            throw ChainError.referenceMismatch(table: table.qualifiedName, backup: needing, storedIn: storedIn)
        }
        let (location, searched) = try locate(id)
        guard let location else {
            throw ChainError.missingBackup(table: table.qualifiedName, backup: needing, storedIn: storedIn, searched: searched)
        }
        var fileLock: FileLock?
        if lockingFiles, case .file(let path) = location {
            guard let taken = try FileLock(path: path, mode: .shared, create: false) else {
                throw ChainError.unreadable(
                    table: table.qualifiedName, backup: needing, storedIn: storedIn, reason: "its archive \(path) is being removed by a cleanup")
            }
            fileLock = taken
        }
        let reader: ArchiveReader
        do {
            reader = try ArchiveTrust.reader(
                of: try location.open(sequential: true), archive: location.description, key: key, allowUnencrypted: allowUnencrypted)
        } catch let error as ArchiveError {
            switch error {
            // A key problem is the configuration's, reported as itself.
            case .keyRequired, .wrongKey, .keyDerivationFailed: throw error
            default: throw ChainError.unreadable(table: table.qualifiedName, backup: needing, storedIn: storedIn, reason: "\(error)")
            }
        }
        // A file named for one backup that holds another is no part of this chain.
        guard reader.manifest.backupId == storedIn else {
            throw ChainError.referenceMismatch(table: table.qualifiedName, backup: needing, storedIn: storedIn)
        }
        // Names are unique in a validated manifest.
        let tables = Dictionary(
            reader.manifest.tables.enumerated().map { ("\($1.schema)\u{0}\($1.name)", $0) }, uniquingKeysWith: { first, _ in first })
        opened[storedIn] = (reader, tables)
        if let fileLock { fileLocks.append(fileLock) }
        return (reader, tables)
    }

    /// Where backup `id`'s archive is: beside the first archive, else (for
    /// a local one) in the bucket; nil and the places searched when nowhere.
    private func locate(_ id: BackupID) throws -> (ArchiveReference?, String) {
        switch reference {
        case .file(let path):
            let folder = (path as NSString).deletingLastPathComponent
            let candidate = (folder as NSString).appendingPathComponent("\(id.rawValue).arca")
            if FileSystem.exists(candidate) { return (.file(candidate), folder) }
            guard let cloud else { return (nil, folder) }
            if try cloud.stat(id) != nil { return (.cloud(cloud, id), folder) }
            return (nil, "\(folder) or \(cloud.place)")
        case .cloud(let store, _):
            return (try store.stat(id) != nil ? .cloud(store, id) : nil, store.place)
        }
    }
}

/// Failures of reading through an incremental backup's chain.
public enum ChainError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The archive a referenced table is stored in is not where it is looked for.
    case missingBackup(table: String, backup: String, storedIn: String, searched: String)
    /// The referenced archive does not hold the table as the reference says.
    case referenceMismatch(table: String, backup: String, storedIn: String)
    /// The referenced archive exists but cannot be read.
    case unreadable(table: String, backup: String, storedIn: String, reason: String)

    public var description: String {
        switch self {
        case .missingBackup(let table, let backup, let storedIn, let searched):
            "Backup \(backup) is incremental: its table \(table) is stored in backup \(storedIn), which is not in \(searched). Put \(storedIn)'s archive back (copy \(storedIn).arca into that folder, or `arca sync --download` it from the bucket) and run the command again. Nothing was changed."
        case .referenceMismatch(let table, let backup, let storedIn):
            "Backup \(backup) says its table \(table) is stored in backup \(storedIn), but that archive does not hold the table with the same columns and parts: the reference is forged, or \(storedIn) was replaced by another archive. Nothing was read from it and nothing was changed."
        case .unreadable(let table, let backup, let storedIn, let reason):
            "Backup \(backup) is incremental: its table \(table) is stored in backup \(storedIn), which cannot be read: \(reason) Nothing was changed."
        }
    }
}
