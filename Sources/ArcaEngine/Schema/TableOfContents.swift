/// pg_restore's table of contents (`pg_restore --list --verbose`), and the
/// selection of the entries a subset restore needs.
///
/// Each entry line reads `ID; CATALOG OID DESC NAMESPACE TAG OWNER`, and
/// with `--verbose` a line `;	depends on: ID …` follows it. Only the
/// dump id, the catalog, the OID and the description (a fixed word list at
/// the start of what follows) are read: names are the source database's
/// and may hold anything, so nothing is decided by them.
///
/// Entries of the catalogs that hold relation-level objects (tables, views,
/// sequences, indexes, constraints, defaults, triggers, rules, policies,
/// statistics, row security) are kept when their OID is among the objects
/// of a restored table (the manifest lists them per table). Entries without
/// an OID (comments, privileges, security labels, partition and index
/// attachments, `OWNED BY`) are left out when they depend on an entry that
/// is left out. Everything else (schemas, types, functions, extensions) is
/// kept.
struct TableOfContents: Sendable {
    struct Entry: Sendable {
        var line: Substring
        var dumpId: Int
        var catalog: UInt32
        var oid: UInt32
        /// `DESC NAMESPACE TAG OWNER`: only its start, DESC, is read.
        var rest: Substring
        var dependencies: [Int] = []

        /// `ROW SECURITY` entries have no catalog but carry their table's OID.
        var isRelationLevel: Bool {
            TableOfContents.relationCatalogs.contains(catalog) || (catalog == 0 && rest.hasPrefix("ROW SECURITY "))
        }
    }

    var entries: [Entry] = []

    /// pg_class, pg_constraint, pg_trigger, pg_rewrite, pg_policy, pg_attrdef, pg_statistic_ext.
    static let relationCatalogs: Set<UInt32> = [1259, 2606, 2620, 2618, 3256, 2604, 3381]
    static let largeObjectCatalog: UInt32 = 2613

    init(listing: String) {
        for line in listing.split(separator: "\n") {
            if line.hasPrefix(";\tdepends on:") {
                let ids = line.dropFirst(";\tdepends on:".count).split(separator: " ").compactMap { Int($0) }
                if !entries.isEmpty { entries[entries.count - 1].dependencies += ids }
                continue
            }
            guard !line.hasPrefix(";") else { continue }
            let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count == 4, parts[0].hasSuffix(";"), let dumpId = Int(parts[0].dropLast()),
                  let catalog = UInt32(parts[1]), let oid = UInt32(parts[2]) else { continue }
            entries.append(Entry(line: line, dumpId: dumpId, catalog: catalog, oid: oid, rest: parts[3]))
        }
    }

    /// The `--use-list` file: the entries to restore, in their order.
    func selecting(objects kept: Set<UInt32>?, largeObjects: Bool) -> String {
        var excluded = Set<Int>()
        for entry in entries {
            if entry.catalog == Self.largeObjectCatalog, !largeObjects { excluded.insert(entry.dumpId) }
            if let kept, entry.isRelationLevel, !kept.contains(entry.oid) { excluded.insert(entry.dumpId) }
        }
        // An entry without an OID describes the objects it depends on;
        // dependencies can point forward, so repeat until nothing changes.
        var changed = true
        while changed {
            changed = false
            for entry in entries where entry.catalog == 0 && entry.oid == 0 && !excluded.contains(entry.dumpId) {
                if entry.dependencies.contains(where: excluded.contains) {
                    excluded.insert(entry.dumpId)
                    changed = true
                }
            }
        }
        return entries.filter { !excluded.contains($0.dumpId) }.map(\.line).joined(separator: "\n") + "\n"
    }
}
