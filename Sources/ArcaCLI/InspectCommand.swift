import ArcaEngine
import ArcaOperations
import ArcaPostgres
import ArcaFormat
import ArgumentParser
import Foundation

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Show an archive's manifest: tables, rows, sizes and checksums.")

    @Argument(help: "A backup id in the repository, or the path of an .arca file.")
    var backup: String

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var cloud: CloudFlag
    @OptionGroup var key: KeyOption
    @OptionGroup var output: JSONOption

    func run() throws {
        let operations = try commandLineOperations(repository, settings: ["ARCA_KEY_FILE": key.keyFile])
        let inspection: Operations.Inspection
        do {
            inspection = try operations.inspect(backup, fromCloud: cloud.cloud)
        } catch {
            throw Output.fail(error)
        }
        let (manifest, size, encrypted) = (inspection.manifest, inspection.bytes, inspection.encrypted)
        if output.json {
            Output.json(manifest)
            return
        }
        if let changes = manifest.changes {
            printSegment(manifest, changes, size: size, encrypted: encrypted)
            return
        }
        let totals = manifest.totals
        print("""
            Backup     \(manifest.backupId)
            Started    \(manifest.startedAt)   completed \(manifest.completedAt)
            Source     \(manifest.source.identity), PostgreSQL \(manifest.source.serverVersion), snapshot \(manifest.source.snapshot)
            Archive    \(Format.bytes(size)), format \(manifest.formatVersion), zstd level \(manifest.compression.level), chunks of \(Format.bytes(UInt64(manifest.chunkSize)))\(encrypted ? ", encrypted (AES-256-GCM)" : "")
            Schema     \(manifest.schema.map { "written by pg_dump \(PostgresTools.shownVersion($0.pgDumpVersion)), \(Format.bytes($0.rawBytes))" } ?? "none (table data only)")
            Data       \(manifest.tables.count) tables, \(Format.count(manifest.tableRows)) rows; \(manifest.referencedTables.isEmpty ? "" : "in this archive: ")\(Format.bytes(totals.rawBytes)) raw, \(Format.bytes(totals.storedBytes)) stored\(copyFormats(manifest))
            Large obj. \(largeObjects(manifest))\(chain(manifest))
            """)
        if let anchor = manifest.anchor {
            print("Stream     anchored in slot \(anchor.slot) at LSN \(LSN(anchor.lsn)): the start of point-in-time restores after it")
        }
        print("")
        let incremental = manifest.base != nil || !manifest.referencedTables.isEmpty
        let header = ["table", "copy", "rows", "raw", "stored", "ratio", "chunks", "md5"] + (incremental ? ["in"] : [])
        let rows = manifest.tables.map { table in
            let place = incremental ? [table.storedIn ?? "here"] : []
            return [
                table.qualifiedName, table.format.rawValue, Format.count(table.rows), Format.bytes(table.rawBytes), Format.bytes(table.storedBytes),
                table.storedBytes > 0 ? String(format: "%.1fx", Double(table.rawBytes) / Double(table.storedBytes)) : "-",
                table.parts.count == 1 ? String(table.chunkCount) : "\(table.chunkCount) in \(table.parts.count) parts", table.md5,
            ] + place
        }
        printTable([header] + rows)
        if let database = manifest.database {
            print("")
            printDatabase(database)
        }
        if let roles = manifest.roles, !roles.isEmpty {
            print("")
            printTable([["role", "attributes", "member of", "needed as"]] + roles.map { role in
                [
                    DisplayName.role(role.name), Self.attributes(of: role),
                    role.memberOf.map { DisplayName.role($0.role) + ($0.admin ? " (admin)" : "") }.joined(separator: ", "),
                    role.references.joined(separator: ", "),
                ]
            })
        }
    }

    /// How many tables are in each COPY format, when any is binary, and the
    /// oldest server that loads them.
    private func copyFormats(_ manifest: Manifest) -> String {
        let binary = manifest.tables.count { $0.format == .binary }
        guard binary > 0 else { return "" }
        return "\nCOPY       \(binary) table(s) binary (load into PostgreSQL \(manifest.sourceMajorVersion) or later), \(manifest.tables.count - binary) text"
    }

    /// An incremental backup's chain: its base, and where its tables are.
    private func chain(_ manifest: Manifest) -> String {
        let referenced = manifest.referencedTables
        guard manifest.base != nil || !referenced.isEmpty else { return "" }
        var places = ["\(manifest.storedTables.count) stored here"]
        for backup in manifest.referencedBackups {
            let count = referenced.count { $0.storedIn == backup }
            let raw = referenced.lazy.filter { $0.storedIn == backup }.map(\.rawBytes).checkedSum ?? .max
            places.append("\(count) in \(backup) (\(Format.bytes(raw)) raw)")
        }
        return "\nChain      incremental on \(manifest.base ?? "-"): tables \(places.joined(separator: ", "))"
    }

    /// How many, and how they are stored: one stream of records (format 4)
    /// or a stream each (older archives).
    /// A change segment: its place in the stream and what it holds.
    private func printSegment(_ manifest: Manifest, _ changes: Manifest.ChangeData, size: UInt64, encrypted: Bool) {
        print("""
            Segment    \(manifest.backupId) of slot \(changes.slot) (stream begun at LSN \(LSN(changes.slotStart)))
            LSNs       after \(LSN(changes.startLSN)) up to \(LSN(changes.endLSN))
            Commits    \(Format.count(changes.transactions)) transactions\(changes.firstCommitAt.map { ", \($0) to \(changes.lastCommitAt ?? "")" } ?? "")
            Written    \(manifest.startedAt) to \(manifest.completedAt)
            File       \(Format.bytes(size)), format \(manifest.formatVersion), \(Format.count(changes.records)) records, \(Format.bytes(changes.rawBytes)) decoded\(encrypted ? ", encrypted (AES-256-GCM)" : "")
            Tables     \(changes.tables.isEmpty ? "none changed" : changes.tables.map { DisplayName.table($0.schema, $0.name) }.joined(separator: ", "))
            Sequences  \(manifest.sequences.count) captured at the close
            """)
        for change in changes.schemaChanges {
            print("Schema     \(change.commitAt) \(change.tag): \(change.replayable ? "replayed in order" : "not replayable (\(change.reason ?? ""))")")
        }
    }

    private func largeObjects(_ manifest: Manifest) -> String {
        if let data = manifest.largeObjectData {
            return "\(Format.count(data.count)) in one stream, \(Format.bytes(data.rawBytes)) raw, \(Format.bytes(data.storedBytes)) stored"
        }
        let objects = manifest.largeObjects ?? []
        guard !objects.isEmpty else { return "none" }
        let raw = objects.lazy.map(\.rawBytes).checkedSum ?? .max, stored = objects.lazy.map(\.storedBytes).checkedSum ?? .max
        return "\(Format.count(UInt64(objects.count))) in a stream each, \(Format.bytes(raw)) raw, \(Format.bytes(stored)) stored"
    }

    private func printDatabase(_ database: Manifest.Database) {
        // Encoding and locale names as they are when they look like names, else quoted and escaped.
        func plain(_ name: String) -> String {
            name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-.@=".unicodeScalars.contains($0)) }
                ? name : DisplayName.role(name)
        }
        let libc = database.collate == database.ctype ? plain(database.collate) : "\(plain(database.collate)) / \(plain(database.ctype))"
        let provider = database.localeProvider + (database.locale.map { " " + plain($0) } ?? "")
        var lines = [
            "Database   encoding \(plain(database.encoding)), locale \(libc) (\(provider)), owner \(DisplayName.role(database.owner))",
        ]
        var options: [String] = []
        if database.connectionLimit != -1 { options.append("connection limit \(database.connectionLimit)") }
        if !database.allowConnections { options.append("no connections allowed") }
        if database.isTemplate { options.append("template") }
        if database.comment != nil { options.append("has a comment") }
        if let privileges = database.privileges { options.append("\(privileges.count) privilege(s)") }
        if !database.settings.isEmpty { options.append("\(database.settings.count) setting(s)") }
        if !database.securityLabels.isEmpty { options.append("\(database.securityLabels.count) security label(s)") }
        if !options.isEmpty { lines.append("           " + options.joined(separator: ", ")) }
        if !database.extensions.isEmpty {
            lines.append("Extensions \(database.extensions.map(DisplayName.role).joined(separator: ", "))")
        }
        print(lines.joined(separator: "\n"))
    }

    /// The role's attributes as CREATE ROLE spells them; never its password.
    static func attributes(of role: Manifest.Role) -> String {
        var attributes: [String] = []
        if role.superuser { attributes.append("SUPERUSER") }
        if role.login { attributes.append("LOGIN") }
        if role.createDatabase { attributes.append("CREATEDB") }
        if role.createRole { attributes.append("CREATEROLE") }
        if !role.inherit { attributes.append("NOINHERIT") }
        if role.replication { attributes.append("REPLICATION") }
        if role.bypassRowSecurity { attributes.append("BYPASSRLS") }
        if role.connectionLimit != -1 { attributes.append("CONNECTION LIMIT \(role.connectionLimit)") }
        if let validUntil = role.validUntil { attributes.append("VALID UNTIL \(validUntil)") }
        return attributes.joined(separator: " ")
    }
}

func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    let widths = first.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
    for row in rows {
        let line = row.enumerated().map { index, cell in
            cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
        print(line.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression))
    }
}
