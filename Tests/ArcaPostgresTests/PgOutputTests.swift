import ArcaPostgres
import Foundation
import Testing

/// pgoutput messages as a change segment holds them are read again at
/// restore: every message decodes as written, and any damage to one is a
/// `Malformed` error, never a trap or an allocation the bytes did not pay for.
@Suite struct PgOutputTests {
    static func be<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
    static func string(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }

    static let relation: [UInt8] = [UInt8(ascii: "R")] + be(UInt32(16_384)) + string("public") + string("patient") + [UInt8(ascii: "d")]
        + be(UInt16(2)) + [1] + string("id") + be(UInt32(20)) + be(Int32(-1)) + [0] + string("note") + be(UInt32(25)) + be(Int32(-1))
    static let update: [UInt8] = [UInt8(ascii: "U")] + be(UInt32(16_384)) + [UInt8(ascii: "K")] + be(UInt16(2))
        + [UInt8(ascii: "t")] + be(UInt32(1)) + Array("7".utf8) + [UInt8(ascii: "n")]
        + [UInt8(ascii: "N")] + be(UInt16(2)) + [UInt8(ascii: "t")] + be(UInt32(1)) + Array("8".utf8) + [UInt8(ascii: "u")]
    static let samples: [[UInt8]] = [
        [UInt8(ascii: "B")] + be(UInt64(0x16_B374_D848)) + be(Int64(1)) + be(UInt32(42)),
        relation,
        update,
        [UInt8(ascii: "T")] + be(UInt32(2)) + [3] + be(UInt32(1)) + be(UInt32(2)),
        [UInt8(ascii: "M"), 1] + be(UInt64(5)) + string("arca.ddl") + be(UInt32(3)) + Array("abc".utf8),
        [UInt8(ascii: "C"), 0] + be(UInt64(10)) + be(UInt64(20)) + be(Int64(3)),
    ]

    static func decode(_ bytes: [UInt8]) throws -> PgOutputMessage { try bytes.withUnsafeBytes { try PgOutputMessage.decode($0) } }

    @Test func messagesDecodeAsWritten() throws {
        #expect(try Self.decode(Self.samples[0]) == .begin(finalLSN: 0x16_B374_D848, commitTime: 1, xid: 42))
        guard case .relation(let relation) = try Self.decode(Self.relation) else { Issue.record("not a relation"); return }
        #expect(relation.schema == "public" && relation.name == "patient" && relation.columns.map(\.name) == ["id", "note"])
        #expect(relation.columns.map(\.isKey) == [true, false])
        #expect(try Self.decode(Self.update) == .update(
            relation: 16_384, old: [.text(Array("7".utf8)), .null], oldIsKey: true, new: [.text(Array("8".utf8)), .unchanged]))
        #expect(try Self.decode(Self.samples[3]) == .truncate(relations: [1, 2], cascade: true, restartIdentity: true))
        #expect(try Self.decode(Self.samples[5]) == .commit(commitLSN: 10, endLSN: 20, commitTime: 3))
    }

    /// Every truncation, every flipped byte, and lengths claiming more than
    /// the message holds: an error or a message, never a crash.
    @Test func damagedMessagesAreRefused() throws {
        for sample in Self.samples {
            for length in 0..<sample.count {
                #expect(throws: PgOutputMessage.Malformed.self) { try Self.decode(Array(sample[0..<length])) }
            }
            #expect(throws: PgOutputMessage.Malformed.self) { try Self.decode(sample + [0]) }
            for index in sample.indices {
                for value: UInt8 in [0, 0x7F, 0xFF] {
                    var damaged = sample
                    damaged[index] = value
                    _ = try? Self.decode(damaged)
                }
            }
        }
        // A text value and a truncate claiming 4 GiB of content.
        let huge = [UInt8(ascii: "I")] + Self.be(UInt32(1)) + [UInt8(ascii: "N")] + Self.be(UInt16(1)) + [UInt8(ascii: "t")] + Self.be(UInt32.max)
        #expect(throws: PgOutputMessage.Malformed.self) { try Self.decode(huge) }
        let many = [UInt8(ascii: "T")] + Self.be(UInt32.max) + [0]
        #expect(throws: PgOutputMessage.Malformed.self) { try Self.decode(many) }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let noise = (0..<Int.random(in: 1...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try? Self.decode([Array("RUIDTMBC".utf8).randomElement()!] + noise)
        }
    }

    @Test func lsnsReadAndPrintAsPostgreSQLDoes() {
        #expect(LSN("16/B374D848")?.value == 0x16_B374_D848)
        #expect(LSN(0x16_B374_D848).description == "16/B374D848")
        for bad in ["", "16", "16/", "/1", "G/1", "123456789/1", "1/2/3"] { #expect(LSN(bad) == nil, "\(bad)") }
    }
}
