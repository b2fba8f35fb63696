@testable import ArcaFormat
import Foundation
import Testing

/// Seeded random mutation of valid archives: every input must end in a
/// typed error or a clean read, never a crash, a hang or a huge allocation.
@Suite struct ArchiveFuzzTests {
    /// Plain archives, and encrypted ones read with their key (the key
    /// envelope, sealed frames and the manifest behind a tag get mutated too).
    @Test(arguments: [nil, ArchiveKey.key(SecretBytes(Array(0..<32)))])
    func mutatedArchivesNeverCrash(key: ArchiveKey?) throws {
        let (seed, _) = try Sample.archive([
            Sample.Stream(name: "a", bytes: Sample.copyText(rows: 120)),
            Sample.Stream(name: "b", bytes: Sample.noise(3000)),
        ], key: key)
        var random = SeededGenerator(state: 0xA4CA)
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

    /// Structure-aware: manifests with absurd numbers, wrong types, missing,
    /// duplicated and reordered fields, deep nesting and offsets outside the
    /// file; frame headers, the file header, the trailer and the key
    /// envelope with lying fields; all re-checksummed so they reach the
    /// checks behind the CRCs. A fixed seed and case count keep the run
    /// repeatable and to a few seconds; `ARCA_FUZZ_CASES` runs more, and
    /// scripts/fuzz.sh runs the same mutations under libFuzzer.
    @Test func structuredMutationsNeverCrash() throws {
        let cases = ProcessInfo.processInfo.environment["ARCA_FUZZ_CASES"].flatMap(Int.init) ?? 1500
        var mutator = ArchiveMutator(random: SeededGenerator(state: 0xA4CA_F022))
        let seeds = ArchiveMutator<SeededGenerator>.seeds
        var read = 0, rejected = 0
        var reasons: [String: Int] = [:]
        for index in 0..<cases {
            let mutated = mutator.mutate(seeds)
            switch ArchiveMutator<SeededGenerator>.exercise(mutated.bytes, key: mutated.key) {
            case .read: read += 1
            case .rejected(let error):
                rejected += 1
                reasons[String("\(error)".prefix(40)), default: 0] += 1
            case .unexpected(let problem):
                Issue.record("case \(index): \(problem)")
            }
        }
        if ProcessInfo.processInfo.environment["ARCA_FUZZ_REPORT"] != nil {
            print("fuzz: \(cases) cases, \(read) read, \(rejected) rejected:", reasons.sorted { $0.value > $1.value })
        }
        #expect(read + rejected == cases)
        // The mutations reach past the checksums: manifests are rejected for
        // what they say, not only for their CRCs.
        #expect(reasons.keys.contains { $0.hasPrefix("The archive's manifest is invalid") }, "\(reasons)")
    }
}
