/// What was being done when S3 failed, for error messages and logs.
/// Never holds credentials or request headers.
public struct S3RequestContext: Sendable, Equatable {
    /// The S3 API operation, e.g. "PutObject".
    public var operation: String
    public var bucket: String
    /// The full object key (prefix included), nil for bucket-level operations.
    public var key: String?
    public var endpoint: String
    /// The HTTP status of the last answer, nil when no answer arrived.
    public var httpStatus: Int?
    /// S3's error code and message from the XML error body (or the 200-with-<Error> body).
    public var errorCode: String?
    public var errorMessage: String?
    public var requestID: String?
    /// How many times the request was sent.
    public var attempts: Int

    public init(
        operation: String, bucket: String, key: String?, endpoint: String, httpStatus: Int? = nil,
        errorCode: String? = nil, errorMessage: String? = nil, requestID: String? = nil, attempts: Int = 1
    ) {
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.endpoint = endpoint
        self.httpStatus = httpStatus
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.requestID = requestID
        self.attempts = attempts
    }

    /// "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist" or "HTTP 500".
    var reason: String {
        switch (errorCode, errorMessage) {
        case let (code?, message?) where !message.isEmpty: "\(code): \(message)"
        case let (code?, _): code
        default: httpStatus.map { "HTTP \($0)" } ?? "no answer"
        }
    }

    /// "object 'a/b' in bucket 'x'" or "bucket 'x'".
    var target: String {
        key.map { "object '\($0)' in bucket '\(bucket)'" } ?? "bucket '\(bucket)'"
    }

    var attemptsText: String { attempts == 1 ? "1 attempt" : "\(attempts) attempts" }

    var requestIDText: String { requestID.map { " (request id \($0))" } ?? "" }
}

/// An S3 operation that failed. `description` is one sentence saying what happened and what to do.
public enum S3Error: Error, CustomStringConvertible, Sendable {
    /// 403 InvalidAccessKeyId, SignatureDoesNotMatch, ExpiredToken, InvalidToken, …
    case invalidCredentials(S3RequestContext)
    /// 403 AccessDenied or another 403: the credentials are valid but not allowed to do this.
    case accessDenied(S3RequestContext)
    case noSuchBucket(S3RequestContext)
    case noSuchKey(S3RequestContext)
    case noSuchUpload(S3RequestContext)
    /// 412 to a conditional write (`If-None-Match: *`): another object is under the key.
    case objectExists(S3RequestContext)
    /// Any other error answer from S3 (after retries when it was retryable).
    case serviceError(S3RequestContext)
    /// No HTTP answer: connection refused/reset/closed, DNS failure, timeout; after all attempts.
    case unreachable(S3RequestContext, reason: String)
    /// S3 answered something this client cannot accept (wrong range, short body, bad XML).
    case invalidResponse(S3RequestContext, detail: String)
    /// The caller asked for something S3 cannot do (e.g. more than 10,000 parts).
    case invalidRequest(String)

    public var context: S3RequestContext? {
        switch self {
        case .invalidCredentials(let context), .accessDenied(let context), .noSuchBucket(let context),
            .noSuchKey(let context), .noSuchUpload(let context), .objectExists(let context), .serviceError(let context),
            .unreachable(let context, _), .invalidResponse(let context, _):
            context
        case .invalidRequest:
            nil
        }
    }

    public var description: String {
        switch self {
        case .invalidCredentials(let c):
            let tokenHint = ["ExpiredToken", "InvalidToken", "TokenRefreshRequired"].contains(c.errorCode ?? "")
                ? "AWS_SESSION_TOKEN (it may have expired)" : "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            return "S3 refused the credentials for bucket '\(c.bucket)' (\(c.reason))\(c.requestIDText): check \(tokenHint)"
        case .accessDenied(let c):
            return "S3 denied \(c.operation) on \(c.target) (\(c.reason))\(c.requestIDText): "
                + "check that the IAM policy of these credentials allows s3:\(c.operation) on this bucket"
        case .noSuchBucket(let c):
            return "bucket '\(c.bucket)' does not exist (\(c.errorCode ?? "HTTP 404")) at \(c.endpoint): "
                + "check AWS_S3_BUCKET and AWS_REGION, or create the bucket"
        case .noSuchKey(let c):
            return "\(c.target) does not exist (\(c.errorCode ?? "HTTP 404")): it may have been deleted or never uploaded"
        case .noSuchUpload(let c):
            return "the multipart upload of \(c.target) no longer exists (\(c.errorCode ?? "HTTP 404")): "
                + "it was completed or aborted; start the upload again"
        case .objectExists(let c):
            return "\(c.target) already exists and S3 refused to replace it (\(c.errorCode ?? "HTTP 412"))\(c.requestIDText): "
                + "another writer stored an object under that name; nothing was overwritten"
        case .serviceError(let c):
            let retryable = c.httpStatus.map { $0 >= 500 || $0 == 429 } ?? false
            let hint = retryable
                ? "S3 is failing or throttling; try again later"
                : "this request was not accepted; see the S3 error code"
            return "S3 answered \(c.operation) of \(c.target) with \(c.reason) after \(c.attemptsText)\(c.requestIDText): \(hint)"
        case .unreachable(let c, let reason):
            let hint = c.endpoint.hasSuffix(".amazonaws.com")
                ? "check the network connection and AWS_REGION"
                : "check AWS_ENDPOINT_URL and that the server is running"
            return "the S3 endpoint \(c.endpoint) could not be reached after \(c.attemptsText) (\(reason)): \(hint)"
        case .invalidResponse(let c, let detail):
            return "S3 sent an unusable answer to \(c.operation) of \(c.target) (\(detail))\(c.requestIDText): "
                + "the server may not be S3-compatible enough, or the data changed meanwhile"
        case .invalidRequest(let detail):
            return detail
        }
    }
}
