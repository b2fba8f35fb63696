import ArcaTesting
import Foundation
import NIOCore
import NIOHTTP1
import Testing
@testable import ArcaS3

/// Retries and error mapping, against a local server that answers from a script.
@Suite("S3 client retries")
struct S3ClientRetryTests {
    static let secret = "scripted-secret-key"

    /// Runs `body` with a client pointed at a scripted server.
    func withScriptedClient(
        maxAttempts: Int = 5, maxDelay: Duration = .milliseconds(5), requestTimeout: Duration = .seconds(30),
        script: @escaping ScriptedHTTPServer.Script,
        _ body: (S3Client, ScriptedHTTPServer) async throws -> Void
    ) async throws {
        let server = try await ScriptedHTTPServer(script: script)
        let configuration = S3Configuration(
            bucket: "scripted", accessKeyID: "AKIASCRIPTED", secretAccessKey: Self.secret,
            sessionToken: "scripted-session-token", endpoint: server.endpoint)
        let retries = RetryPolicy(maxAttempts: maxAttempts, baseDelay: .milliseconds(1), maxDelay: maxDelay)
        do {
            try await withClient(configuration, retryPolicy: retries, requestTimeout: requestTimeout) { client in
                try await body(client, server)
            }
            try await server.stop()
        } catch {
            try? await server.stop()
            throw error
        }
    }

    /// A listing page larger than any S3 answer is refused, not read into
    /// memory: whatever poses as the bucket cannot make a listing unbounded.
    @Test func oversizedListingIsRefused() async throws {
        let page = "<ListBucketResult>" + String(repeating: "<Contents><Key>a</Key><Size>1</Size></Contents>", count: 100_000) + "</ListBucketResult>"
        try await withScriptedClient(maxAttempts: 1, script: { _ in .init(status: .ok, body: page) }) { client, _ in
            do {
                _ = try await client.listObjects()
                Issue.record("a \(page.utf8.count)-byte listing page was read")
            } catch S3Error.invalidResponse(_, let detail) {
                #expect(detail.contains("larger than"), "\(detail)")
            }
        }
    }

    @Test func serverErrorsAreRetriedWithFreshSignatures() async throws {
        try await withScriptedClient(script: { index in
            index < 2 ? .s3Error(.internalServerError, code: "InternalError") : .init(status: .ok, body: "hello")
        }) { client, server in
            let greeting = try await client.getObject(key: "greeting")
            #expect(greeting == Array("hello".utf8))
            let requests = server.receivedRequests
            #expect(requests.count == 3)
            for request in requests {
                #expect(request.method == .GET)
                #expect(request.uri == "/scripted/greeting")
                #expect(request.headers.first(name: "authorization")?.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIASCRIPTED/") == true)
                #expect(request.headers.first(name: "x-amz-security-token") == "scripted-session-token")
                #expect(request.headers.first(name: "x-amz-content-sha256") == SigV4Signer.emptyPayloadHash)
                #expect(request.headers.first(name: "x-amz-date") != nil)
            }
        }
    }

    /// A 503 SlowDown that says how long to wait is waited for: the retry
    /// cannot arrive sooner (the backoff alone would be a millisecond).
    @Test func retryAfterIsHonoured() async throws {
        try await withScriptedClient(maxDelay: .seconds(3), script: { index in
            guard index == 0 else { return .init(status: .ok, body: "hello") }
            var answer = ScriptedHTTPServer.Answer.s3Error(.serviceUnavailable, code: "SlowDown")
            answer.headers.append(("Retry-After", "1"))
            return answer
        }) { client, server in
            let greeting = try await client.getObject(key: "greeting")
            #expect(greeting == Array("hello".utf8))
            let requests = server.receivedRequests
            #expect(requests.count == 2)
            #expect(requests[1].receivedAt - requests[0].receivedAt >= .seconds(1))
        }
    }

    @Test func retryAfterValuesAndBounds() throws {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(RetryPolicy.retryAfter("3") == .seconds(3))
        #expect(RetryPolicy.retryAfter(" 0 ") == .seconds(0))
        #expect(RetryPolicy.retryAfter("Tue, 14 Nov 2023 22:13:30 GMT", now: now) == .seconds(10))
        #expect(RetryPolicy.retryAfter("Tue, 14 Nov 2023 22:13:00 GMT", now: now) == .seconds(0))  // in the past
        for unreadable in [nil, "", "-5", "soon", "1.5"] { #expect(RetryPolicy.retryAfter(unreadable) == nil) }

        let policy = RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(10), maxDelay: .seconds(2))
        for _ in 0..<50 {
            #expect(policy.delay(afterAttempt: 1, serverAsked: .seconds(1)) == .seconds(1))
            #expect(policy.delay(afterAttempt: 1, serverAsked: .seconds(600)) == .seconds(2))  // capped
            #expect(policy.delay(afterAttempt: 1) <= .milliseconds(10))
        }
    }

