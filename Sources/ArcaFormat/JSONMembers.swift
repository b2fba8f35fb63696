/// The members of a JSON document's top-level object and the elements of an
/// array, found by their byte ranges without decoding them.
///
/// `JSONDecoder` indexes a whole document before decoding any of it, about
/// two and a half times the size of its text (13 MiB for the 5 MiB manifest
/// of 10,000 tables). Splitting the manifest first lets its long arrays be
/// decoded an element at a time. This scanner checks only the structure
/// (strings, brackets, commas, colons); every byte it hands on is then
/// decoded, and so checked, by `JSONDecoder`. It never recurses, so no
/// nesting depth exhausts the stack.
struct JSONMembers {
    struct Malformed: Error {}

    let bytes: UnsafeRawBufferPointer

    /// The top-level object's members in document order: the range of each
    /// key (quotes included) and of its value. A key written with an escape
    /// (`"t\u0061bles"`) is refused: its bytes would name another key than
    /// the one `JSONDecoder` reads.
    func objectMembers() throws(Malformed) -> [(key: Range<Int>, value: Range<Int>)] {
        var position = skipSpace(0)
        try expect(UInt8(ascii: "{"), at: &position)
        var members: [(key: Range<Int>, value: Range<Int>)] = []
        position = skipSpace(position)
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
            position += 1
        } else {
            while true {
                position = skipSpace(position)
                let key = try string(at: &position)
                guard !bytes[key].contains(UInt8(ascii: "\\")) else { throw Malformed() }
                position = skipSpace(position)
                try expect(UInt8(ascii: ":"), at: &position)
                position = skipSpace(position)
                let value = try skipValue(at: &position)
                members.append((key, value))
                position = skipSpace(position)
                guard position < bytes.count else { throw Malformed() }
                position += 1
                if bytes[position - 1] == UInt8(ascii: "}") { break }
                guard bytes[position - 1] == UInt8(ascii: ",") else { throw Malformed() }
            }
        }
        guard skipSpace(position) == bytes.count else { throw Malformed() }
        return members
    }

    /// The ranges of the elements of the array that `range` holds exactly.
    func arrayElements(_ range: Range<Int>) throws(Malformed) -> [Range<Int>] {
        var position = range.lowerBound
        try expect(UInt8(ascii: "["), at: &position)
        var elements: [Range<Int>] = []
        position = skipSpace(position)
        if position < range.upperBound, bytes[position] == UInt8(ascii: "]") {
            position += 1
        } else {
            while true {
                position = skipSpace(position)
                elements.append(try skipValue(at: &position))
                position = skipSpace(position)
                guard position < range.upperBound else { throw Malformed() }
                position += 1
                if bytes[position - 1] == UInt8(ascii: "]") { break }
                guard bytes[position - 1] == UInt8(ascii: ",") else { throw Malformed() }
            }
        }
        guard position == range.upperBound else { throw Malformed() }
        return elements
    }

    private func skipSpace(_ start: Int) -> Int {
        var position = start
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        return position
    }

    private func expect(_ byte: UInt8, at position: inout Int) throws(Malformed) {
        guard position < bytes.count, bytes[position] == byte else { throw Malformed() }
        position += 1
    }

    /// A string, quotes included; escapes are skipped, not interpreted.
    private func string(at position: inout Int) throws(Malformed) -> Range<Int> {
        let start = position
        try expect(UInt8(ascii: "\""), at: &position)
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: "\\"): position += 2
            case UInt8(ascii: "\""):
                position += 1
                return start..<position
            default: position += 1
            }
        }
        throw Malformed()
    }

    /// A value of any kind: a string, an object or array (brackets counted,
    /// strings inside skipped whole), or a scalar up to the next delimiter.
    private func skipValue(at position: inout Int) throws(Malformed) -> Range<Int> {
        let start = position
        guard position < bytes.count else { throw Malformed() }
        switch bytes[position] {
        case UInt8(ascii: "\""):
            return try string(at: &position)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var closers: [UInt8] = []
            while position < bytes.count {
                switch bytes[position] {
                case UInt8(ascii: "\""):
                    _ = try string(at: &position)
                    continue
                case UInt8(ascii: "{"): closers.append(UInt8(ascii: "}"))
                case UInt8(ascii: "["): closers.append(UInt8(ascii: "]"))
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    guard closers.popLast() == bytes[position] else { throw Malformed() }
                    if closers.isEmpty {
                        position += 1
                        return start..<position
                    }
                default: break
                }
                position += 1
            }
            throw Malformed()
        default:
            while position < bytes.count, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) {
                position += 1
            }
            guard position > start else { throw Malformed() }
            return start..<position
        }
    }
}
