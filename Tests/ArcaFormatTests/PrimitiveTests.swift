@testable import ArcaFormat
import Testing

@Suite struct CRC32CTests {
    @Test func checkValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test func knownVectors() {
        // RFC 3720 (iSCSI), appendix B.4.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map(UInt8.init)) == 0x46DD_794E)
    }

    @Test(arguments: [1, 7, 8, 9, 63, 1000])
    func incrementalEqualsOneShot(split: Int) {
        let data = Sample.noise(5000)
        var crc = CRC32C()
        var index = 0
        while index < data.count {
            let end = min(data.count, index + split)
            data[index..<end].withUnsafeBytes { crc.update($0) }
            index = end
        }
        #expect(crc.value == CRC32C.checksum(data))
    }
}

@Suite struct DigestTests {
    @Test func knownVectors() {
        #expect(Hex.encode(Digest.hash(.md5, [])) == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(Hex.encode(Digest.hash(.md5, Array("abc".utf8))) == "900150983cd24fb0d6963f7d28e17f72")
        #expect(Hex.encode(Digest.hash(.sha256, Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func finishDoesNotEndTheDigest() {
        let digest = Digest(.md5)
        digest.update(Array("ab".utf8))
        #expect(Hex.encode(digest.finish()) == Hex.encode(Digest.hash(.md5, Array("ab".utf8))))
        digest.update(Array("c".utf8))
        #expect(Hex.encode(digest.finish()) == "900150983cd24fb0d6963f7d28e17f72")
    }

    @Test func hexRoundTrip() {
        let bytes: [UInt8] = [0, 1, 0xAB, 0xFF]
        #expect(Hex.encode(bytes) == "0001abff")
        #expect(Hex.decode("0001ABff") == bytes)
        #expect(Hex.decode("0g") == nil)
        #expect(Hex.decode("abc") == nil)
    }
}

@Suite struct BackupIDTests {
    /// A generator that always gives the same numbers, for exact ids.
    struct FixedGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state
        }
    }

    @Test func formatsUTCTimeMillisecondsAndRandomPart() throws {
        let date = Date(timeIntervalSince1970: 1_733_061_930.123)  // 2024-12-01T14:05:30.123Z
        var generator = FixedGenerator(state: 1)
        let id = BackupID(date: date, using: &generator)
        #expect(id.rawValue.hasPrefix("backup_20241201_140530_123"))
        #expect(id.rawValue.count == 31)
        #expect(BackupID(id.rawValue) == id, "a new id parses")
        #expect(!id.isLegacy)
        let parsed = try #require(id.date)
        #expect(abs(parsed.timeIntervalSince1970 - 1_733_061_930.123) < 0.0005)
        let random = id.rawValue.suffix(5)
        #expect(random.allSatisfy { "abcdefghijklmnopqrstuvwxyz234567".contains($0) })
    }

    /// Two hosts starting in the same millisecond, the case the random part is for.
    @Test func idsOfOneInstantDiffer() {
        let date = Date(timeIntervalSince1970: 1_733_061_930)
        let ids = Set((0..<1000).map { _ in BackupID(date: date) })
        // 1,000 draws of 2^25: a repeat has a chance of about 1.5 %; two are all but impossible.
        #expect(ids.count >= 998)
        #expect(ids.allSatisfy { $0.rawValue.hasPrefix("backup_20241201_140530_000") })
    }

    @Test(arguments: [
        "backup_20241201_140530", "backup_20241201_140530_2", "backup_20241201_140530_123456", "backup_20241201_140530_123k7qxa",
        "backup_20241201_140530_00000000",
    ])
    func acceptsIDs(_ text: String) {
        #expect(BackupID(text)?.rawValue == text)
    }

    @Test(arguments: [
        "", "backup_", "backup_2024120_140530", "backup_20241201-140530", "backup_20241201_140530_", "backup_20241201_140530_x",
        "../../etc/passwd", "%2e%2e", "backup_20241201_140530\u{0}", "backup_20241201_140530/..", "Backup_20241201_140530",
        "backup_20241201_140530_1234567", "backup_2024１201_140530", "backup_20241201_140530_123K7QXA", "backup_20241201_140530_123k7qx",
        "backup_20241201_140530_123k7qxab", "backup_20241201_140530_123k7qx.", "backup_20241201_140530_123k7q/a",
    ])
    func rejectsEverythingElse(_ text: String) {
        #expect(BackupID(text) == nil)
    }

    @Test func ordersChronologically() {
        let ids = [
            "backup_20241201_140530_10", "backup_20241201_140530", "backup_20241202_000000", "backup_20241201_140530_2",
            "backup_20241201_140530_999aaaaa", "backup_20241201_140530_001zzzzz", "backup_20241201_140529_999aaaaa",
        ].compactMap(BackupID.init)
        #expect(ids.sorted().map(\.rawValue) == [
            "backup_20241201_140529_999aaaaa", "backup_20241201_140530", "backup_20241201_140530_2", "backup_20241201_140530_10",
            "backup_20241201_140530_001zzzzz", "backup_20241201_140530_999aaaaa", "backup_20241202_000000",
        ])
    }
}

import Foundation
