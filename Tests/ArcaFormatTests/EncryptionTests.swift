@testable import ArcaFormat
import Foundation
import Testing

/// Encrypted archives (FORMAT.md, "Encryption"): round trip, no plaintext,
/// and each way an archive can be opened with the wrong key or tampered
/// with, rejected with its own error.
@Suite struct EncryptionTests {
    static let key = ArchiveKey.key(SecretBytes(Array(0..<32)))
    static let otherKey = ArchiveKey.key(SecretBytes(Array(100..<132)))
    /// A cheap cost keeps the tests fast; `passphraseCostIsRecorded` checks it is honoured.
    static let passphrase = try! ArchiveKey.passphrase("correct horse battery staple", cost: ScryptCost(log2N: 10))

    static let marker = "Patient-7f3a-Confidential"
    static func rows(_ count: Int = 300) -> [UInt8] {
        Array((0..<count).map { "\($0)\t\(marker)-\($0)\tallergic to penicillin\n" }.joined().utf8)
    }

    func error(_ body: () throws -> Void) -> ArchiveError? { Sample.archiveError(body) }

    /// Rewrites the CRC of the frame at `offset` so that only authentication
    /// can notice a change to its payload: what an attacker would do.
    func fixPayloadCRC(_ bytes: inout [UInt8], frameAt offset: UInt64) throws {
        let archive = try FileHeader.decode(Array(bytes[0..<64]))
        let start = Int(offset)
        let frame = try FrameHeader.decode(Array(bytes[start..<start + 32]), at: offset, in: archive)
        let payload = Array(bytes[start + 32..<start + 32 + Int(frame.storedLength)])
        try Sample.rewriteFrameHeader(&bytes, at: offset) { $0.payloadCRC = CRC32C.checksum(payload) }
    }

    // MARK: Primitives

