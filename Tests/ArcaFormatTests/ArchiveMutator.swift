@testable import ArcaFormat
import Foundation

// No `import Testing`: scripts/fuzz.sh builds this file into the libFuzzer
// target as well.

/// Structure-aware mutations of valid archives. Random bytes almost never
/// make a well-formed manifest with absurd numbers, a frame header with a
/// valid CRC and lying lengths, or a key envelope with other scrypt
/// parameters; this makes exactly those, and re-computes the CRCs and body
/// digests (and the manifest frame) so that each mutation gets past the
/// checksums to the checks behind them. Choices come from `random`: a seeded
/// generator in the test suite, the fuzzer's input under libFuzzer.
struct ArchiveMutator<Source: RandomNumberGenerator> {
    var random: Source

    /// A valid archive to mutate and the key that opens it.
    struct Seed {
        let bytes: [UInt8]
        let key: ArchiveKey?
    }

    static var seeds: [Seed] {
        let key = ArchiveKey.key(SecretBytes(Array(0..<32)))
        let passphrase = try! ArchiveKey.passphrase("correct horse battery staple", cost: ScryptCost(log2N: 10))
        let streams = [
            Sample.Stream(name: "a", bytes: Sample.copyText(rows: 120)),
            Sample.Stream(schema: "clinic", name: "b", bytes: Sample.noise(3000)),
            Sample.Stream(name: "empty", bytes: []),
        ]
        // Large objects: an empty one, and records that straddle chunks.
        let largeObjects = Sample.largeObjectRecords([(7, []), (9, Sample.noise(5000)), (12, Array("x-ray".utf8))], segment: 700)
        return [
            Seed(bytes: try! Sample.archive(streams).bytes, key: nil),
            Seed(bytes: try! Sample.archive(streams, largeObjects: largeObjects).bytes, key: nil),
            Seed(bytes: try! Sample.archive(streams, level: nil).bytes, key: nil),
            Seed(bytes: try! Sample.archive(streams, key: key).bytes, key: key),
            Seed(bytes: try! Sample.archive(Array(streams.prefix(1)), key: passphrase).bytes, key: passphrase),
        ]
    }