    @Test func timeoutsAndDroppedConnectionsAreRetried() async throws {
        try await withScriptedClient(requestTimeout: .milliseconds(300), script: { index in
            switch index {
            case 0: .hang
            case 1: .closeConnection
            default: .init(status: .ok, headers: [("ETag", "\"e\"")])
            }
        }) { client, server in
            let etag = try await client.putObject(key: "k", body: [1, 2, 3])
            #expect(etag == "e")
            #expect(server.receivedRequests.count == 3)
        }
    }

    @Test func persistentTimeoutsAreReported() async throws {
        try await withScriptedClient(maxAttempts: 2, requestTimeout: .milliseconds(200), script: { _ in .hang }) { client, server in
            let error = await #expect(throws: S3Error.self) { try await client.getObject(key: "k") }
            guard case .unreachable(let context, let reason) = error else {
                Issue.record("expected unreachable, got \(String(describing: error))")
                return
            }
            #expect(context.attempts == 2)
            #expect(reason == "request timed out")
            #expect(server.receivedRequests.count == 2)
        }
    }

    @Test(arguments: [
        (HTTPResponseStatus.serviceUnavailable, "SlowDown"), (.tooManyRequests, "TooManyRequests"),
        (.badGateway, "BadGateway"), (.gatewayTimeout, "GatewayTimeout"),
    ])
    func persistentServerErrorsGiveUpAfterMaxAttempts(status: HTTPResponseStatus, code: String) async throws {
        try await withScriptedClient(maxAttempts: 3, script: { _ in .s3Error(status, code: code, message: "please slow down") }) { client, server in
            let error = await #expect(throws: S3Error.self) { try await client.putObject(key: "k", body: [1, 2, 3]) }
            guard case .serviceError(let context) = error else {
                Issue.record("expected serviceError, got \(String(describing: error))")
                return
            }
            #expect(context.attempts == 3)
            #expect(context.httpStatus == Int(status.code))
            #expect(context.errorCode == code)
            #expect(context.requestID == "REQ\(code)")
            #expect(server.receivedRequests.count == 3)
            #expect(error?.description == "S3 answered PutObject of object 'k' in bucket 'scripted' with \(code): please slow down after 3 attempts (request id REQ\(code)): S3 is failing or throttling; try again later")
        }
    }

    @Test func putSendsContentMD5AndPayloadHash() async throws {
        try await withScriptedClient(script: { _ in .init(status: .ok, headers: [("ETag", "\"abc\"")]) }) { client, server in
            let etag = try await client.putObject(key: "dir/a b", body: Array("Welcome to Amazon S3.".utf8))
            #expect(etag == "abc")
            let request = try #require(server.receivedRequests.first)
            #expect(request.uri == "/scripted/dir/a%20b")
            #expect(request.headers.first(name: "content-md5") == "1EfQ6PKJ8WoS/2AnznfCWA==")
            #expect(request.headers.first(name: "x-amz-content-sha256") == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
            #expect(request.headers.first(name: "authorization")?.contains("content-md5;host;x-amz-content-sha256;x-amz-date;x-amz-security-token") == true)
        }
    }

    @Test(arguments: [
        (HTTPResponseStatus.forbidden, "AccessDenied"), (.forbidden, "InvalidAccessKeyId"),
        (.forbidden, "SignatureDoesNotMatch"), (.notFound, "NoSuchKey"), (.badRequest, "InvalidArgument"),
    ])
    func clientErrorsAreNotRetried(status: HTTPResponseStatus, code: String) async throws {
        try await withScriptedClient(script: { _ in .s3Error(status, code: code) }) { client, server in
            let error = await #expect(throws: S3Error.self) { try await client.getObject(key: "k") }
            #expect(server.receivedRequests.count == 1)
            #expect(error?.context?.attempts == 1)
            #expect(error?.context?.errorCode == code)
            let description = error?.description ?? ""
            #expect(!description.contains(Self.secret))
            #expect(!description.contains("scripted-session-token"))
            switch (code, error) {
            case ("AccessDenied", .accessDenied?):
                #expect(description == "S3 denied GetObject on object 'k' in bucket 'scripted' (AccessDenied: scripted) (request id REQAccessDenied): check that the IAM policy of these credentials allows s3:GetObject on this bucket")
            case ("InvalidAccessKeyId", .invalidCredentials?), ("SignatureDoesNotMatch", .invalidCredentials?):
                #expect(description == "S3 refused the credentials for bucket 'scripted' (\(code): scripted) (request id REQ\(code)): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            case ("NoSuchKey", .noSuchKey?), ("InvalidArgument", .serviceError?):
                break
            default:
                Issue.record("unexpected mapping of \(code): \(String(describing: error))")
            }
        }
    }