    /// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13 and 14 (AES-256, zero key and IV).
    @Test func aesGCMKnownAnswers() throws {
        let aes = AESGCM(key: [UInt8](repeating: 0, count: 32))
        let nonce = [UInt8](repeating: 0, count: 12)
        var output = [UInt8](repeating: 0, count: 32)
        let empty = output.withUnsafeMutableBytes { out in [UInt8]().withUnsafeBytes { aes.seal($0, nonce: nonce, associatedData: [], into: out) } }
        #expect(Hex.encode(Array(output[0..<empty])) == "530f8afbc74536b9a963b4f1c4cb738b")
        let sealed = output.withUnsafeMutableBytes { out in [UInt8](repeating: 0, count: 16).withUnsafeBytes { aes.seal($0, nonce: nonce, associatedData: [], into: out) } }
        #expect(Hex.encode(Array(output[0..<sealed])) == "cea7403d4d606b6e074ec5d3baf39d18" + "d0d1c8a799996bf0265b98b5d48ab919")

        var opened = [UInt8](repeating: 0xFF, count: 16)
        let ok = Array(output[0..<sealed]).withUnsafeBytes { sealedBytes in
            opened.withUnsafeMutableBytes { aes.open(sealedBytes, nonce: nonce, associatedData: [], into: $0) }
        }
        #expect(ok && opened == [UInt8](repeating: 0, count: 16))
        var tampered = Array(output[0..<sealed])
        tampered[3] ^= 1
        #expect(!tampered.withUnsafeBytes { sealedBytes in opened.withUnsafeMutableBytes { aes.open(sealedBytes, nonce: nonce, associatedData: [], into: $0) } })
        #expect(!Array(output[0..<sealed]).withUnsafeBytes { sealedBytes in
            opened.withUnsafeMutableBytes { aes.open(sealedBytes, nonce: nonce, associatedData: [1], into: $0) }
        })
    }

    /// RFC 7914, section 12, third vector ("pleaseletmein", "SodiumChloride",
    /// N=16384, r=8, p=1); the second one (p=16) is above what a reader accepts.
    @Test func scryptKnownAnswer() throws {
        let derived = try Scrypt.deriveKey(password: Array("pleaseletmein".utf8), salt: Array("SodiumChloride".utf8), cost: ScryptCost(log2N: 14, r: 8, p: 1), length: 64)
        #expect(Hex.encode(derived) == "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887")
    }

    /// What a forged key envelope can make a reader spend, by arithmetic:
    /// every accepted cost needs at most 64 MiB (128 · r · N) and 2^20 block
    /// mixes (N · r · p, ~0.5 s here: SECURITY.md), and the rest is refused
    /// before scrypt runs, by the envelope's decoder and by scrypt itself.
    @Test func scryptCostIsBounded() throws {
        var accepted = 0
        for log2N in UInt8(0)...UInt8(40) {
            for r in UInt32(0)...UInt32(20) {
                for p in UInt32(0)...UInt32(20) {
                    let cost = ScryptCost(log2N: log2N, r: r, p: p)
                    guard cost.isAcceptable else { continue }
                    accepted += 1
                    #expect(128 * UInt64(r) * (UInt64(1) << log2N) <= 64 << 20, "\(cost)")
                    #expect((UInt64(1) << log2N) * UInt64(r) * UInt64(p) <= 1 << 20, "\(cost)")
                }
            }
        }
        #expect(accepted == 7 * 8 * 2)
        #expect(ScryptCost.maximum.memory == 64 << 20 && ScryptCost.maximum.work == 1 << 20)
        #expect(ScryptCost(log2N: 200, r: .max, p: .max).memory == .max, "a cost read from a file must not trap")

        for cost in [ScryptCost(log2N: 10, r: 8, p: 16), ScryptCost(log2N: 17), ScryptCost(log2N: 9), ScryptCost(log2N: 16, r: 9), ScryptCost(log2N: 16, p: 3), ScryptCost(log2N: 12, r: 0)] {
            #expect(throws: Scrypt.Failure.unacceptableCost(cost)) { try Scrypt.deriveKey(password: [1], salt: [2], cost: cost) }
            #expect(throws: ArchiveKey.KeyError.unacceptableCost(cost)) { try ArchiveKey.passphrase("long enough passphrase", cost: cost) }
        }
    }

    @Test func keyText() throws {
        let key = ArchiveKey.generate()
        let text = try #require(key.base64)
        let parsed = try ArchiveKey(base64: text + "\n")
        #expect(parsed.keyID == key.keyID)
        #expect(throws: ArchiveKey.KeyError.malformedKey) { try ArchiveKey(base64: "c2hvcnQ=") }
        #expect(throws: ArchiveKey.KeyError.malformedKey) { try ArchiveKey(base64: "not base64 at all!") }
        #expect(throws: ArchiveKey.KeyError.passphraseTooShort) { try ArchiveKey.passphrase("short") }
        #expect(!"\(key)".contains(text) && !"\(SecretBytes(Array(0..<32)))".contains("0, 1, 2"))
    }

    // MARK: Round trip

    @Test(arguments: [EncryptionTests.key, EncryptionTests.passphrase])
    func roundTripWithoutPlaintext(key: ArchiveKey) throws {
        let rows = Self.rows()
        let (bytes, manifest) = try Sample.archive(
            [Sample.Stream(name: "patients", bytes: rows), Sample.Stream(name: "noise", bytes: Sample.noise(9000))], key: key)
        let reader = try Sample.read(bytes, key: key)
        #expect(reader.header.isEncrypted)
        #expect(reader.manifest == manifest)
        #expect(try Sample.tableBytes(reader, reader.manifest.tables[0]) == rows)
        #expect(try Sample.tableBytes(reader, reader.manifest.tables[1]) == Sample.noise(9000))
        let report = try Sample.verify(bytes, key: key)
        #expect(report.isIntact, "\(report.problems)")

        // Neither rows, table names nor manifest fields are visible.
        let text = String(decoding: bytes, as: UTF8.self)
        for secret in [Self.marker, "penicillin", "patients", "medical", "backup_2024"] {
            #expect(!text.contains(secret), "\(secret) is readable in the encrypted archive")
        }
        // Without the key, the stored bytes can still be checked.
        let stored = try ArchiveVerifier.verifyStoredBytes(source: MemorySource(bytes))
        #expect(stored.isIntact && stored.fileMD5 == Hex.encode(Digest.hash(.md5, bytes)))
    }

    @Test func passphraseCostIsRecorded() throws {
        let (bytes, _) = try Sample.archive([Sample.Stream(name: "t", bytes: Self.rows(10))], key: Self.passphrase)
        let envelope = try #require(try ArchiveOutline(source: MemorySource(bytes)).keyEnvelope)
        #expect(envelope.kind == .passphrase && envelope.cost == ScryptCost(log2N: 10, r: 8, p: 1))
        #expect(envelope.salt.contains { $0 != 0 })
        // The reader uses the stored cost, whatever the caller's default.
        _ = try Sample.read(bytes, key: try ArchiveKey.passphrase("correct horse battery staple"))

        // A forged cost beyond the limits is refused before scrypt runs:
        // log2 N (byte 1), r (bytes 4-7), p (bytes 8-11).
        let offset = 64 + 32
        for (field, value) in [(1, 30), (1, 17), (1, 9), (4, 9), (8, 3), (8, 0)] {
            var forged = bytes
            forged.replaceSubrange(offset + field..<offset + field + (field == 1 ? 1 : 4), with: field == 1 ? [UInt8(value)] : [UInt8(value), 0, 0, 0])
            let payload = Array(forged[offset..<offset + KeyEnvelope.length])
            try Sample.rewriteFrameHeader(&forged, at: 64) { $0.payloadCRC = CRC32C.checksum(payload) }
            guard case .limitExceeded(.keyEnvelope, _, _, let limit)? = error({ _ = try Sample.read(forged, key: Self.passphrase) }) else {
                Issue.record("a forged scrypt cost (byte \(field) = \(value)) was accepted")
                continue
            }
            #expect(limit == 1 << 20)
        }
    }

    /// Archives that share a salt cost one derivation for all of them; with
    /// a salt each (archives written before repositories shared theirs),
    /// one each. Counted on the reader's passphrase, which starts with no
    /// derived secret, as in a new process.
    @Test func oneDerivationPerSalt() throws {
        let text = "correct horse battery staple"
        guard case .passphrase(let writing) = Self.passphrase else { Issue.record("not a passphrase"); return }
        let shared = ArchiveKey.passphrase(writing.sharingSalt(Array(repeating: 7, count: 16), cost: ScryptCost(log2N: 10)))
        let sharing = try (0..<5).map { _ in try Sample.archive([Sample.Stream(name: "t", bytes: Self.rows(5))], key: shared).bytes }
        let separate = try (0..<3).map { _ in try Sample.archive([Sample.Stream(name: "t", bytes: Self.rows(5))], key: Self.passphrase).bytes }

        let reader = try ArchiveKey.passphrase(text)
        guard case .passphrase(let counted) = reader else { Issue.record("not a passphrase"); return }
        for bytes in sharing { _ = try Sample.read(bytes, key: reader) }
        #expect(counted.derivationCount == 1)
        for bytes in sharing { _ = try Sample.read(bytes, key: reader) }
        #expect(counted.derivationCount == 1)
        for bytes in separate { _ = try Sample.read(bytes, key: reader) }
        #expect(counted.derivationCount == 4)
        // A wrong passphrase is still refused (its own secret, not the cache's).
        let wrong = try ArchiveKey.passphrase("incorrect horse battery staple", cost: ScryptCost(log2N: 10))
        guard case .wrongKey? = error({ _ = try Sample.read(sharing[0], key: wrong) }) else {
            Issue.record("a wrong passphrase was not refused")
            return
        }
    }

    @Test func unencryptedArchivesNeedNoKey() throws {
        let (bytes, _) = try Sample.archive([Sample.Stream(name: "t", bytes: Self.rows(10))])
        let reader = try Sample.read(bytes, key: Self.key)
        #expect(!reader.header.isEncrypted && reader.dataKey == nil)
    }

    // MARK: Keys

    @Test func missingAndWrongKeys() throws {
        let (bytes, _) = try Sample.archive([Sample.Stream(name: "t", bytes: Self.rows(10))], key: Self.key)
        guard case .keyRequired(let keyID, passphrase: false)? = error({ _ = try Sample.read(bytes) }) else {
            Issue.record("no keyRequired")
            return
        }
        #expect(keyID == Self.key.keyID)
        guard case .wrongKey(let detail)? = error({ _ = try Sample.read(bytes, key: Self.otherKey) }) else {
            Issue.record("no wrongKey")
            return
        }
        let ids = (try #require(Self.key.keyID), try #require(Self.otherKey.keyID))
        #expect(detail.contains(ids.0) && detail.contains(ids.1))
        guard case .wrongKey? = error({ _ = try Sample.read(bytes, key: Self.passphrase) }) else {
            Issue.record("a passphrase opened a key-encrypted archive")
            return
        }

        let (locked, _) = try Sample.archive([Sample.Stream(name: "t", bytes: Self.rows(10))], key: Self.passphrase)
        guard case .keyRequired(_, passphrase: true)? = error({ _ = try Sample.read(locked) }) else {
            Issue.record("no keyRequired for a passphrase")
            return
        }
        let wrong = try ArchiveKey.passphrase("incorrect horse battery staple", cost: ScryptCost(log2N: 10))
        guard case .wrongKey? = error({ _ = try Sample.read(locked, key: wrong) }) else {
            Issue.record("a wrong passphrase was not refused")
            return
        }
    }

    // MARK: Tampering

    @Test func everySingleBitFlipIsDetected() throws {
        let (bytes, _) = try Sample.archive([Sample.Stream(name: "t", bytes: Self.rows(20))], key: Self.key)
        for index in bytes.indices {
            let damaged = bytes.flipping(bit: index % 8, at: index)
            let detected: Bool
            do {
                detected = !(try Sample.verify(damaged, key: Self.key).isIntact)
            } catch is ArchiveError {
                detected = true
            }
            #expect(detected, "a flipped bit at offset \(index) went unnoticed")
        }
    }

    /// A flipped bit in a sealed payload: an authentication error naming
    /// the table and chunk.
    @Test func alteredChunkFailsAuthentication() throws {
        let (original, manifest) = try Sample.archive([Sample.Stream(name: "patients", bytes: Self.rows())], key: Self.key)
        var bytes = original
        let chunk = manifest.tables[0].parts[0].chunks[1]
        bytes[Int(chunk.offset) + 40] ^= 0x01
        let reader = try Sample.read(bytes, key: Self.key)
        #expect(error { _ = try Sample.tableBytes(reader, reader.manifest.tables[0]) }
            == .authenticationFailed(.chunk(stream: "table public.patients", sequence: 1, offset: chunk.offset)))
        #expect(try Sample.verify(bytes, key: Self.key).problems.contains(
            .authenticationFailed(.chunk(stream: "table public.patients", sequence: 1, offset: chunk.offset))))
    }

    /// Two chunks of equal length swapped, headers and CRCs made consistent
    /// with their new places: the nonce and associated data no longer match.
    @Test func swappedChunksFailAuthentication() throws {
        let noise = Sample.noise(4096 * 3)
        let (original, manifest) = try Sample.archive([Sample.Stream(name: "scans", bytes: noise)], key: Self.key)
        let chunks = manifest.tables[0].parts[0].chunks
        #expect(chunks[0].storedLength == chunks[1].storedLength)
        var bytes = original
        let length = Int(chunks[0].storedLength)
        let first = Int(chunks[0].offset) + 32, second = Int(chunks[1].offset) + 32
        let payload0 = Array(bytes[first..<first + length]), payload1 = Array(bytes[second..<second + length])
        bytes.replaceSubrange(first..<first + length, with: payload1)
        bytes.replaceSubrange(second..<second + length, with: payload0)
        try fixPayloadCRC(&bytes, frameAt: chunks[0].offset)
        try fixPayloadCRC(&bytes, frameAt: chunks[1].offset)
        // The manifest still lists the old CRCs; a forger cannot rewrite it, so
        // the index check fires first. With the manifest bypassed (decoding the
        // frame against its own header) authentication still refuses it.
        let reader = try Sample.read(bytes, key: Self.key)
        #expect(error { _ = try Sample.tableBytes(reader, reader.manifest.tables[0]) } != nil)
        let decoder = reader.makeDecoder()
        let header = try FrameHeader.decode(Array(bytes[Int(chunks[0].offset)..<first]), at: chunks[0].offset, in: reader.header)
        let result = error {
            _ = try Array(bytes[first..<first + length]).withUnsafeBytes {
                try decoder.unpack($0, frame: header, location: .frame(offset: chunks[0].offset))
            }
        }
        #expect(result == .authenticationFailed(.frame(offset: chunks[0].offset)))
    }

    /// The same rows under the same key in another archive: its chunk does not
    /// authenticate here (another data key, another archive id).
    @Test func chunkFromAnotherArchiveFailsAuthentication() throws {
        let rows = Self.rows()
        let (target, manifest) = try Sample.archive([Sample.Stream(name: "patients", bytes: rows)], key: Self.key)
        let (other, otherManifest) = try Sample.archive(
            [Sample.Stream(name: "patients", bytes: rows)], key: Self.key, archiveID: ArchiveID(bytes: Array(0x40..<0x50)))
        let chunk = manifest.tables[0].parts[0].chunks[0], foreign = otherManifest.tables[0].parts[0].chunks[0]
        #expect(chunk.storedLength == foreign.storedLength)
        var bytes = target
        let length = 32 + Int(chunk.storedLength)
        bytes.replaceSubrange(Int(chunk.offset)..<Int(chunk.offset) + length, with: other[Int(foreign.offset)..<Int(foreign.offset) + length])
        let reader = try Sample.read(bytes, key: Self.key)
        let decoder = reader.makeDecoder()
        let header = try FrameHeader.decode(Array(bytes[Int(chunk.offset)..<Int(chunk.offset) + 32]), at: chunk.offset, in: reader.header)
        let result = error {
            _ = try Array(bytes[Int(chunk.offset) + 32..<Int(chunk.offset) + length]).withUnsafeBytes {
                try decoder.unpack($0, frame: header, location: .frame(offset: chunk.offset))
            }
        }
        #expect(result == .authenticationFailed(.frame(offset: chunk.offset)))
    }

    @Test func alteredManifestFailsAuthentication() throws {
        var (bytes, _) = try Sample.archive([Sample.Stream(name: "t", bytes: Self.rows(50))], key: Self.key)
        let trailer = try ArchiveOutline(source: MemorySource(bytes)).trailer
        bytes[Int(trailer.manifestOffset) + 33] ^= 0x80
        #expect(error { _ = try Sample.read(bytes, key: Self.key) } == .authenticationFailed(.manifest))
    }

    /// The header is authenticated through the key envelope: a changed
    /// field with a valid header CRC is refused before any data is read.
    @Test func alteredHeaderFailsAuthentication() throws {
        var (bytes, _) = try Sample.archive([Sample.Stream(name: "t", bytes: Self.rows(50))], key: Self.key)
        var header = try FileHeader.decode(Array(bytes[0..<64]))
        header.compressionLevel = 19
        bytes.replaceSubrange(0..<64, with: header.encoded())
        #expect(error { _ = try Sample.read(bytes, key: Self.key) } == .authenticationFailed(.keyEnvelope))
    }

    @Test func truncationIsRejected() throws {
        let (bytes, _) = try Sample.archive([Sample.Stream(name: "t", bytes: Self.rows(100))], key: Self.key)
        for cut in stride(from: 1, to: bytes.count, by: 97) {
            #expect(error { _ = try Sample.read(Array(bytes.dropLast(cut)), key: Self.key) } != nil, "cut of \(cut) bytes accepted")
        }
    }
}
