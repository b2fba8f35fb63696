import Foundation

/// Where the repository lives on S3 and how to reach it.
/// `description` never shows the secret key or the session token.
public struct S3Configuration: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public enum Addressing: String, Sendable {
        /// {endpoint}/{bucket}/{key}: what MinIO, moto and most S3-compatible servers expect.
        case path
        /// {bucket}.{host}/{key}: what AWS expects.
        case virtualHosted
    }

    /// nil means AWS (https://s3.{region}.amazonaws.com).
    public let endpoint: URL?
    public let region: String
    public let bucket: String
    public let credentials: AWSCredentials
    /// Every key the client reads or writes lives under this prefix; empty or ending with "/".
    public let prefix: String
    public let addressing: Addressing

    public var accessKeyID: String { credentials.accessKeyID }
    public var secretAccessKey: String { credentials.secretAccessKey }
    public var sessionToken: String? { credentials.sessionToken }

    /// - Parameter addressing: nil picks virtual-hosted for AWS and path-style for any other endpoint.
    public init(
        bucket: String, region: String = "us-east-1",
        accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil,
        endpoint: URL? = nil, prefix: String = "", addressing: Addressing? = nil
    ) {
        self.bucket = bucket
        self.region = region
        self.credentials = AWSCredentials(
            accessKeyID: accessKeyID, secretAccessKey: secretAccessKey, sessionToken: sessionToken)
        self.endpoint = endpoint
        self.prefix = Self.normalizedPrefix(prefix)
        // A bucket name with dots breaks the TLS wildcard certificate of virtual-hosted AWS names.
        self.addressing = addressing ?? (endpoint == nil && !bucket.contains(".") ? .virtualHosted : .path)
    }

    /// Reads AWS_S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
    /// AWS_REGION (else AWS_DEFAULT_REGION, else us-east-1), AWS_ENDPOINT_URL, ARCA_S3_PREFIX
    /// and ARCA_S3_ADDRESSING ("path" or "virtual"). Empty values count as unset.
    /// - Returns: nil when AWS_S3_BUCKET is unset (S3 is not configured).
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(S3ConfigurationError) -> S3Configuration? {
        func value(_ name: String) -> String? {
            guard let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        guard let bucket = value("AWS_S3_BUCKET") else { return nil }
        guard Self.isValidBucketName(bucket) else { throw .invalidBucketName(bucket) }
        let missing = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"].filter { value($0) == nil }
        guard missing.isEmpty, let accessKeyID = value("AWS_ACCESS_KEY_ID"),
            let secretAccessKey = value("AWS_SECRET_ACCESS_KEY")
        else { throw .missingCredentials(bucket: bucket, missing: missing) }

        var endpoint: URL?
        if let text = value("AWS_ENDPOINT_URL") {
            guard let url = URL(string: text), let scheme = url.scheme?.lowercased(),
                scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty,
                url.query == nil, url.fragment == nil, url.user == nil
            else { throw .malformedEndpoint(text) }
            endpoint = url
        }
        var addressing: Addressing?
        switch value("ARCA_S3_ADDRESSING")?.lowercased() {
        case nil: addressing = nil
        case "path": addressing = .path
        case "virtual", "virtual-hosted", "virtualhosted": addressing = .virtualHosted
        case let other?: throw .invalidAddressing(other)
        }
        return S3Configuration(
            bucket: bucket,
            region: value("AWS_REGION") ?? value("AWS_DEFAULT_REGION") ?? "us-east-1",
            accessKeyID: accessKeyID, secretAccessKey: secretAccessKey,
            sessionToken: value("AWS_SESSION_TOKEN"),
            endpoint: endpoint, prefix: value("ARCA_S3_PREFIX") ?? "", addressing: addressing)
    }

    /// The endpoint shown to people: the configured URL, or the AWS one for the region.
    public var endpointDescription: String {
        endpoint?.absoluteString ?? "https://s3.\(region).amazonaws.com"
    }

    public var description: String {
        "S3Configuration(bucket: \(bucket), region: \(region), endpoint: \(endpointDescription), "
            + "prefix: \"\(prefix)\", addressing: \(addressing.rawValue), accessKeyID: \(credentials.redactedAccessKeyID), "
            + "secretAccessKey: <redacted>, sessionToken: \(sessionToken == nil ? "none" : "<redacted>"))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: [
            "bucket": bucket, "region": region, "endpoint": endpointDescription, "prefix": prefix,
            "addressing": addressing, "credentials": credentials,
        ], displayStyle: .struct)
    }

    /// "" stays ""; "a", "/a/" and "a//" become "a/".
    static func normalizedPrefix(_ prefix: String) -> String {
        var trimmed = Substring(prefix)
        while trimmed.hasPrefix("/") { trimmed = trimmed.dropFirst() }
        while trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        return trimmed.isEmpty ? "" : trimmed + "/"
    }

    /// S3's rules: 3-63 characters of a-z 0-9 . -, starting and ending with a letter or digit.
    static func isValidBucketName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        guard (3...63).contains(bytes.count), isAlphanumeric(bytes.first!), isAlphanumeric(bytes.last!) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }
}

/// Why the S3 settings in the environment cannot be used.
public enum S3ConfigurationError: Error, Equatable, CustomStringConvertible {
    case missingCredentials(bucket: String, missing: [String])
    case malformedEndpoint(String)
    case invalidBucketName(String)
    case invalidAddressing(String)

    public var description: String {
        switch self {
        case .missingCredentials(let bucket, let missing):
            "AWS_S3_BUCKET is set to '\(bucket)' but \(missing.joined(separator: " and ")) \(missing.count == 1 ? "is" : "are") not set: "
                + "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or unset AWS_S3_BUCKET to back up locally"
        case .malformedEndpoint(let text):
            "AWS_ENDPOINT_URL '\(Self.withoutCredentials(text))' is not a usable endpoint: give an http:// or https:// URL with a host "
                + "and no query, e.g. http://127.0.0.1:9000"
        case .invalidBucketName(let name):
            "AWS_S3_BUCKET '\(name)' is not a valid bucket name: use 3 to 63 lowercase letters, digits, '.' or '-', "
                + "starting and ending with a letter or digit"
        case .invalidAddressing(let value):
            "ARCA_S3_ADDRESSING '\(value)' is not understood: use 'path' or 'virtual'"
        }
    }

    /// The endpoint as it may be echoed: without `user:password@`. A URL too
    /// broken to parse shows only what follows its last `@`.
    static func withoutCredentials(_ text: String) -> String {
        if var components = URLComponents(string: text) {
            guard components.user != nil || components.password != nil else { return text }
            components.user = nil
            components.password = nil
            return components.string ?? "(not shown)"
        }
        guard let at = text.lastIndex(of: "@") else { return text }
        return "…@" + text[text.index(after: at)...]
    }
}
