import ArcaFormat
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// An object as S3 lists or describes it.
public struct S3ObjectInfo: Sendable, Equatable {
    /// The key relative to the configured prefix.
    public var key: String
    public var size: UInt64
    /// The ETag without its surrounding quotes.
    public var etag: String
    public var lastModified: Date?

    public init(key: String, size: UInt64, etag: String, lastModified: Date?) {
        self.key = key
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
    }
}

/// A multipart upload that was started and neither completed nor aborted.
public struct S3MultipartUploadInfo: Sendable, Equatable {
    /// The key relative to the configured prefix.
    public var key: String
    public var uploadID: String
    public var initiated: Date?
}

/// A part uploaded to a multipart upload, as CompleteMultipartUpload needs it.
public struct S3UploadedPart: Sendable, Equatable {
    public var partNumber: Int
    /// The ETag without its surrounding quotes.
    public var etag: String

    public init(partNumber: Int, etag: String) {
        self.partNumber = partNumber
        self.etag = etag
    }
}

/// A small S3 client for one bucket: signed requests with retries, objects, listings,
/// multipart uploads. Every key passed in or returned is relative to `configuration.prefix`.
///
/// Call `shutdown()` before releasing a client that created its own `HTTPClient`.
public final class S3Client: Sendable {
    public static let minimumPartSize = 5 * 1024 * 1024
    public static let maximumPartSize = 5 * 1024 * 1024 * 1024
    public static let maximumPartCount = 10_000

    public let configuration: S3Configuration
    public let retryPolicy: RetryPolicy
    /// The longest one attempt may take, from sending to the end of the response body.
    public let requestTimeout: Duration

    let httpClient: HTTPClient
    private let ownsHTTPClient: Bool
    private let signer: SigV4Signer
    let logger: Logger
    private let scheme: String
    /// host[:port] of the endpoint, without the bucket.
    private let endpointHost: String
    /// The endpoint URL's own path ("" or "/base"), decoded.
    private let endpointPath: String

