import ArcaEngine
import ArcaOperations
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
        let totals = manifest.totals
        print("""
            Backup     \(manifest.backupId)
            Started    \(manifest.startedAt)   completed \(manifest.completedAt)
            Source     database \(manifest.source.database), PostgreSQL \(manifest.source.serverVersion), snapshot \(manifest.source.snapshot)
            Archive    \(Format.bytes(size)), format \(manifest.formatVersion), zstd level \(manifest.compression.level), chunks of \(Format.bytes(UInt64(manifest.chunkSize)))\(encrypted ? ", encrypted (AES-256-GCM)" : "")
            Schema     \(manifest.schema.map { "written by pg_dump \(PostgresTools.shownVersion($0.pgDumpVersion)), \(Format.bytes($0.rawBytes))" } ?? "none (table data only)")
            Data       \(manifest.tables.count) tables, \(Format.count(totals.rows)) rows, \(Format.bytes(totals.rawBytes)) raw, \(Format.bytes(totals.storedBytes)) stored
            """)
        print("")
        let header = ["table", "rows", "raw", "stored", "ratio", "chunks", "md5"]
        let rows = manifest.tables.map { table in
            [
                table.qualifiedName, Format.count(table.rows), Format.bytes(table.rawBytes), Format.bytes(table.storedBytes),
                table.storedBytes > 0 ? String(format: "%.1fx", Double(table.rawBytes) / Double(table.storedBytes)) : "-",
                table.parts.count == 1 ? String(table.chunkCount) : "\(table.chunkCount) in \(table.parts.count) parts", table.md5,
            ]
        }
        printTable([header] + rows)
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
