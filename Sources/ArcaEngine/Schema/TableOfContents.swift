/// pg_restore's table of contents (`pg_restore --list`), and the selection
/// of the entries a subset restore needs.
///
/// Each entry line reads `ID; CATALOG OID DESC NAMESPACE TAG OWNER`. Entries
/// of the catalogs that hold relation-level objects (tables, views,
/// sequences, indexes, constraints, defaults, triggers, rules, policies,
/// statistics) are kept when their OID is among the objects of a restored
/// table (the manifest lists them per table). Entries without an OID
/// (comments, privileges, partition attachments, `OWNED BY`) are dropped when
/// they name a relation-level object that is not kept. Everything else
/// (schemas, types, functions, extensions) is kept.
struct TableOfContents: Sendable {
    struct Entry: Sendable {
        var line: String
        var catalog: UInt32
        var oid: UInt32
        /// `DESC NAMESPACE TAG OWNER`, as printed.
        var rest: String
    }

    var entries: [Entry] = []
    /// Schema names, longest first: entry lines do not quote them, so a
    /// namespace with a space is recognised by name.
    var namespaces: [String] = ["public", "pg_catalog"]

    /// pg_class, pg_constraint, pg_trigger, pg_rewrite, pg_policy, pg_attrdef, pg_statistic_ext.
    static let relationCatalogs: Set<UInt32> = [1259, 2606, 2620, 2618, 3256, 2604, 3381]
    static let largeObjectCatalog: UInt32 = 2613

    init(listing: String) {
        for line in listing.split(separator: "\n") where !line.hasPrefix(";") {
            let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count == 4, parts[0].hasSuffix(";"),
                  let catalog = UInt32(parts[1]), let oid = UInt32(parts[2]) else { continue }
            let entry = Entry(line: String(line), catalog: catalog, oid: oid, rest: String(parts[3]))
            if entry.rest.hasPrefix("SCHEMA - ") {
                let words = entry.rest.dropFirst("SCHEMA - ".count).split(separator: " ", omittingEmptySubsequences: false)
                namespaces.append(words.dropLast().joined(separator: " "))
            }
            entries.append(entry)
        }
        namespaces.sort { $0.count > $1.count }
    }

    /// The `--use-list` file: the entries to restore, in their order.
    func selecting(objects kept: Set<UInt32>?, largeObjects: Bool) -> String {
        var selected: [Entry] = []
        // Descriptions of the objects left out, as the OID-less entries name them.
        var excludedRelations: [(namespace: String, desc: String, tag: String)] = []
        var excludedOther: [String] = []
        for entry in entries {
            if entry.catalog == Self.largeObjectCatalog, !largeObjects {
                excludedOther.append("LARGE OBJECT \(entry.oid)")
                continue
            }
            let relationLevel = Self.relationCatalogs.contains(entry.catalog) || entry.rest.hasPrefix("ROW SECURITY ")
            if let kept, relationLevel, !kept.contains(entry.oid) {
                if entry.catalog == 1259, let relation = relation(entry.rest) { excludedRelations.append(relation) }
                // A constraint's index is attached by the constraint's name.
                if entry.catalog == 2606, let constraint = constraint(entry.rest) { excludedRelations.append(constraint) }
                continue
            }
            selected.append(entry)
        }
        selected.removeAll { entry in
            guard entry.catalog == 0 else { return false }
            return excludedRelations.contains { Self.names(entry.rest, $0) } || excludedOther.contains { entry.rest.contains(" \($0) ") }
        }
        return selected.map(\.line).joined(separator: "\n") + "\n"
    }

    private static let relationDescriptions = ["MATERIALIZED VIEW", "FOREIGN TABLE", "SEQUENCE", "TABLE", "VIEW", "INDEX"]

    /// `TABLE clinic Patient postgres` → ("clinic", "TABLE", "Patient"). The
    /// owner is the last word; the namespace is a known schema name.
    func relation(_ rest: String) -> (namespace: String, desc: String, tag: String)? {
        guard let desc = Self.relationDescriptions.first(where: { rest.hasPrefix($0 + " ") }) else { return nil }
        let words = rest.dropFirst(desc.count + 1).split(separator: " ", omittingEmptySubsequences: false).dropLast()
        let text = words.joined(separator: " ")
        guard let namespace = namespaces.first(where: { text.hasPrefix($0 + " ") }) else { return nil }
        return (namespace, desc, String(text.dropFirst(namespace.count + 1)))
    }

    /// `CONSTRAINT clinic consultation_2022 consultation_2022_pkey postgres`
    /// → ("clinic", "INDEX", "consultation_2022_pkey"): the table name is a
    /// known relation of the namespace, the constraint's name follows it.
    func constraint(_ rest: String) -> (namespace: String, desc: String, tag: String)? {
        guard let desc = ["FK CONSTRAINT", "CHECK CONSTRAINT", "CONSTRAINT"].first(where: { rest.hasPrefix($0 + " ") }) else { return nil }
        let text = rest.dropFirst(desc.count + 1).split(separator: " ", omittingEmptySubsequences: false).dropLast().joined(separator: " ")
        guard let namespace = namespaces.first(where: { text.hasPrefix($0 + " ") }) else { return nil }
        let tableAndName = text.dropFirst(namespace.count + 1)
        let tables = relationNames[namespace] ?? []
        guard let table = tables.sorted(by: { $0.count > $1.count }).first(where: { tableAndName.hasPrefix($0 + " ") }) else { return nil }
        return (namespace, "INDEX", String(tableAndName.dropFirst(table.count + 1)))
    }

    /// Relation names per namespace, from the entries of pg_class.
    var relationNames: [String: [String]] {
        var names: [String: [String]] = [:]
        for entry in entries where entry.catalog == 1259 {
            if let relation = relation(entry.rest) { names[relation.namespace, default: []].append(relation.tag) }
        }
        return names
    }

    /// Whether an OID-less entry (`COMMENT clinic TABLE "Patient" postgres`,
    /// `TABLE ATTACH clinic consultation_2022 postgres`) refers to `relation`.
    static func names(_ rest: String, _ relation: (namespace: String, desc: String, tag: String)) -> Bool {
        let quoted = "\"" + relation.tag.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        for tag in Set([relation.tag, quoted]) {
            for kind in ["COMMENT", "ACL", "SECURITY LABEL"] {
                let prefix = "\(kind) \(relation.namespace) "
                guard rest.hasPrefix(prefix) else { continue }
                let object = rest.dropFirst(prefix.count)
                if object.hasPrefix("\(relation.desc) \(tag) ") || object.hasPrefix("COLUMN \(tag).")
                    || object.contains(" ON \(tag) ") {
                    return true
                }
            }
            for kind in ["TABLE ATTACH", "INDEX ATTACH", "SEQUENCE OWNED BY"] where rest.hasPrefix("\(kind) \(relation.namespace) \(tag) ") {
                return true
            }
        }
        return false
    }
}

import Foundation
