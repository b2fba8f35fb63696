@testable import ArcaFormat
import Testing

/// Seeded random mutation of valid archives: every input must end in a
/// typed error or a clean read, never a crash, a hang or a huge allocation.
@Suite struct ArchiveFuzzTests {
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state
        }
    }

    /// Plain archives, and encrypted ones read with their key (the key
    /// envelope, sealed frames and the manifest behind a tag get mutated too).
    @Test(arguments: [nil, ArchiveKey.key(SecretBytes(Array(0..<32)))])
    func mutatedArchivesNeverCrash(key: ArchiveKey?) throws {
        let (seed, _) = try Sample.archive([
            Sample.Stream(name: "a", bytes: Sample.copyText(rows: 120)),
            Sample.Stream(name: "b", bytes: Sample.noise(3000)),
        ], key: key)
        var random = Generator(state: 0xA4CA)
        for _ in 0..<1500 {
            var bytes = seed
            switch Int.random(in: 0..<5, using: &random) {
            case 0:
                for _ in 0..<Int.random(in: 1...8, using: &random) {
                    bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
            case 1:
                bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &random)))
            case 2:
                let at = Int.random(in: 0..<bytes.count, using: &random)
                bytes.insert(contentsOf: Sample.noise(Int.random(in: 1...64, using: &random), seed: random.next()), at: at)
            case 3:
                // Large values in length fields, where an unchecked reader would allocate.
                let at = Int.random(in: 0..<max(1, bytes.count - 8), using: &random)
                bytes.replaceSubrange(at..<at + 4, with: [0xFF, 0xFF, 0xFF, 0x7F])
            default:
                let at = Int.random(in: 0..<bytes.count, using: &random)
                bytes.remove(at: at)
            }
            do {
                let reader = try Sample.read(bytes, key: key)
                _ = try ArchiveVerifier(reader: reader).verify()
                for table in reader.manifest.tables { _ = try? Sample.tableBytes(reader, table) }
            } catch is ArchiveError {
                continue
            }
        }
    }
}