    mutating func below(_ count: Int) -> Int { Int.random(in: 0..<count, using: &random) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    mutating func pick<T>(_ values: [T]) -> T { values[below(values.count)] }

    /// Numbers that break naive arithmetic, as JSON literals.
    static var interestingNumbers: [String] {
        ["0", "1", "-1", "4096", "4097", "65535", "4294967295", "4294967296", "9007199254740993", "9223372036854775807",
         "9223372036854775808", "18446744073709551615", "18446744073709551616", "-9223372036854775809", "1e308", "1.5",
         "-0", "1e-7", String(repeating: "9", count: 400)]
    }

    static var interesting32: [UInt32] { [0, 1, 2, 31, 32, 33, 96, 4095, 4096, 4097, 1 << 20, 1 << 30, 0x7FFF_FFFF, 0xFFFF_FFF0, .max] }

    /// One mutated archive of one of `seeds`, and the key to read it with.
    mutating func mutate(_ seeds: [Seed]) -> Seed {
        let seed = pick(seeds)
        var bytes = seed.bytes
        let rounds = chance(80) ? 1 : 1 + below(3)
        for _ in 0..<rounds {
            switch below(10) {
            case 0, 1, 2, 3: bytes = mutateManifest(bytes)
            case 4, 5: bytes = mutateFrameHeader(bytes)
            case 6: bytes = mutateFileHeader(bytes)
            case 7: bytes = mutateTrailer(bytes)
            case 8: bytes = mutateKeyEnvelope(bytes)
            default: bytes = mutateBytes(bytes)
            }
        }
        return Seed(bytes: bytes, key: seed.key)
    }

    // MARK: Manifest

    /// Changes the manifest's JSON and writes it back as a valid stored or
    /// zstd frame (unencrypted archives; an encrypted archive's manifest
    /// cannot be forged without its key, so there the frame is replaced as
    /// it is and fails authentication).
    mutating func mutateManifest(_ bytes: [UInt8]) -> [UInt8] {
        guard let outline = try? ArchiveOutline(source: MemorySource(bytes)),
              let reader = try? ArchiveReader(source: MemorySource(bytes), outline: outline, key: nil)
        else { return mutateBytes(bytes) }
        var json = reader.manifest.encoded()
        for _ in 0..<(chance(70) ? 1 : 2 + below(4)) { json = mutateJSON(json, fileSize: UInt64(bytes.count)) }
        let compressed = chance(30)
        let payload = compressed ? Sample.zstd(json) : json
        var rawLength = UInt32(clamping: json.count)
        if chance(5) { rawLength = pick(Self.interesting32) }
        return (try? Sample.replacingManifest(bytes, payload: payload, codec: compressed ? .zstd : .stored, rawLength: rawLength)) ?? bytes
    }

    mutating func mutateJSON(_ json: [UInt8], fileSize: UInt64) -> [UInt8] {
        switch below(12) {
        case 11:
            // One field set to the same value everywhere it appears, so that
            // tables agree with their parts and the lie reaches the totals.
            let field = pick(["rows", "rawBytes", "storedBytes", "rawLength", "storedLength", "offset", "stream", "chunkSize"])
            let value = Array(pick(Self.interestingNumbers).utf8)
            let prefix = Array("\"\(field)\":".utf8)
            var result = json
            for token in Self.scalarTokens(json).reversed()
            where token.lowerBound >= prefix.count && Array(json[token.lowerBound - prefix.count..<token.lowerBound]) == prefix {
                result.replaceSubrange(token, with: value)
            }
            return result
        case 0, 1:
            return replaceToken(in: json, kind: .number) { mutator, _ in Array(mutator.pick(Self.interestingNumbers).utf8) }
        case 2:
            // Offsets just outside the data area, or past the file.
            return replaceToken(in: json, kind: .number, after: "\"offset\":") { mutator, _ in
                Array(String(mutator.pick([0, 63, 64, 191, 192, fileSize - 97, fileSize - 96, fileSize, fileSize + 1, UInt64.max - 31, UInt64.max])).utf8)
            }
        case 3:
            return replaceToken(in: json, kind: .string) { mutator, _ in
                mutator.chance(50) ? Array(("\"" + String(repeating: "x", count: mutator.pick([0, 33, 65, 4096, 1 << 20])) + "\"").utf8)
                    : Array(mutator.pick(["\"\\ud800\"", "\"\\u0000\"", "\"backup_99999999_999999\"", "\"../../etc/passwd\"", "\"\u{1F600}\""]).utf8)
            }
        case 4:
            // The wrong type.
            return replaceToken(in: json, kind: .any) { mutator, _ in Array(mutator.pick(["null", "true", "\"1\"", "[]", "{}", "[1,2]", "{\"a\":1}"]).utf8) }
        case 5:
            // Deep nesting.
            return replaceToken(in: json, kind: .any) { mutator, _ in
                let depth = mutator.pick([8, 33, 100, 10_000, 100_000])
                return Array((String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth)).utf8)
            }
        case 6:
            // A duplicated key: the same field again, with another value.
            let keys = ["tables", "totals", "rows", "offset", "chunks", "parts", "stream", "chunkSize", "archiveId", "rawBytes"]
            let insertion = Array("\"\(pick(keys))\":\(pick(Self.interestingNumbers + ["[]", "{}", "null"])),".utf8)
            let openings = json.indices.filter { json[$0] == UInt8(ascii: "{") }
            guard !openings.isEmpty else { return json }
            var result = json
            result.insert(contentsOf: insertion, at: pick(openings) + 1)
            return result
        default:
            return mutateTree(json)
        }
    }

    enum TokenKind { case number, string, any }

    /// Replaces one scalar token (chosen at random among those of `kind`,
    /// optionally only those right after `prefix`) with `replacement`.
    mutating func replaceToken(
        in json: [UInt8], kind: TokenKind, after prefix: String? = nil, _ replacement: (inout Self, ArraySlice<UInt8>) -> [UInt8]
    ) -> [UInt8] {
        let tokens = Self.scalarTokens(json).filter { token in
            let isString = json[token.lowerBound] == UInt8(ascii: "\"")
            switch kind {
            case .number: if isString || json[token.lowerBound] == UInt8(ascii: "t") || json[token.lowerBound] == UInt8(ascii: "f") || json[token.lowerBound] == UInt8(ascii: "n") { return false }
            case .string: if !isString { return false }
            case .any: break
            }
            guard let prefix else { return true }
            let bytes = Array(prefix.utf8)
            return token.lowerBound >= bytes.count && Array(json[token.lowerBound - bytes.count..<token.lowerBound]) == bytes
        }
        guard !tokens.isEmpty else { return json }
        let token = pick(tokens)
        // Keys are strings too: only values (after a colon, comma or bracket) qualify, but
        // replacing a key now and then is a structural mutation of its own.
        var result = json
        result.replaceSubrange(token, with: replacement(&self, json[token]))
        return result
    }

