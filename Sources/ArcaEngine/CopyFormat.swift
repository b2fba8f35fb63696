import ArcaFormat

/// `--copy-format`, `ARCA_COPY_FORMAT`: the COPY format a backup writes
/// each table's rows in (FORMAT.md, "Table data").
public enum CopyFormatChoice: String, Sendable, CaseIterable {
    /// Binary for each table whose every column binary COPY carries exactly
    /// (`Catalog.textOnlyColumns`), text for the others: binary is smaller
    /// and faster to write and to load for most types, text is portable.
    case auto
    /// Every table as text: an archive any later PostgreSQL loads.
    case text
    /// Every table in binary; a table that cannot be is refused before
    /// anything is copied.
    case binary

    /// Parses a setting's value; anything else is an error naming `setting`.
    public init(parsing text: String, setting: String) throws {
        guard let choice = CopyFormatChoice(rawValue: text.lowercased()) else {
            throw OperationError.invalidConfiguration(
                "\(setting) must be auto, text or binary, not \"\(text.prefix(20))\". auto (the default) copies in binary the tables binary COPY carries exactly and the others as text.")
        }
        self = choice
    }
}

extension Manifest.CopyFormat {
    /// The options of a `COPY` statement in this format, with ` WITH`
    /// and the parentheses; empty for text without `freeze`.
    func copyOptions(freeze: Bool = false) -> String {
        let options = (self == .binary ? ["FORMAT binary"] : []) + (freeze ? ["FREEZE"] : [])
        return options.isEmpty ? "" : " WITH (\(options.joined(separator: ", ")))"
    }
}
