/// The version recorded in every manifest and printed by `arca --version`.
public enum ArcaVersion {
    public static let current = "0.1.0"
}
