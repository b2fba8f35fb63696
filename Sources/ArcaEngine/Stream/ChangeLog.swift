import ArcaFormat
import ArcaPostgres
import Foundation

/// The change segments of one replication slot in a repository:
///
///     <root>/changes/<slot>/slot.json             where the slot began (`SlotRecord`)
///     <root>/changes/<slot>/<segment id>.arca     finished segments
///
/// A segment appears only by an atomic rename after it was written and
/// fsynced (through `temp/`, like archives), so every segment listed is whole.
public struct ChangeLog: Sendable {
    public let repository: Repository
    public let slot: String

    public init(repository: Repository, slot: String) {
        self.repository = repository
        self.slot = slot
    }

    public var directory: String { "\(repository.root)/changes/\(slot)" }
    var slotRecordPath: String { directory + "/slot.json" }
    public func path(_ id: SegmentID) -> String { "\(directory)/\(id).arca" }

    /// Where the slot's stream began: every transaction committed at or
    /// after `startLSN` is in this slot's segments, in order, without gaps.
    /// A slot dropped and made again begins a new stream; segments say
    /// which one they belong to (`ChangeData.slotStart`).
    public struct SlotRecord: Codable, Sendable, Equatable {
        public var slot: String
        public var startLSN: UInt64
        public var createdAt: String
        public var database: String
    }

    public func prepare() throws {
        try repository.prepare()
        try FileSystem.makePrivateDirectory(repository.root + "/changes", refusingLinks: true)
        try FileSystem.makePrivateDirectory(directory, refusingLinks: true)
    }

    public func slotRecord() throws -> SlotRecord? {
        guard let bytes = try FileSystem.readSmallFile(slotRecordPath, limit: 4096) else { return nil }
        do {
            return try JSONDecoder().decode(SlotRecord.self, from: Data(bytes))
        } catch {
            throw RepositoryError.malformedFile(path: slotRecordPath, detail: "it is not a slot record")
        }
    }

    func record(_ record: SlotRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try FileSystem.writeAtomically(Array(try encoder.encode(record)), to: slotRecordPath, temporaryDirectory: repository.temporaryDirectory)
    }

    /// The finished segments, in stream order.
    public func segments() throws -> [SegmentID] {
        guard FileSystem.exists(directory) else { return [] }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw RepositoryError.io(operation: "list", path: directory, errno: EACCES)
        }
        return names.compactMap { $0.hasSuffix(".arca") ? SegmentID(String($0.dropLast(5))) : nil }.sorted()
    }

    /// Every slot with segments in the repository.
    public static func slots(in repository: Repository) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: repository.root + "/changes")) ?? []
        return names.filter { ReplicationNames.isValidSlot($0) }.sorted()
    }
}

/// The names the change stream gives its objects in the database.
public enum ReplicationNames {
    /// The publication (per database) of every table's changes.
    public static let publication = "arca_changes"
    /// Arca's schema in the streamed database: the DDL event triggers'
    /// functions and the key that authenticates their messages.
    public static let schema = "arca_stream"
    /// The prefix of the logical messages the DDL triggers emit.
    public static let ddlPrefix = "arca.ddl"
    /// The prefix of the heartbeat messages the streamer emits.
    public static let heartbeatPrefix = "arca.heartbeat"

    /// The default slot of a database: `arca_` and its name in lower case,
    /// other characters as `_`, within the 63 bytes of a name.
    public static func defaultSlot(database: String) -> String {
        let cleaned = database.lowercased().unicodeScalars.map { scalar -> Character in
            ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) ? Character(scalar) : "_"
        }
        return "arca_" + String(String(cleaned).prefix(58))
    }

    /// `configured`, else the default slot of the database `source` names
    /// (asked of the server: libpq's defaults may choose it).
    public static func slot(for source: ConnectionString, configured: String?) throws -> String {
        if let configured { return configured }
        let connection = try PostgresConnection(source, applicationName: "arca")
        defer { connection.close() }
        return defaultSlot(database: connection.database)
    }

    /// Slot names as PostgreSQL allows them (lower-case letters, digits,
    /// underscores, at most 63): also folder names, so nothing else.
    public static func isValidSlot(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 63
            && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }
}