    @Test func headIsNotRetriedOn404AndReturnsNil() async throws {
        try await withScriptedClient(script: { _ in .init(status: .notFound) }) { client, server in
            let info = try await client.headObject(key: "absent")
            #expect(info == nil)
            #expect(server.receivedRequests.count == 1)
        }
    }

    static let completeResult = """
        <CompleteMultipartUploadResult><Location>l</Location><Bucket>scripted</Bucket><Key>k</Key>\
        <ETag>&quot;3858f62230ac3c915f300c664312c11f-2&quot;</ETag></CompleteMultipartUploadResult>
        """

    @Test func completeWithAnErrorIn200IsRetriedWhenTransient() async throws {
        try await withScriptedClient(script: { index in
            index < 2 ? .s3Error(.ok, code: "InternalError") : .init(status: .ok, body: Self.completeResult)
        }) { client, server in
            let etag = try await client.completeMultipartUpload(
                key: "k", uploadID: "U1", parts: [S3UploadedPart(partNumber: 1, etag: "e1"), S3UploadedPart(partNumber: 2, etag: "e2")])
            #expect(etag == "3858f62230ac3c915f300c664312c11f-2")
            #expect(server.receivedRequests.count == 3)
            #expect(server.receivedRequests.first?.uri == "/scripted/k?uploadId=U1")
        }
    }

    @Test func completeWithAPermanentErrorIn200Fails() async throws {
        try await withScriptedClient(script: { _ in .s3Error(.ok, code: "InvalidPart", message: "One or more parts could not be found") }) { client, server in
            let error = await #expect(throws: S3Error.self) {
                try await client.completeMultipartUpload(key: "k", uploadID: "U1", parts: [S3UploadedPart(partNumber: 1, etag: "e1")])
            }
            guard case .serviceError(let context) = error else {
                Issue.record("expected serviceError, got \(String(describing: error))")
                return
            }
            #expect(context.httpStatus == 200)
            #expect(context.errorCode == "InvalidPart")
            #expect(server.receivedRequests.count == 1)
        }
    }

    @Test func shortRangedAnswerIsRejected() async throws {
        try await withScriptedClient(script: { _ in
            .init(status: .partialContent, headers: [("Content-Range", "bytes 0-4/5")], body: "hello")
        }) { client, _ in
            let error = await #expect(throws: S3Error.self) { try await client.getObject(key: "k", range: 0..<10) }
            guard case .invalidResponse = error else {
                Issue.record("expected invalidResponse, got \(String(describing: error))")
                return
            }
        }
    }

    @Test func plainOKToARangedReadIsRejected() async throws {
        // A server ignoring Range answers 200 with the whole object: not what was asked.
        try await withScriptedClient(script: { _ in .init(status: .ok, body: "hello world") }) { client, server in
            await #expect(throws: S3Error.self) { try await client.getObject(key: "k", range: 0..<5) }
            #expect(server.receivedRequests.first?.headers.first(name: "range") == "bytes=0-4")
        }
    }

    @Test func addressingStyles() async throws {
        let aws = S3Configuration(bucket: "my-bucket", region: "eu-west-1", accessKeyID: "a", secretAccessKey: "s")
        try await withClient(aws) { client in
            let target = client.requestTarget(key: "dir/a b+ü", query: [("uploadId", "x/y")])
            #expect(target.url == "https://my-bucket.s3.eu-west-1.amazonaws.com/dir/a%20b%2B%C3%BC?uploadId=x%2Fy")
            #expect(target.host == "my-bucket.s3.eu-west-1.amazonaws.com")
            #expect(target.path == "/dir/a b+ü")
            #expect(client.requestTarget(key: nil).url == "https://my-bucket.s3.eu-west-1.amazonaws.com/")
        }
        let dotted = S3Configuration(bucket: "my.bucket", accessKeyID: "a", secretAccessKey: "s")
        #expect(dotted.addressing == .path)

        let local = S3Configuration(
            bucket: "b1", accessKeyID: "a", secretAccessKey: "s", endpoint: URL(string: "http://127.0.0.1:9000/base/"))
        #expect(local.addressing == .path)
        try await withClient(local) { client in
            #expect(client.requestTarget(key: "k").url == "http://127.0.0.1:9000/base/b1/k")
            #expect(client.requestTarget(key: nil, query: [("uploads", "")]).url == "http://127.0.0.1:9000/base/b1?uploads=")
        }
        let virtualLocal = S3Configuration(
            bucket: "b1", accessKeyID: "a", secretAccessKey: "s", endpoint: URL(string: "http://minio.local:9000"),
            addressing: .virtualHosted)
        try await withClient(virtualLocal) { client in
            #expect(client.requestTarget(key: "k").url == "http://b1.minio.local:9000/k")
            #expect(client.requestTarget(key: "k").host == "b1.minio.local:9000")
        }
    }
}