    /// Ranges of JSON scalars: strings (with their quotes), numbers, literals.
    static func scalarTokens(_ json: [UInt8]) -> [Range<Int>] {
        var tokens: [Range<Int>] = []
        var index = 0
        while index < json.count {
            let byte = json[index]
            if byte == UInt8(ascii: "\"") {
                var end = index + 1
                while end < json.count, json[end] != UInt8(ascii: "\"") { end += json[end] == UInt8(ascii: "\\") ? 2 : 1 }
                end = min(end + 1, json.count)
                tokens.append(index..<end)
                index = end
            } else if byte == UInt8(ascii: "-") || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "t") || byte == UInt8(ascii: "f") || byte == UInt8(ascii: "n") {
                var end = index + 1
                while end < json.count, !",]} \n".utf8.contains(json[end]) { end += 1 }
                tokens.append(index..<end)
                index = end
            } else {
                index += 1
            }
        }
        return tokens
    }

    /// Structural changes through a parsed tree: a key removed, an array
    /// reordered, reversed, emptied, an element duplicated or dropped.
    mutating func mutateTree(_ json: [UInt8]) -> [UInt8] {
        guard let tree = try? JSONSerialization.jsonObject(with: Data(json)) else { return json }
        var containers: [[Any]] = []  // paths: String keys and Int indices
        func collect(_ node: Any, _ path: [Any]) {
            if let object = node as? [String: Any] {
                containers.append(path)
                for (key, value) in object { collect(value, path + [key]) }
            } else if let array = node as? [Any] {
                containers.append(path)
                for (index, value) in array.enumerated() { collect(value, path + [index]) }
            }
        }
        collect(tree, [])
        guard !containers.isEmpty else { return json }
        let path = pick(containers)
        let operation = below(6)
        func change(_ node: Any, _ rest: ArraySlice<Any>, _ mutator: inout Self) -> Any {
            if let key = rest.first as? String, var object = node as? [String: Any], let child = object[key] {
                object[key] = change(child, rest.dropFirst(), &mutator)
                return object
            }
            if let index = rest.first as? Int, var array = node as? [Any], array.indices.contains(index) {
                array[index] = change(array[index], rest.dropFirst(), &mutator)
                return array
            }
            if var object = node as? [String: Any], !object.isEmpty {
                let key = mutator.pick(Array(object.keys))
                if operation < 3 { object[key] = nil } else { object[key + (mutator.chance(50) ? "" : "X")] = mutator.pick(["1", 1, -1, NSNull(), [Any](), [String: Any]()] as [Any]) }
                return object
            }
            if var array = node as? [Any], !array.isEmpty {
                switch operation {
                case 0: array.reverse()
                case 1: array.shuffle(using: &mutator.random)
                case 2: array.append(array[mutator.below(array.count)])
                case 3: array.remove(at: mutator.below(array.count))
                case 4: array.swapAt(mutator.below(array.count), mutator.below(array.count))
                default: array.removeAll()
                }
                return array
            }
            return node
        }
        let changed = change(tree, path[...], &self)
        guard let data = try? JSONSerialization.data(withJSONObject: changed, options: [.sortedKeys]) else { return json }
        return Array(data)
    }

    // MARK: Binary structures, each re-checksummed

    /// A frame header field set to an interesting value, with a valid header
    /// CRC (and, for an unencrypted archive, sometimes the payload CRC and
    /// the manifest entry made to agree, so the lie reaches the decoder).
    mutating func mutateFrameHeader(_ bytes: [UInt8]) -> [UInt8] {
        guard let outline = try? ArchiveOutline(source: MemorySource(bytes)) else { return mutateBytes(bytes) }
        var offsets = [outline.trailer.manifestOffset]
        var manifest: Manifest?
        if !outline.header.isEncrypted, let reader = try? ArchiveReader(source: MemorySource(bytes), outline: outline, key: nil) {
            manifest = reader.manifest
            offsets += reader.manifest.streams.flatMap { $0.descriptor.chunks.map(\.offset) }
        }
        if outline.header.isEncrypted { offsets.append(64) }
        let start = Int(pick(offsets))
        guard start + 32 <= bytes.count else { return bytes }
        var result = bytes
        let field = pick([(0, 1), (1, 1), (2, 2), (4, 4), (8, 8), (16, 4), (20, 4), (24, 4)])
        let value: UInt64 = field.1 == 1 ? UInt64(pick([0, 1, 2, 3, 4, 255])) : UInt64(pick(Self.interesting32))
        withUnsafeBytes(of: value.littleEndian) { result.replaceSubrange(start + field.0..<start + field.0 + field.1, with: $0.prefix(field.1)) }
        Self.resealHeaderCRC(&result, start: start, length: 28)
        // Make the manifest agree with the new lengths and CRC.
        if var manifest, start != Int(outline.trailer.manifestOffset), chance(50) {
            let raw = result.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: start + 16, as: UInt32.self) }
            let stored = result.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: start + 20, as: UInt32.self) }
            let crc = result.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: start + 24, as: UInt32.self) }
            for t in manifest.tables.indices {
                for p in manifest.tables[t].parts.indices {
                    for c in manifest.tables[t].parts[p].chunks.indices where manifest.tables[t].parts[p].chunks[c].offset == UInt64(start) {
                        manifest.tables[t].parts[p].chunks[c] = Manifest.Chunk(offset: UInt64(start), rawLength: raw, storedLength: stored, crc32c: crc)
                    }
                }
            }
            return (try? Sample.replacingManifest(result, payload: manifest.encoded(), codec: .stored, rawLength: UInt32(manifest.encoded().count))) ?? result
        }
        return Self.resealBody(result, outline: outline)
    }

    mutating func mutateFileHeader(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count >= 64, let outline = try? ArchiveOutline(source: MemorySource(bytes)) else { return mutateBytes(bytes) }
        var result = bytes
        switch below(5) {
        case 0: result.replaceSubrange(8..<10, with: [UInt8(pick([0, 1, 2, 3, 4, 255])), 0])
        case 1: withUnsafeBytes(of: pick(Self.interesting32).littleEndian) { result.replaceSubrange(12..<16, with: $0) }
        case 2: withUnsafeBytes(of: pick(Self.interesting32 + [1 << 28, (1 << 28) + 1]).littleEndian) { result.replaceSubrange(16..<20, with: $0) }
        case 3: result[20] = UInt8(pick([0, 1, 2, 255]))
        default: result[10] = UInt8(pick([0, 32, 63, 65, 255]))
        }
        Self.resealHeaderCRC(&result, start: 0, length: 60)
        return Self.resealBody(result, outline: outline)
    }

    mutating func mutateTrailer(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count >= 96 else { return mutateBytes(bytes) }
        var result = bytes
        let start = bytes.count - 96
        let size = UInt64(bytes.count)
        let value = pick([0, 63, 64, 95, 96, 192, size - 96, size - 97, size, size + 1, UInt64(UInt32.max), UInt64.max - 95, UInt64.max])
        let field = below(2) * 8
        withUnsafeBytes(of: value.littleEndian) { result.replaceSubrange(start + field..<start + field + 8, with: $0) }
        Self.resealHeaderCRC(&result, start: start, length: 84)
        return result
    }

    /// Key envelope fields (kind, scrypt parameters, reserved), with a valid
    /// payload CRC. Costs that scrypt would run are kept cheap, so that a
    /// case takes milliseconds; the bound itself is asserted in
    /// EncryptionTests.scryptCostIsBounded.
    mutating func mutateKeyEnvelope(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count >= 192 + 96, let outline = try? ArchiveOutline(source: MemorySource(bytes)), outline.header.isEncrypted else {
            return mutateFrameHeader(bytes)
        }
        var result = bytes
        let envelope = 96
        switch below(5) {
        case 0: result[envelope] = UInt8(pick([0, 1, 2, 3, 255]))
        case 1: result[envelope + 1] = UInt8(pick([0, 1, 9, 10, 17, 20, 30, 64, 255]))
        case 2: withUnsafeBytes(of: pick([0, 1, 9, 16, 1 << 20, UInt32.max] as [UInt32]).littleEndian) { result.replaceSubrange(envelope + 4..<envelope + 8, with: $0) }
        case 3: withUnsafeBytes(of: pick([0, 1, 3, 16, 1 << 20, UInt32.max] as [UInt32]).littleEndian) { result.replaceSubrange(envelope + 8..<envelope + 12, with: $0) }
        default: result[envelope + 2] = 1
        }
        let crc = CRC32C.checksum(Array(result[envelope..<envelope + 96]))
        withUnsafeBytes(of: crc.littleEndian) { result.replaceSubrange(64 + 24..<64 + 28, with: $0) }
        Self.resealHeaderCRC(&result, start: 64, length: 28)
        return Self.resealBody(result, outline: outline)
    }

    mutating func mutateBytes(_ bytes: [UInt8]) -> [UInt8] {
        var result = bytes
        switch below(3) {
        case 0 where !result.isEmpty:
            for _ in 0..<1 + below(8) { result[below(result.count)] = UInt8.random(in: 0...255, using: &random) }
        case 1:
            result = Array(result.prefix(below(result.count + 1)))
        default:
            result.insert(contentsOf: Sample.noise(1 + below(64), seed: random.next()), at: below(result.count + 1))
        }
        return result
    }

    /// Writes the CRC-32C of `length` bytes from `start` right after them.
    static func resealHeaderCRC(_ bytes: inout [UInt8], start: Int, length: Int) {
        let crc = CRC32C.checksum(Array(bytes[start..<start + length]))
        withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange(start + length..<start + length + 4, with: $0) }
    }

    /// The trailer's body digests recomputed over the changed bytes.
    static func resealBody(_ bytes: [UInt8], outline: ArchiveOutline) -> [UInt8] {
        let end = Int(outline.trailer.manifestOffset + outline.trailer.manifestLength)
        guard end + 96 == bytes.count else { return bytes }
        let body = Array(bytes[0..<end])
        let trailer = Trailer(
            manifestOffset: outline.trailer.manifestOffset, manifestLength: outline.trailer.manifestLength, archiveID: outline.trailer.archiveID,
            bodyMD5: Digest.hash(.md5, body), bodySHA256: Digest.hash(.sha256, body))
        return body + trailer.encoded()
    }

    // MARK: Reading

    /// What reading a mutated archive ended in.
    enum Outcome {
        case read
        case rejected(ArchiveError)
        /// An error that is not an `ArchiveError`, or a broken invariant of
        /// a manifest that was accepted: a bug.
        case unexpected(String)
    }

    /// Everything a reader does with an archive: open it, verify it, read
    /// every stream, check the stored bytes without a key, and make the sums
    /// a consumer makes. Never traps (that is what is being tested).
    static func exercise(_ bytes: [UInt8], key: ArchiveKey?) -> Outcome {
        do {
            _ = try ArchiveVerifier.verifyStoredBytes(source: MemorySource(bytes))
            let reader = try ArchiveReader(source: MemorySource(bytes), key: key)
            let manifest = reader.manifest
            // What validation promises every consumer.
            guard let totals = manifest.computedTotals, totals == manifest.totals, totals.rows <= Manifest.maximumTotal,
                  totals.rawBytes <= Manifest.maximumTotal, totals.storedBytes <= Manifest.maximumTotal,
                  manifest.tables.allSatisfy({ Manifest.Table.sums(of: $0.parts) == $0.recordedSums })
            else { return .unexpected("an accepted manifest's totals are not its sums") }
            _ = try ArchiveVerifier(reader: reader).verify()
            let decoder = reader.makeDecoder()
            for named in manifest.streams {
                do {
                    try reader.readStream(named.descriptor, named: named.name, decoder: decoder, checking: .streamDigests) { _ in }
                } catch is ArchiveError {}
            }
            do {
                try reader.readLargeObjects(decoder: decoder) { _ in }
            } catch is ArchiveError {}
            return .read
        } catch let error as ArchiveError {
            return .rejected(error)
        } catch {
            return .unexpected("\(type(of: error)): \(error)")
        }
    }
}

/// Choices drawn from a byte string (the fuzzer's input), then from a
/// generator seeded with it: libFuzzer's coverage-guided changes to the
/// input steer the structured mutations. (Not zeros once the input is used
/// up: `Int.random(in:)` rejects a zero word for most ranges and would ask
/// again forever.)
struct InputDrivenGenerator: RandomNumberGenerator {
    let input: [UInt8]
    var position = 0
    var rest: SeededGenerator

    init(_ input: [UInt8]) {
        self.input = input
        rest = SeededGenerator(state: UInt64(truncatingIfNeeded: CRC32C.checksum(input)) | UInt64(input.count) << 32)
    }

    mutating func next() -> UInt64 {
        guard position + 8 <= input.count else { return rest.next() }
        defer { position += 8 }
        return input[position..<position + 8].reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// A seeded generator (64-bit LCG), for repeatable runs.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state ^ (state >> 29)
    }
}
