import ArcaTesting
import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
@testable import ArcaS3

/// Signatures checked by a real verifier: a moto_server of its own with IAM authentication
/// switched on (moto recomputes every signature with botocore and rejects mismatches).
/// Moto only knows keys of IAM users created in it, so the test makes one first.
@Suite("S3 client with moto authentication")
struct S3ClientAuthTests {
    @Test func signaturesAreAcceptedAndBadCredentialsAreExplained() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let credentials = try await createIAMUser(on: moto.endpoint)
        try await switchAuthenticationOn(moto.endpoint)

        let bucket = uniqueBucketName("auth")
        let good = S3Configuration(
            bucket: bucket, accessKeyID: credentials.accessKeyID, secretAccessKey: credentials.secretAccessKey,
            endpoint: moto.endpoint)
        // moto hands botocore a partly decoded path (non-ASCII and reserved characters decoded,
        // and cut at ';'), so it computes canonical requests AWS would not. Only keys made of
        // unreserved characters, spaces and '/' can be checked this way, and no query value may
        // contain '/' (moto decodes the %2F AWS requires). The encoding of everything else is
        // pinned by the AWS vectors in SigV4SignerTests.
        let checkable = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/ ")
        let asciiKeys = S3ClientMotoTests.awkwardKeys.filter { $0.allSatisfy(checkable.contains) }
            + ["unreserved/-._~ AZaz09"]
        try await withClient(good) { client in
            try await client.createBucket()
            for key in asciiKeys {
                try await client.putObject(key: key, body: Array(key.utf8))
                #expect(try await client.getObject(key: key, range: 0..<3) == Array(key.utf8.prefix(3)), "\(key)")
                #expect(try await client.headObject(key: key)?.size == UInt64(key.utf8.count), "\(key)")
            }
            #expect(try await client.listObjects().count == asciiKeys.count)
            let uploadID = try await client.createMultipartUpload(key: "multi part")
            #expect(try await client.listMultipartUploads().map(\.uploadID) == [uploadID])
            try await client.abortMultipartUpload(key: "multi part", uploadID: uploadID)
            try await client.deleteObjects(keys: asciiKeys)
        }

        let wrongSecret = S3Configuration(
            bucket: bucket, accessKeyID: credentials.accessKeyID, secretAccessKey: "wrong-secret-value",
            endpoint: moto.endpoint)
        try await withClient(wrongSecret) { client in
            let error = await #expect(throws: S3Error.self) { try await client.putObject(key: "k", body: [1]) }
            guard case .invalidCredentials(let context) = error else {
                Issue.record("expected invalidCredentials, got \(String(describing: error))")
                return
            }
            #expect(context.errorCode == "SignatureDoesNotMatch")
            #expect(context.attempts == 1)
            let description = error?.description ?? ""
            #expect(description.hasPrefix("S3 refused the credentials for bucket '\(bucket)' (SignatureDoesNotMatch"))
            #expect(description.hasSuffix(": check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))
            #expect(!description.contains("wrong-secret-value"))
            #expect(!description.contains(credentials.secretAccessKey))
        }

        let unknownKey = S3Configuration(
            bucket: bucket, accessKeyID: "AKIAUNKNOWNKEY000000", secretAccessKey: "whatever", endpoint: moto.endpoint)
        try await withClient(unknownKey) { client in
            let error = await #expect(throws: S3Error.self) { try await client.listObjects() }
            guard case .invalidCredentials(let context) = error else {
                Issue.record("expected invalidCredentials, got \(String(describing: error))")
                return
            }
            #expect(context.errorCode == "InvalidAccessKeyId")
            #expect(error?.description.hasPrefix("S3 refused the credentials for bucket '\(bucket)' (InvalidAccessKeyId") == true)
        }
    }

    /// CreateUser, PutUserPolicy (s3:*), CreateAccessKey through moto's IAM query API,
    /// signed with the same SigV4Signer (service "iam").
    private func createIAMUser(on endpoint: URL) async throws -> AWSCredentials {
        let policy = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#
        _ = try await iam(endpoint, ["Action": "CreateUser", "UserName": "arca"])
        _ = try await iam(endpoint, ["Action": "PutUserPolicy", "UserName": "arca", "PolicyName": "s3", "PolicyDocument": policy])
        let answer = try await iam(endpoint, ["Action": "CreateAccessKey", "UserName": "arca"])
        let key = try #require(answer.child("CreateAccessKeyResult")?.child("AccessKey"))
        return AWSCredentials(
            accessKeyID: try #require(key.value("AccessKeyId")), secretAccessKey: try #require(key.value("SecretAccessKey")))
    }

    private func iam(_ endpoint: URL, _ parameters: [String: String]) async throws -> XMLElementNode {
        let form = (parameters.merging(["Version": "2010-05-08"]) { $1 })
            .map { "\(SigV4Signer.uriEncode($0.key, encodeSlash: true))=\(SigV4Signer.uriEncode($0.value, encodeSlash: true))" }
            .sorted().joined(separator: "&")
        let host = "\(endpoint.host!):\(endpoint.port!)"
        let signer = SigV4Signer(
            credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "bootstrap"),
            region: "us-east-1", service: "iam")
        let signed = signer.sign(
            SigV4Request(
                method: "POST", path: "/",
                headers: [("host", host), ("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
                payloadHash: Hashes.hex(Hashes.sha256(form.utf8))),
            date: Date(), addContentSHA256Header: false)
        var request = HTTPClientRequest(url: endpoint.absoluteString + "/")
        request.method = .POST
        for header in signed.headers { request.headers.add(name: header.name, value: header.value) }
        request.body = .bytes(ByteBuffer(string: form))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1024 * 1024)
        try #require(response.status == .ok, "IAM \(parameters["Action"]!): \(String(buffer: body))")
        return try S3XML.parse(body.readableBytesView)
    }

    /// From now on every request to this moto server must be signed by a known IAM key.
    private func switchAuthenticationOn(_ endpoint: URL) async throws {
        var request = HTTPClientRequest(url: endpoint.absoluteString + "/moto-api/reset-auth")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: "0"))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1024 * 1024)
        try #require(response.status == .ok)
    }
}
