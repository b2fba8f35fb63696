import Foundation

/// AWS credentials. `description` never shows the secret key or the session token.
public struct AWSCredentials: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// The first four characters of the access key id, enough to tell keys apart in a log.
    public var redactedAccessKeyID: String {
        accessKeyID.count > 4 ? "\(accessKeyID.prefix(4))…" : "…"
    }

    public var description: String {
        "AWSCredentials(accessKeyID: \(redactedAccessKeyID), secretAccessKey: <redacted>, sessionToken: \(sessionToken == nil ? "none" : "<redacted>"))"
    }

    public var debugDescription: String { description }

    // `dump()` and the debugger walk the mirror: keep the secrets out of it too.
    public var customMirror: Mirror {
        Mirror(self, children: ["accessKeyID": redactedAccessKeyID], displayStyle: .struct)
    }
}

/// An HTTP request as the signer sees it. `path` is the decoded path ("/bucket/my key"):
/// the signer percent-encodes each segment once, as S3 expects (no double encoding and
/// no "." / ".." normalisation, since S3 keys may contain those).
public struct SigV4Request: Sendable {
    public var method: String
    public var path: String
    /// Decoded query parameters; a parameter without a value ("?uploads") has value "".
    public var query: [(name: String, value: String)]
    /// Must contain `host`. Names are case-insensitive; repeated names are joined with ",".
    public var headers: [(name: String, value: String)]
    /// Hex SHA-256 of the body, or `SigV4Signer.unsignedPayload`.
    public var payloadHash: String

    public init(
        method: String, path: String, query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)], payloadHash: String
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.payloadHash = payloadHash
    }

    /// The value of the header `name` (case-insensitive), the first one if repeated.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// AWS Signature Version 4 (header-based), for any service and region.
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
public struct SigV4Signer: Sendable {
    public static let algorithm = "AWS4-HMAC-SHA256"
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    public let credentials: AWSCredentials
    public let region: String
    public let service: String

    public init(credentials: AWSCredentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// Returns `request` with `x-amz-date`, `x-amz-security-token` (when the credentials
    /// carry a session token), optionally `x-amz-content-sha256` (S3 requires it), and
    /// `authorization` set. Existing headers of those names are replaced.
    public func sign(_ request: SigV4Request, date: Date, addContentSHA256Header: Bool) -> SigV4Request {
        var signed = request
        let stamp = Self.timestamp(date)
        var replaced: Set<String> = ["x-amz-date", "authorization"]
        var added: [(name: String, value: String)] = [("x-amz-date", stamp.dateTime)]
        if let token = credentials.sessionToken {
            replaced.insert("x-amz-security-token")
            added.append(("x-amz-security-token", token))
        }
        if addContentSHA256Header {
            replaced.insert("x-amz-content-sha256")
            added.append(("x-amz-content-sha256", request.payloadHash))
        }
        signed.headers.removeAll { replaced.contains($0.name.lowercased()) }
        signed.headers.append(contentsOf: added)
        signed.headers.append(("authorization", authorization(for: signed, date: date)))
        return signed
    }

    /// The `Authorization` header value for a request whose headers are final.
    public func authorization(for request: SigV4Request, date: Date) -> String {
        let canonical = canonicalRequest(for: request)
        let signature = signature(stringToSign: stringToSign(canonicalRequest: canonical.text, date: date), date: date)
        return "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(credentialScope(date: date)), "
            + "SignedHeaders=\(canonical.signedHeaders), Signature=\(signature)"
    }

    /// The canonical request text and its `SignedHeaders` list (all headers given are signed).
    public func canonicalRequest(for request: SigV4Request) -> (text: String, signedHeaders: String) {
        let headers = Self.canonicalHeaders(request.headers)
        let signedHeaders = headers.map(\.name).joined(separator: ";")
        let text = [
            request.method.uppercased(),
            Self.canonicalURI(request.path),
            Self.canonicalQuery(request.query),
            headers.map { "\($0.name):\($0.value)\n" }.joined(),
            signedHeaders,
            request.payloadHash,
        ].joined(separator: "\n")
        return (text, signedHeaders)
    }

    public func stringToSign(canonicalRequest: String, date: Date) -> String {
        [
            Self.algorithm,
            Self.timestamp(date).dateTime,
            credentialScope(date: date),
            Hashes.hex(Hashes.sha256(canonicalRequest.utf8)),
        ].joined(separator: "\n")
    }

    public func signature(stringToSign: String, date: Date) -> String {
        Hashes.hex(Hashes.hmacSHA256(key: signingKey(date: date), stringToSign))
    }

    /// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")
    public func signingKey(date: Date) -> [UInt8] {
        let dateKey = Hashes.hmacSHA256(key: Array("AWS4\(credentials.secretAccessKey)".utf8), Self.timestamp(date).date)
        let regionKey = Hashes.hmacSHA256(key: dateKey, region)
        let serviceKey = Hashes.hmacSHA256(key: regionKey, service)
        return Hashes.hmacSHA256(key: serviceKey, "aws4_request")
    }

    public func credentialScope(date: Date) -> String {
        "\(Self.timestamp(date).date)/\(region)/\(service)/aws4_request"
    }

    // MARK: - Canonical forms

    /// Each segment encoded once; the "/" between segments kept.
    public static func canonicalURI(_ path: String) -> String {
        let encoded = uriEncode(path, encodeSlash: false)
        return encoded.isEmpty ? "/" : (encoded.hasPrefix("/") ? encoded : "/" + encoded)
    }

    /// Names and values encoded, then sorted by name and value (byte order of the encoded forms).
    public static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map {
            (uriEncode($0.name, encodeSlash: true), uriEncode($0.value, encodeSlash: true))
        }
        let sorted = encoded.sorted { (left, right) -> Bool in
            left.name == right.name ? left.value < right.value : left.name < right.name
        }
        return sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    /// Lowercased names, sorted; values trimmed with inner runs of whitespace collapsed to
    /// one space; values of a repeated name joined with "," in the order given.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> [(name: String, value: String)] {
        var valuesByName: [String: [String]] = [:]
        for header in headers {
            valuesByName[header.name.lowercased(), default: []].append(collapseWhitespace(header.value))
        }
        return valuesByName.keys.sorted().map { ($0, valuesByName[$0]!.joined(separator: ",")) }
    }

    private static func collapseWhitespace(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
            .joined(separator: " ")
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters A-Z a-z 0-9 - . _ ~,
    /// with uppercase hex digits, over the UTF-8 bytes.
    public static func uriEncode(_ string: String, encodeSlash: Bool) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var output = [UInt8]()
        output.reserveCapacity(string.utf8.count)
        for byte in string.utf8 {
            if isUnreserved[Int(byte)] || (byte == UInt8(ascii: "/") && !encodeSlash) {
                output.append(byte)
            } else {
                output.append(UInt8(ascii: "%"))
                output.append(hexDigits[Int(byte >> 4)])
                output.append(hexDigits[Int(byte & 0x0f)])
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static let isUnreserved: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for byte in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8 { table[Int(byte)] = true }
        return table
    }()

    /// ("20150830T123600Z", "20150830") in UTC.
    public static func timestamp(_ date: Date) -> (dateTime: String, date: String) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let day = pad(parts.tm_year + 1900, 4) + pad(parts.tm_mon + 1, 2) + pad(parts.tm_mday, 2)
        return (day + "T" + pad(parts.tm_hour, 2) + pad(parts.tm_min, 2) + pad(parts.tm_sec, 2) + "Z", day)
    }
}
