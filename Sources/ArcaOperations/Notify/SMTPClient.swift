import ArcaFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A failed mail delivery. `isPermanent`: the relay said no for good (5xx),
/// so trying again would not help.
public struct SMTPError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public var isPermanent = false
}

/// A minimal SMTP client (RFC 5321) for one message at a time to a relay:
/// EHLO (HELO if refused), MAIL FROM, RCPT TO, DATA, QUIT, over a blocking
/// socket on the notifier's own thread, with a timeout on every read and
/// write. No TLS and no login: see `MailSettings`.
struct SMTPClient {
    var host: String
    var port: Int
    var timeoutSeconds: Double

    func send(from sender: String, to recipients: [String], message: String) throws(SMTPError) {
        let connection = try Connection(host: host, port: port, timeoutSeconds: timeoutSeconds)
        defer { connection.close() }
        try connection.expect(220, after: nil)
        let name = MailSettings.isPlainAddress("arca@" + NotificationEvent.hostName) ? NotificationEvent.hostName : "localhost"
        do {
            try connection.expect(250, after: "EHLO \(name)")
        } catch {
            try connection.expect(250, after: "HELO \(name)")
        }
        // The addresses were checked at start-up (MailSettings.isPlainAddress):
        // no CR, LF, space or angle bracket can end the command early.
        try connection.expect(250, after: "MAIL FROM:<\(sender)>")
        for recipient in recipients { try connection.expect(250...251, after: "RCPT TO:<\(recipient)>") }
        try connection.expect(354, after: "DATA")
        try connection.expect(250, after: Self.dataSection(message))
        try? connection.write("QUIT\r\n")
    }

    /// `message` with CRLF line ends, every line that starts with a dot
    /// doubled (RFC 5321 4.5.2, so no line of it ends the data early), and
    /// the terminating `.` line, without the final CRLF `expect` adds.
    static func dataSection(_ message: String) -> String {
        var lines = message.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            .split(separator: "\n", omittingEmptySubsequences: false)
        // A message that ends with a line end has no last, empty line.
        if lines.count > 1, lines.last?.isEmpty == true { lines.removeLast() }
        var text = ""
        for line in lines { text += (line.hasPrefix(".") ? "." : "") + line + "\r\n" }
        return text + "."
    }

    final class Connection {
        private let socket: Int32
        private var buffer: [UInt8] = []

        init(host: String, port: Int, timeoutSeconds: Double) throws(SMTPError) {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &list)
            guard status == 0, let first = list else {
                throw SMTPError(description: "cannot resolve the mail relay \(host): \(String(cString: gai_strerror(status)))")
            }
            defer { freeaddrinfo(list) }
            var timeout = timeval(tv_sec: Int(timeoutSeconds), tv_usec: Int((timeoutSeconds.truncatingRemainder(dividingBy: 1)) * 1_000_000))
            var lastError: Int32 = 0
            var entry: UnsafeMutablePointer<addrinfo>? = first
            while let address = entry {
                let candidate = Glibc.socket(address.pointee.ai_family, address.pointee.ai_socktype, address.pointee.ai_protocol)
                if candidate >= 0 {
                    // SO_SNDTIMEO bounds connect() too, on Linux.
                    setsockopt(candidate, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    setsockopt(candidate, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    if Glibc.connect(candidate, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 {
                        socket = candidate
                        return
                    }
                    lastError = errno
                    Glibc.close(candidate)
                }
                entry = address.pointee.ai_next
            }
            throw SMTPError(description: "cannot connect to the mail relay \(host):\(port): \(String(cString: strerror(lastError)))")
        }

        func close() { Glibc.close(socket) }

        func write(_ text: String) throws(SMTPError) {
            var bytes = Array(text.utf8)[...]
            while !bytes.isEmpty {
                let sent = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard sent > 0 else { throw SMTPError(description: "the mail relay connection failed while sending: \(String(cString: strerror(errno)))") }
                bytes = bytes.dropFirst(sent)
            }
        }

        /// One reply: its code, after any `250-` continuation lines.
        func readReply() throws(SMTPError) -> (code: Int, text: String) {
            var text = ""
            while true {
                let line = try readLine()
                text += line + " "
                guard line.count >= 3, let code = Int(line.prefix(3)) else {
                    throw SMTPError(description: "the mail relay answered something that is not SMTP")
                }
                if line.count == 3 || line.dropFirst(3).first == " " { return (code, text.trimmingCharacters(in: .whitespaces)) }
            }
        }

        private func readLine() throws(SMTPError) -> String {
            while true {
                if let end = buffer.firstIndex(of: 10) {
                    let line = buffer[..<end].last == 13 ? buffer[..<(end - 1)] : buffer[..<end]
                    buffer.removeSubrange(...end)
                    return String(decoding: line, as: UTF8.self)
                }
                guard buffer.count < 8192 else { throw SMTPError(description: "the mail relay sent a line longer than 8 KiB") }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let count = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
                guard count > 0 else {
                    throw SMTPError(description: count == 0 ? "the mail relay closed the connection" : "no answer from the mail relay: \(String(cString: strerror(errno)))")
                }
                buffer += chunk[..<count]
            }
        }

        /// Sends `command` (if any) and requires a reply with a code in `codes`.
        func expect(_ codes: ClosedRange<Int>, after command: String?) throws(SMTPError) {
            if let command { try write(command + "\r\n") }
            let reply = try readReply()
            guard codes.contains(reply.code) else {
                // The reply, not the command: the command of DATA is the message.
                let verb = command.map { String($0.prefix(while: { $0 != " " && $0 != ":" }).prefix(10)) } ?? "greeting"
                throw SMTPError(description: "the mail relay refused \(verb): \(reply.text.prefix(200))", isPermanent: reply.code >= 500)
            }
        }

        func expect(_ code: Int, after command: String?) throws(SMTPError) { try expect(code...code, after: command) }
    }
}

/// The mail for one event: plain UTF-8 text. Every header value is built
/// from checked addresses and the event's text with control characters
/// removed, so nothing in an event can add or end a header.
struct MailMessage {
    var text: String