    /// - Parameter httpClient: a client to borrow (it stays the caller's to shut down);
    ///   nil creates one that `shutdown()` closes. An owned client does not retry
    ///   connection establishment itself, so `retryPolicy` alone decides.
    public init(
        configuration: S3Configuration,
        httpClient: HTTPClient? = nil,
        retryPolicy: RetryPolicy = .default,
        requestTimeout: Duration = .seconds(120),
        logger: Logger = Logger(label: "arca.s3")
    ) {
        self.configuration = configuration
        self.retryPolicy = retryPolicy
        self.requestTimeout = requestTimeout
        self.logger = logger
        self.signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region, service: "s3")
        if let httpClient {
            self.httpClient = httpClient
            self.ownsHTTPClient = false
        } else {
            self.httpClient = Self.makeHTTPClient(readTimeout: requestTimeout)
            self.ownsHTTPClient = true
        }
        if let endpoint = configuration.endpoint {
            scheme = endpoint.scheme?.lowercased() ?? "https"
            let host = endpoint.host ?? ""
            let bracketedHost = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
            endpointHost = endpoint.port.map { "\(bracketedHost):\($0)" } ?? bracketedHost
            let path = endpoint.path
            endpointPath = path.hasSuffix("/") ? String(path.dropLast()) : path
        } else {
            scheme = "https"
            endpointHost = "s3.\(configuration.region).amazonaws.com"
            endpointPath = ""
        }
    }

    /// A client over the process's one HTTP client (`sharedHTTPClient`),
    /// which is never shut down: what a long-running program uses.
    public static func sharingProcessClient(configuration: S3Configuration, retryPolicy: RetryPolicy = .default) -> S3Client {
        S3Client(configuration: configuration, httpClient: sharedHTTPClient, retryPolicy: retryPolicy)
    }

    /// One HTTP client for the process (like `HTTPClient.shared`).
    static let sharedHTTPClient = makeHTTPClient(readTimeout: .seconds(120))

    /// The settings objects need: no decompression (object bytes must
    /// arrive as stored), and retries decided by the retry policy alone.
    static func makeHTTPClient(readTimeout: Duration) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(10), read: readTimeout.timeAmount)
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Closes the HTTP client if this S3Client created it.
    public func shutdown() async throws {
        if ownsHTTPClient { try await httpClient.shutdown() }
    }

    // MARK: - Bucket

    /// Creates the bucket; succeeds if it already exists and belongs to these credentials.
    public func createBucket() async throws {
        var body: ByteBuffer?
        if configuration.region != "us-east-1" {
            body = ByteBuffer(string: """
                <CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\
                <LocationConstraint>\(S3XML.escape(configuration.region))</LocationConstraint>\
                </CreateBucketConfiguration>
                """)
        }
        do {
            _ = try await send(S3Operation(name: "CreateBucket", method: .PUT, key: nil, body: body))
        } catch S3Error.serviceError(let context) where context.errorCode == "BucketAlreadyOwnedByYou" {
            return
        }
    }

    // MARK: - Objects

    /// Stores `body` under `key`. Sends Content-MD5 so S3 rejects a body
    /// damaged in transit. With `ifAbsent` the write is conditional
    /// (`If-None-Match: *`): an object already under `key` stays, and the
    /// write fails with `.objectExists`. Returns the ETag (unquoted).
    @discardableResult
    public func putObject(key: String, body: ByteBuffer, ifAbsent: Bool = false) async throws -> String {
        try await putObject(key: key, payload: .bytes(body), ifAbsent: ifAbsent)
    }

    func putObject(key: String, payload: S3Payload, ifAbsent: Bool = false) async throws -> String {
        var operation = try S3Operation(name: "PutObject", method: .PUT, key: try fullKey(key), payload: payload, contentMD5: true)
        if ifAbsent { operation.headers.append(("if-none-match", "*")) }
        do {
            let response = try await send(operation)
            return Self.unquoted(response.headers.first(name: "etag") ?? "")
        } catch S3Error.objectExists(let context) {
            // A retry after an answer that was lost finds its own first attempt.
            return try await etagIfOwnWrite(key: key, expected: Hashes.hex(operation.md5), refusal: context)
        }
    }

    @discardableResult
    public func putObject(key: String, body: [UInt8], ifAbsent: Bool = false) async throws -> String {
        try await putObject(key: key, body: ByteBuffer(bytes: body), ifAbsent: ifAbsent)
    }

    /// After a conditional write was refused: the object's ETag when it is
    /// the very object this write sent (an earlier attempt of it succeeded
    /// and its answer was lost), else the refusal. Stores whose ETag is not
    /// the content's MD5 (SSE-KMS) always get the refusal: safe, never a
    /// false success.
    private func etagIfOwnWrite(key: String, expected: String, refusal: S3RequestContext) async throws -> String {
        guard refusal.attempts > 1, let existing = try await headObject(key: key), existing.etag == expected else {
            throw S3Error.objectExists(refusal)
        }
        return existing.etag
    }

    /// The object's bytes, or only those in `range` (byte offsets, upper bound excluded).
    /// A ranged read must come back as exactly that range, or it fails with `.invalidResponse`.
    /// `limit` bounds what a whole-object GET accepts (and allocates).
    public func getObject(key: String, range: Range<UInt64>? = nil, limit: Int = .max) async throws -> [UInt8] {
        if let range, range.isEmpty { return [] }
        var operation = try S3Operation(name: "GetObject", method: .GET, key: try fullKey(key))
        if let range {
            operation.requestRange(range)
        } else {
            operation.bodyLimit = limit
        }
        let response = try await send(operation)
        let bytes = Array(buffer: response.body)
        if let range {
            try checkRangedAnswer(response, for: operation, range: range)
            guard UInt64(bytes.count) == range.count else {
                throw S3Error.invalidResponse(
                    context(for: operation, response: response), detail: "asked for \(range.count) bytes, got \(bytes.count)")
            }
        } else if let length = response.headers.first(name: "content-length").flatMap(Int.init), length != bytes.count {
            throw S3Error.invalidResponse(
                context(for: operation, response: response), detail: "Content-Length was \(length) but \(bytes.count) bytes arrived")
        }
        return bytes
    }

    /// Starts a ranged GET whose bytes are read as they arrive, into the caller's
    /// buffers: the range is never held in memory, however long it is. Failures
    /// before the body starts are retried like any request; the caller decides
    /// what to do about one in the middle of the body (`S3ObjectReader.read`).
    public func readObject(key: String, range: Range<UInt64>) async throws -> S3ObjectReader {
        precondition(!range.isEmpty, "an empty range has nothing to read")
        var operation = try S3Operation(name: "GetObject", method: .GET, key: try fullKey(key))
        operation.requestRange(range)
        operation.streamsBody = true
        let response = try await send(operation)
        try checkRangedAnswer(response, for: operation, range: range)
        if let length = response.headers.first(name: "content-length").flatMap(UInt64.init), length != range.count {
            throw S3Error.invalidResponse(
                context(for: operation, response: response), detail: "asked for \(range.count) bytes, the answer announces \(length)")
        }
        guard let body = response.stream else {
            throw S3Error.invalidResponse(context(for: operation, response: response), detail: "no body")
        }
        return S3ObjectReader(body: body, range: range, context: context(for: operation, response: response))
    }

    /// A ranged read must be answered with exactly that range.
    private func checkRangedAnswer(_ response: S3Response, for operation: S3Operation, range: Range<UInt64>) throws {
        let expected = "bytes \(range.lowerBound)-\(range.upperBound - 1)/"
        let contentRange = response.headers.first(name: "content-range") ?? "none"
        guard contentRange.hasPrefix(expected) else {
            throw S3Error.invalidResponse(
                context(for: operation, response: response),
                detail: "asked for \(expected)…, got Content-Range \(contentRange); the object may be shorter than the range")
        }
    }

    /// The object's size, ETag and date, or nil when there is no object under `key`.
    public func headObject(key: String) async throws -> S3ObjectInfo? {
        var operation = try S3Operation(name: "HeadObject", method: .HEAD, key: try fullKey(key))
        operation.acceptedStatuses = [200, 404]
        let response = try await send(operation)
        guard response.status == 200 else { return nil }
        guard let size = response.headers.first(name: "content-length").flatMap(UInt64.init) else {
            throw S3Error.invalidResponse(context(for: operation, response: response), detail: "no Content-Length")
        }
        return S3ObjectInfo(
            key: key, size: size, etag: Self.unquoted(response.headers.first(name: "etag") ?? ""),
            lastModified: response.headers.first(name: "last-modified").flatMap(S3Date.parseRFC1123))
    }

    /// Deletes the object; deleting a missing object succeeds (S3 semantics).
    public func deleteObject(key: String) async throws {
        _ = try await send(S3Operation(name: "DeleteObject", method: .DELETE, key: try fullKey(key)))
    }

    /// Deletes many objects, 1000 per request. Fails if S3 reports any key it could not delete.
    public func deleteObjects(keys: [String]) async throws {
        let fullKeys = try keys.map(fullKey)
        for start in stride(from: 0, to: fullKeys.count, by: 1000) {
            let batch = fullKeys[start..<min(start + 1000, fullKeys.count)]
            let objects = batch.map { "<Object><Key>\(S3XML.escape($0))</Key></Object>" }.joined()
            var operation = try S3Operation(
                name: "DeleteObjects", method: .POST, key: nil,
                body: ByteBuffer(string: "<Delete><Quiet>true</Quiet>\(objects)</Delete>"), contentMD5: true)
            operation.query = [("delete", "")]
            let response = try await send(operation)
            let result = try parseXML(response, for: operation)
            if let failure = result.children("Error").first {
                var failureContext = context(for: operation, response: response)
                failureContext.key = failure.value("Key")
                failureContext.errorCode = failure.value("Code")
                failureContext.errorMessage = failure.value("Message")
                throw S3Error.serviceError(failureContext)
            }
        }
    }

    /// Every object whose key starts with `prefix` (relative to the configured prefix).
    public func listObjects(prefix: String = "") async throws -> [S3ObjectInfo] {
        try await listObjects(prefix: prefix, pageSize: nil)
    }

    /// `pageSize` sets max-keys, so tests can exercise continuation without 1000+ objects.
    func listObjects(prefix: String, pageSize: Int?) async throws -> [S3ObjectInfo] {
        var objects: [S3ObjectInfo] = []
        var continuationToken: String?
        repeat {
            var operation = try S3Operation(name: "ListObjectsV2", method: .GET, key: nil)
            operation.bodyLimit = Self.listingPageLimit
            operation.query = [("list-type", "2"), ("prefix", configuration.prefix + prefix)]
            if let pageSize { operation.query.append(("max-keys", String(pageSize))) }
            if let continuationToken { operation.query.append(("continuation-token", continuationToken)) }
            let response = try await send(operation)
            let result = try parseXML(response, for: operation)
            guard objects.count <= Self.listingEntryLimit else {
                throw S3Error.invalidResponse(
                    context(for: operation, response: response), detail: "the listing goes past \(Self.listingEntryLimit) objects")
            }
            for entry in result.children("Contents") {
                guard let fullKey = entry.value("Key"), let size = entry.value("Size").flatMap(UInt64.init) else {
                    throw S3Error.invalidResponse(
                        context(for: operation, response: response), detail: "a listed object has no Key or Size")
                }
                objects.append(S3ObjectInfo(
                    key: relativeKey(fullKey), size: size, etag: Self.unquoted(entry.value("ETag") ?? ""),
                    lastModified: entry.value("LastModified").flatMap(S3Date.parseISO8601)))
            }
            continuationToken = result.value("IsTruncated") == "true" ? result.value("NextContinuationToken") : nil
            if result.value("IsTruncated") == "true" && continuationToken == nil {
                throw S3Error.invalidResponse(
                    context(for: operation, response: response), detail: "truncated listing without NextContinuationToken")
            }
        } while continuationToken != nil
        return objects
    }

    /// A listing page holds at most 1,000 entries of a few hundred bytes;
    /// anything much larger is not an S3 answer, and is not read.
    static let listingPageLimit = 4 << 20
    /// Entries a listing gathers before it is refused: memory stays
    /// bounded whatever a bucket (or something posing as one) holds.
    static let listingEntryLimit = 1_000_000

    // MARK: - Multipart upload

    /// Starts a multipart upload and returns its upload id.
    public func createMultipartUpload(key: String) async throws -> String {
        var operation = try S3Operation(name: "CreateMultipartUpload", method: .POST, key: try fullKey(key))
        operation.query = [("uploads", "")]
        let response = try await send(operation)
        guard let uploadID = try parseXML(response, for: operation).value("UploadId"), !uploadID.isEmpty else {
            throw S3Error.invalidResponse(context(for: operation, response: response), detail: "no UploadId")
        }
        return uploadID
    }

    /// Uploads part `partNumber` (1...10000) with Content-MD5 and returns its ETag (unquoted).
    public func uploadPart(key: String, uploadID: String, partNumber: Int, body: ByteBuffer) async throws -> String {
        try await uploadPart(key: key, uploadID: uploadID, partNumber: partNumber, payload: .bytes(body))
    }

    func uploadPart(key: String, uploadID: String, partNumber: Int, payload: S3Payload) async throws -> String {
        guard (1...Self.maximumPartCount).contains(partNumber) else {
            throw S3Error.invalidRequest(
                "part number \(partNumber) of '\(key)' is outside 1...\(Self.maximumPartCount): use a larger part size")
        }
        var operation = try S3Operation(
            name: "UploadPart", method: .PUT, key: try fullKey(key), payload: payload, contentMD5: true)
        operation.query = [("partNumber", String(partNumber)), ("uploadId", uploadID)]
        let response = try await send(operation)
        guard let etag = response.headers.first(name: "etag"), !etag.isEmpty else {
            throw S3Error.invalidResponse(context(for: operation, response: response), detail: "no ETag for the part")
        }
        return Self.unquoted(etag)
    }

    /// Assembles the parts into the object and returns its ETag (unquoted).
    /// S3 may answer 200 with an `<Error>` body here: that counts as a failure (and is retried
    /// when its code is a transient one). `ifAbsent` makes it conditional, as for `putObject`.
    @discardableResult
    public func completeMultipartUpload(
        key: String, uploadID: String, parts: [S3UploadedPart], ifAbsent: Bool = false
    ) async throws -> String {
        let sorted = parts.sorted { $0.partNumber < $1.partNumber }
        let partsXML = sorted.map {
            "<Part><PartNumber>\($0.partNumber)</PartNumber><ETag>\(S3XML.escape("\"\($0.etag)\""))</ETag></Part>"
        }.joined()
        var operation = try S3Operation(
            name: "CompleteMultipartUpload", method: .POST, key: try fullKey(key),
            body: ByteBuffer(string: "<CompleteMultipartUpload>\(partsXML)</CompleteMultipartUpload>"))
        operation.query = [("uploadId", uploadID)]
        operation.errorBodyMeansFailure = true
        if ifAbsent { operation.headers.append(("if-none-match", "*")) }
        do {
            let response = try await send(operation)
            let result = try parseXML(response, for: operation)
            return Self.unquoted(result.value("ETag") ?? "")
        } catch S3Error.objectExists(let context) {
            guard let expected = Self.multipartETag(partETags: sorted.map(\.etag)) else { throw S3Error.objectExists(context) }
            return try await etagIfOwnWrite(key: key, expected: expected, refusal: context)
        }
    }

    /// The ETag S3 gives a multipart object: the MD5 of the parts' binary
    /// MD5s, a dash and the part count; nil when a part's ETag is not an MD5.
    static func multipartETag(partETags: [String]) -> String? {
        var digests: [UInt8] = []
        for etag in partETags {
            guard let digest = Hex.decode(etag), digest.count == 16 else { return nil }
            digests += digest
        }
        return "\(Hashes.hex(Digest.hash(.md5, digests)))-\(partETags.count)"
    }

    /// Aborts the upload and frees its parts; an upload that no longer exists counts as aborted.
    public func abortMultipartUpload(key: String, uploadID: String) async throws {
        var operation = try S3Operation(name: "AbortMultipartUpload", method: .DELETE, key: try fullKey(key))
        operation.query = [("uploadId", uploadID)]
        do {
            _ = try await send(operation)
        } catch S3Error.noSuchUpload {
            return
        }
    }

    /// Multipart uploads under `prefix` (relative to the configured prefix) that were neither
    /// completed nor aborted: leftovers of interrupted uploads that still cost storage.
    public func listMultipartUploads(prefix: String = "") async throws -> [S3MultipartUploadInfo] {
        var uploads: [S3MultipartUploadInfo] = []
        var markers: (key: String, uploadID: String)?
        repeat {
            var operation = try S3Operation(name: "ListMultipartUploads", method: .GET, key: nil)
            operation.bodyLimit = Self.listingPageLimit
            operation.query = [("uploads", ""), ("prefix", configuration.prefix + prefix)]
            if let markers {
                operation.query += [("key-marker", markers.key), ("upload-id-marker", markers.uploadID)]
            }
            let response = try await send(operation)
            let result = try parseXML(response, for: operation)
            guard uploads.count <= Self.listingEntryLimit else {
                throw S3Error.invalidResponse(
                    context(for: operation, response: response), detail: "the listing goes past \(Self.listingEntryLimit) uploads")
            }
            for upload in result.children("Upload") {
                guard let key = upload.value("Key"), let uploadID = upload.value("UploadId") else { continue }
                uploads.append(S3MultipartUploadInfo(
                    key: relativeKey(key), uploadID: uploadID,
                    initiated: upload.value("Initiated").flatMap(S3Date.parseISO8601)))
            }
            let previous = markers
            markers = nil
            if result.value("IsTruncated") == "true",
                let nextKey = result.value("NextKeyMarker"), let nextUploadID = result.value("NextUploadIdMarker")
            {
                // A listing that does not move on would be asked for forever.
                guard previous.map({ $0 != (nextKey, nextUploadID) }) ?? true else {
                    throw S3Error.invalidResponse(
                        context(for: operation, response: response), detail: "a truncated listing whose next page is the same page")
                }
                markers = (nextKey, nextUploadID)
            }
        } while markers != nil
        return uploads
    }

    // MARK: - Requests

    /// One S3 API call: what to send and what counts as success.
    struct S3Operation {
        var name: String
        var method: HTTPMethod
        /// Full key (prefix included), nil for bucket-level requests.
        var key: String?
        var query: [(name: String, value: String)] = []
        /// Extra headers to sign and send (host, dates and authorization are added per attempt).
        var headers: [(name: String, value: String)] = []
        var payload: S3Payload?
        /// Hex SHA-256 of the payload, as SigV4 signs it; computed once for all attempts.
        let payloadHash: String
        /// The payload's MD5 (a single PUT's ETag); empty without a payload.
        var md5: [UInt8] = []
        var acceptedStatuses: Set<Int> = [200, 204]
        /// Largest response body accepted.
        var bodyLimit = 64 * 1024 * 1024
        /// An accepted answer's body is handed over unread (`S3Response.stream`).
        var streamsBody = false
        /// CompleteMultipartUpload may report failure in a 200 answer.
        var errorBodyMeansFailure = false

        init(name: String, method: HTTPMethod, key: String?, body: ByteBuffer? = nil, contentMD5: Bool = false) throws {
            try self.init(name: name, method: method, key: key, payload: body.map(S3Payload.bytes), contentMD5: contentMD5)
        }

        init(name: String, method: HTTPMethod, key: String?, payload: S3Payload?, contentMD5: Bool = false) throws {
            self.name = name
            self.method = method
            self.key = key
            // PUT and POST always carry a body, if only an empty one, so a Content-Length is sent.
            self.payload = payload ?? ([.PUT, .POST].contains(method) ? .bytes(ByteBuffer()) : nil)
            guard let payload = self.payload else {
                payloadHash = SigV4Signer.emptyPayloadHash
                return
            }
            let digests = try payload.digests()
            payloadHash = Hashes.hex(digests.sha256)
            md5 = digests.md5
            if contentMD5 { headers.append(("content-md5", Data(digests.md5).base64EncodedString())) }
        }

        mutating func requestRange(_ range: Range<UInt64>) {
            headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)"))
            acceptedStatuses = [206]
            bodyLimit = Int(clamping: range.count)
        }
    }

    struct S3Response {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
        /// The unread body, for operations that stream it.
        var stream: HTTPClientResponse.Body?
    }

    private enum AttemptFailure {
        case answer(S3Response, S3ErrorDocument?)
        case transport(TransportFailure)
    }

    /// Sends `operation`, signing every attempt afresh, retrying transient failures.
    func send(_ operation: S3Operation) async throws -> S3Response {
        var attempt = 0
        while true {
            attempt += 1
            try Task.checkCancellation()
            let failure: AttemptFailure
            do {
                let response = try await exchange(operation)
                if operation.acceptedStatuses.contains(response.status) {
                    guard operation.errorBodyMeansFailure, let document = S3ErrorDocument(body: response.body.readableBytesView)
                    else { return response }
                    failure = .answer(response, document)
                } else {
                    failure = .answer(response, S3ErrorDocument(body: response.body.readableBytesView))
                }
            } catch let error as NIOTooManyBytesError {
                throw S3Error.invalidResponse(
                    context(for: operation, attempts: attempt),
                    detail: "the answer is larger than \(error.maxBytes.map(String.init) ?? "the limit of") bytes")
            } catch {
                if Task.isCancelled || error is CancellationError || (error as? HTTPClientError) == .cancelled {
                    throw CancellationError()
                }
                failure = .transport(TransportFailure(error))
            }

            let retryable: Bool
            switch failure {
            case .answer(let response, let document):
                retryable = RetryPolicy.isRetryable(status: response.status, code: document?.code)
            case .transport(let transport):
                retryable = transport.isRetryable
            }
            guard retryable, attempt < retryPolicy.maxAttempts else {
                throw error(for: failure, operation: operation, attempts: attempt)
            }
            var serverAsked: Duration?
            if case .answer(let response, _) = failure {
                serverAsked = RetryPolicy.retryAfter(response.headers.first(name: "retry-after"))
            }
            let delay = retryPolicy.delay(afterAttempt: attempt, serverAsked: serverAsked)
            logger.debug("retrying S3 request", metadata: [
                "operation": "\(operation.name)", "bucket": "\(configuration.bucket)", "key": "\(operation.key ?? "")",
                "attempt": "\(attempt)", "failure": "\(Self.summary(failure))", "delay": "\(delay)",
            ])
            try await Task.sleep(for: delay)
        }
    }

    /// One signed HTTP exchange, response body included.
    private func exchange(_ operation: S3Operation) async throws -> S3Response {
        let target = requestTarget(key: operation.key, query: operation.query)
        let unsigned = SigV4Request(
            method: operation.method.rawValue, path: target.path, query: operation.query,
            headers: [("host", target.host)] + operation.headers, payloadHash: operation.payloadHash)
        let signed = signer.sign(unsigned, date: Date(), addContentSHA256Header: true)

        var request = HTTPClientRequest(url: target.url)
        request.method = operation.method
        for header in signed.headers { request.headers.add(name: header.name, value: header.value) }
        switch operation.payload {
        case .bytes(let body)?: request.body = .bytes(body)
        // Read afresh for every attempt, a piece at a time: never the whole part in memory.
        case .source(let source, let range)?: request.body = .stream(SourcePieces(source: source, range: range), length: .known(Int64(range.count)))
        case .sourceOnEventLoop(let source, let range)?:
            return try await exchangeOnEventLoop(operation, url: target.url, headers: request.headers, source: source, range: range)
        case nil: break
        }

        let deadline = NIODeadline.now() + requestTimeout.timeAmount
        let response = try await httpClient.execute(request, deadline: deadline, logger: logger)
        let status = Int(response.status.code)
        let body: ByteBuffer
        if operation.method == .HEAD {
            body = ByteBuffer()  // HEAD answers carry the object's Content-Length but no body
        } else if operation.acceptedStatuses.contains(status) {
            if operation.streamsBody {
                return S3Response(status: status, headers: response.headers, body: ByteBuffer(), stream: response.body)
            }
            body = try await response.body.collect(upTo: operation.bodyLimit)
        } else {
            body = try await Self.collectPrefix(of: response.body, maxBytes: Self.errorBodyLimit)
        }
        return S3Response(status: status, headers: response.headers, body: body)
    }

    /// The same exchange for a body read from `source` on the HTTP client's
    /// event loop, a piece at a time as the connection takes it (a read of
    /// 256 KiB from the page cache, where the part was just written): no
    /// task of Swift's cooperative pool is involved (see
    /// `SourcePart.readOnEventLoop`). The answer to an upload is small and
    /// read whole, up to the error-document bound.
    private func exchangeOnEventLoop(
        _ operation: S3Operation, url: String, headers: HTTPHeaders, source: any ByteSource & Sendable, range: Range<UInt64>
    ) async throws -> S3Response {
        let body = HTTPClient.Body.stream(contentLength: Int64(range.count)) { writer in
            @Sendable func write(from offset: UInt64) -> EventLoopFuture<Void> {
                let piece: ByteBuffer
                do {
                    piece = offset < range.upperBound ? try SourcePieces.read(source, at: offset, end: range.upperBound) : ByteBuffer()
                } catch {
                    // An empty write gives a future on the request's event loop to fail.
                    return writer.write(.byteBuffer(ByteBuffer())).flatMapThrowing { throw error }
                }
                let next = offset + UInt64(piece.readableBytes)
                let written = writer.write(.byteBuffer(piece))
                guard next < range.upperBound else { return written }
                // The next piece from a task of its own, after this frame has
                // returned: the writer's future is often already succeeded,
                // and calling on from here would keep every piece read so far
                // alive in the frames below (a whole part, 32 × 256 KiB).
                return written.flatMap { written.eventLoop.flatSubmit { write(from: next) } }
            }
            return write(from: range.lowerBound)
        }
        let request = try HTTPClient.Request(url: url, method: operation.method, headers: headers, body: body)
        let accumulator = ResponseAccumulator(request: request, maxBodySize: Self.errorBodyLimit)
        let task = httpClient.execute(
            request: request, delegate: accumulator, deadline: NIODeadline.now() + requestTimeout.timeAmount, logger: logger)
        let response = try await withTaskCancellationHandler {
            try await task.futureResult.get()
        } onCancel: {
            task.cancel()
        }
        return S3Response(status: Int(response.status.code), headers: response.headers, body: response.body ?? ByteBuffer())
    }

    /// An error document is small; anything else in an unexpected answer (say a whole
    /// object where a range was asked for) is not worth downloading.
    private static let errorBodyLimit = 64 * 1024

    private static func collectPrefix(of body: HTTPClientResponse.Body, maxBytes: Int) async throws -> ByteBuffer {
        var collected = ByteBuffer()
        for try await var chunk in body {
            collected.writeBuffer(&chunk)
            // Leaving the loop early closes the connection instead of reading the rest.
            if collected.readableBytes >= maxBytes { break }
        }
        return collected
    }

    /// Where a request goes: the URL sent, its Host header, and the decoded path that is signed.
    /// The URL's path and query are the signer's canonical forms, so what is sent is what is signed.
    func requestTarget(key: String?, query: [(name: String, value: String)] = []) -> (url: String, host: String, path: String) {
        let host: String
        let path: String
        switch configuration.addressing {
        case .path:
            host = endpointHost
            path = "\(endpointPath)/\(configuration.bucket)" + (key.map { "/\($0)" } ?? "")
        case .virtualHosted:
            host = "\(configuration.bucket).\(endpointHost)"
            path = "\(endpointPath)/\(key ?? "")"
        }
        let queryString = SigV4Signer.canonicalQuery(query)
        let url = "\(scheme)://\(host)\(SigV4Signer.canonicalURI(path))" + (queryString.isEmpty ? "" : "?\(queryString)")
        return (url, host, path)
    }

    // MARK: - Helpers

    private func fullKey(_ key: String) throws -> String {
        let full = configuration.prefix + key
        guard !key.isEmpty, full.utf8.count <= 1024 else {
            throw S3Error.invalidRequest(
                "the object key '\(full)' is not usable: keys must be 1 to 1024 bytes long, prefix included")
        }
        return full
    }

    private func relativeKey(_ fullKey: String) -> String {
        fullKey.hasPrefix(configuration.prefix) ? String(fullKey.dropFirst(configuration.prefix.count)) : fullKey
    }

    private func parseXML(_ response: S3Response, for operation: S3Operation) throws -> XMLElementNode {
        do {
            return try S3XML.parse(response.body.readableBytesView)
        } catch {
            throw S3Error.invalidResponse(context(for: operation, response: response), detail: "\(error)")
        }
    }

    private func context(
        for operation: S3Operation, response: S3Response? = nil, document: S3ErrorDocument? = nil, attempts: Int = 1
    ) -> S3RequestContext {
        S3RequestContext(
            operation: operation.name, bucket: configuration.bucket, key: operation.key,
            endpoint: configuration.endpointDescription, httpStatus: response?.status,
            errorCode: document?.code, errorMessage: document?.message,
            requestID: document?.requestID ?? response?.headers.first(name: "x-amz-request-id"),
            attempts: attempts)
    }

    private static let credentialErrorCodes: Set<String> = [
        "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
        "AuthorizationHeaderMalformed", "InvalidSecurity", "AccountProblem",
    ]

    private func error(for failure: AttemptFailure, operation: S3Operation, attempts: Int) -> S3Error {
        switch failure {
        case .transport(let transport):
            return .unreachable(context(for: operation, attempts: attempts), reason: transport.reason)
        case .answer(let response, let document):
            let answer = context(for: operation, response: response, document: document, attempts: attempts)
            switch (response.status, document?.code) {
            case (_, let code?) where Self.credentialErrorCodes.contains(code): return .invalidCredentials(answer)
            case (_, "NoSuchBucket"?): return .noSuchBucket(answer)
            case (_, "NoSuchKey"?): return .noSuchKey(answer)
            case (_, "NoSuchUpload"?): return .noSuchUpload(answer)
            case (200..<300, nil):
                let isRangedRead = operation.headers.contains { $0.name == "range" }
                return .invalidResponse(answer, detail: isRangedRead && response.status == 200
                    ? "the server ignored the Range header and answered with the whole object"
                    : "unexpected HTTP \(response.status)")
            case (403, _): return .accessDenied(answer)
            // Only conditional writes (`If-None-Match: *`) are sent with a precondition.
            case (412, _): return .objectExists(answer)
            // HEAD answers have no body to tell which of the two is missing.
            case (404, nil): return operation.key == nil ? .noSuchBucket(answer) : .noSuchKey(answer)
            default: return .serviceError(answer)
            }
        }
    }

    private static func summary(_ failure: AttemptFailure) -> String {
        switch failure {
        case .answer(let response, let document): "HTTP \(response.status) \(document?.code ?? "")"
        case .transport(let transport): transport.reason
        }
    }

    static func unquoted(_ etag: String) -> String {
        etag.count >= 2 && etag.hasPrefix("\"") && etag.hasSuffix("\"") ? String(etag.dropFirst().dropLast()) : etag
    }
}

extension Duration {
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
