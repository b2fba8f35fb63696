import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// A parsed XML element: enough structure for S3's small response documents.
/// Namespaces are ignored (S3 uses one default namespace); entities are decoded by the parser.
struct XMLElementNode: Sendable {
    var name: String
    var text: String = ""
    var children: [XMLElementNode] = []

    func child(_ name: String) -> XMLElementNode? { children.first { $0.name == name } }
    func children(_ name: String) -> [XMLElementNode] { children.filter { $0.name == name } }
    /// The text of the first child element `name`.
    func value(_ name: String) -> String? { child(name)?.text }
}

enum S3XML {
    struct ParseError: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ bytes: some Collection<UInt8>) throws -> XMLElementNode {
        let builder = TreeBuilder()
        let parser = XMLParser(data: Data(bytes))
        parser.shouldProcessNamespaces = false
        parser.shouldResolveExternalEntities = false  // no network or file access while parsing
        parser.delegate = builder
        guard parser.parse(), let root = builder.root else {
            let reason = parser.parserError.map { "\($0.localizedDescription)" } ?? "empty document"
            throw ParseError(description: "malformed XML (\(reason))")
        }
        return root
    }

    /// Escapes text for an element body or attribute value.
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&apos;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    /// Element names without a namespace prefix ("s3:Key" → "Key").
    fileprivate static func localName(_ name: String) -> String {
        name.split(separator: ":").last.map(String.init) ?? name
    }

    /// Builds the tree with a stack of open elements; text is only kept for leaves'
    /// content (S3 never mixes text and child elements).
    private final class TreeBuilder: NSObject, XMLParserDelegate {
        var root: XMLElementNode?
        private var stack: [XMLElementNode] = []

        func parser(
            _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
            qualifiedName: String?, attributes: [String: String] = [:]
        ) {
            stack.append(XMLElementNode(name: S3XML.localName(elementName)))
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if !stack.isEmpty { stack[stack.count - 1].text += string }
        }

        func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) {
            if !stack.isEmpty { stack[stack.count - 1].text += String(decoding: CDATABlock, as: UTF8.self) }
        }

        func parser(
            _ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?
        ) {
            guard var element = stack.popLast() else { return }
            if !element.children.isEmpty { element.text = "" }  // whitespace between child elements
            if stack.isEmpty {
                root = element
            } else {
                stack[stack.count - 1].children.append(element)
            }
        }
    }
}

/// The parts of an S3 `<Error>` document that help people.
struct S3ErrorDocument {
    var code: String?
    var message: String?
    var requestID: String?

    /// nil unless `body` is an `<Error>` document.
    init?(body: some Collection<UInt8>) {
        guard !body.isEmpty, let root = try? S3XML.parse(body), root.name == "Error" else { return nil }
        code = root.value("Code")
        message = root.value("Message")
        requestID = root.value("RequestId")
    }
}

/// Dates as S3 writes them: ISO 8601 in XML ("2009-10-12T17:50:30.000Z") and
/// RFC 1123 in headers ("Wed, 12 Oct 2009 17:50:30 GMT"). Parsed by hand: small,
/// locale-free and without non-Sendable formatters.
enum S3Date {
    static func parseISO8601(_ text: String) -> Date? {
        // yyyy-MM-ddTHH:mm:ss[.fff]Z
        let fields = text.split(whereSeparator: { "-T:Z".contains($0) })
        guard fields.count == 6, text.hasSuffix("Z"),
            let year = Int(fields[0]), let month = Int(fields[1]), let day = Int(fields[2]),
            let hour = Int(fields[3]), let minute = Int(fields[4]), let seconds = Double(fields[5])
        else { return nil }
        return date(year: year, month: month, day: day, hour: hour, minute: minute, seconds: seconds)
    }

    static func parseRFC1123(_ text: String) -> Date? {
        // Wed, 12 Oct 2009 17:50:30 GMT
        let fields = text.split(separator: " ")
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard fields.count == 6, fields[5] == "GMT", let day = Int(fields[1]),
            let monthIndex = months.firstIndex(of: String(fields[2])), let year = Int(fields[3])
        else { return nil }
        let time = fields[4].split(separator: ":").compactMap { Int($0) }
        guard time.count == 3 else { return nil }
        return date(year: year, month: monthIndex + 1, day: day, hour: time[0], minute: time[1], seconds: Double(time[2]))
    }

    private static func date(year: Int, month: Int, day: Int, hour: Int, minute: Int, seconds: Double) -> Date? {
        // The year is bounded first, so the day arithmetic below cannot overflow.
        guard (1...9999).contains(year), (1...12).contains(month), (1...31).contains(day), (0...23).contains(hour), (0...59).contains(minute),
            (0..<61).contains(seconds)
        else { return nil }
        // Days since 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's days_from_civil).
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return Date(timeIntervalSince1970: Double(days * 86_400 + hour * 3_600 + minute * 60) + seconds)
    }
}