    init(_ event: NotificationEvent, from sender: String, to recipients: [String], date: Date = Date()) {
        let subject = Self.encodedWords(Self.headerText("[arca] " + event.headline, limit: 160))
        var body = event.summary + "\n\n"
        body += "event: \(event.event)\naction: \(event.action)\noutcome: \(event.outcome.rawValue)\n"
        if let target = event.target { body += "target: \(target)\n" }
        body += "time: \(event.time)\nhost: \(event.host)\n"
        if let duration = event.durationSeconds { body += "durationSeconds: \(duration)\n" }
        if let error = event.error { body += "error: \(error)\n" }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        text = [
            "From: Arca <\(sender)>",
            "To: " + recipients.joined(separator: ", "),
            "Subject: " + subject,
            "Date: " + formatter.string(from: date),
            "Message-ID: <\(UUID().uuidString.lowercased())@arca>",
            "Auto-Submitted: auto-generated",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            Self.wrapped(body),
        ].joined(separator: "\r\n")
    }

    /// `text` on one line: control characters (CR, LF, tabs, …) become
    /// spaces; cut to `limit` characters.
    static func headerText(_ text: String, limit: Int) -> String {
        let flat = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
        return flat.count > limit ? String(flat.prefix(limit - 3)) + "..." : flat
    }

    /// ASCII as is; anything else as RFC 2047 encoded words (UTF-8,
    /// base64) of at most 45 bytes each, folded onto continuation lines.
    static func encodedWords(_ text: String) -> String {
        guard !text.unicodeScalars.allSatisfy(\.isASCII) else { return text }
        var words: [String] = [], chunk: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            if chunk.count + bytes.count > 45 {
                words.append("=?utf-8?B?\(Data(chunk).base64EncodedString())?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty { words.append("=?utf-8?B?\(Data(chunk).base64EncodedString())?=") }
        return words.joined(separator: "\r\n ")
    }

    /// Lines of at most 240 characters (SMTP allows 998 bytes): a long
    /// error text is broken, not refused by the relay.
    static func wrapped(_ body: String) -> String {
        body.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            var rest = Substring(line), pieces: [Substring] = []
            while rest.count > 240 {
                pieces.append(rest.prefix(240))
                rest = rest.dropFirst(240)
            }
            return (pieces + [rest]).joined(separator: "\n")
        }.joined(separator: "\n")
    }
}
