import ArcaFormat
import ArcaTesting
import Foundation
import NIOCore
import Testing
@testable import ArcaS3

/// Writes that never replace an object (`If-None-Match: *`), against a real
/// moto_server, directly and through the fault proxy.
@Suite("Conditional writes")
struct ConditionalWriteTests {
    @Test func aSecondPutOfAKeyIsRefusedAndTheFirstStays() async throws {
        try await withMotoClient("conditional-put") { client in
            let first = testBytes(count: 1000, seed: 1)
            try await client.putObject(key: "backup.arca", body: first, ifAbsent: true)
            do {
                try await client.putObject(key: "backup.arca", body: testBytes(count: 900, seed: 2), ifAbsent: true)
                Issue.record("a conditional PutObject replaced an object")
            } catch S3Error.objectExists(let context) {
                #expect(context.httpStatus == 412)
                #expect("\(S3Error.objectExists(context))".contains("nothing was overwritten"))
            }
            #expect(try await client.getObject(key: "backup.arca") == first)
        }
    }

    /// The completion is conditional too: the parts are sent, the object
    /// stays the first one, and no unfinished upload is left behind.
    @Test func aMultipartUploadOntoATakenKeyIsRefusedAndAborted() async throws {
        try await withMotoClient("conditional-multipart") { client in
            let first = testBytes(count: 100, seed: 3)
            try await client.putObject(key: "taken", body: first)
            let body = testBytes(count: S3Client.minimumPartSize + 1000, seed: 4)
            await #expect(throws: S3Error.self) {
                try await client.upload(key: "taken", chunks: [body].async, partSize: S3Client.minimumPartSize, ifAbsent: true)
            }
            #expect(try await client.getObject(key: "taken") == first)
            #expect(try await client.listMultipartUploads().isEmpty)
            // Without the condition the same upload replaces it: the refusal was the condition's.
            try await client.upload(key: "taken", chunks: [body].async, partSize: S3Client.minimumPartSize)
            #expect(try await client.headObject(key: "taken")?.size == UInt64(body.count))
        }
    }

    /// The ETag arithmetic a lost answer is recognised by, against what the
    /// server computes for a real multipart object and a single PUT.
    @Test func expectedETagsMatchTheServers() async throws {
        try await withMotoClient("etags") { client in
            for (name, size) in [("one", 1000), ("three", 2 * S3Client.minimumPartSize + 12_345)] {
                let source = MemorySource(testBytes(count: size, seed: 9))
                let etag = try await client.upload(key: name, source: source, partSize: S3Client.minimumPartSize, ifAbsent: true)
                let expected = try S3Client.expectedETag(of: source, partSize: S3Client.minimumPartSize)
                #expect(expected == etag, "\(name)")
                #expect(try await client.headObject(key: name)?.etag == etag)
            }
            #expect(S3Client.multipartETag(partETags: ["not hex"]) == nil)
        }
    }

    /// A write that succeeded but whose answer was lost is retried; the
    /// retry's 412 is recognised as the write's own object: a success, for
    /// a single PUT and for a multipart completion alike.
    @Test func aRetryAfterALostAnswerFindsItsOwnObject() async throws {
        let moto = try await MotoServer.shared()
        let bucket = uniqueBucketName("lost-answers")
        let direct = S3Configuration(bucket: bucket, accessKeyID: "testing", secretAccessKey: "testing", endpoint: moto.endpoint)
        try await withClient(direct) { try await $0.createBucket() }
        /// A client whose first conditional write is done but never answered.
        func withLosingClient(_ body: (S3Client) async throws -> Void) async throws {
            let proxy = try S3FaultProxy(upstream: moto.endpoint, loseConditionalAnswers: 1)
            defer { proxy.stop() }
            let proxied = S3Configuration(bucket: bucket, accessKeyID: "testing", secretAccessKey: "testing", endpoint: proxy.endpoint)
            try await withClient(proxied, body)
        }
        let small = testBytes(count: 2000, seed: 5)
        try await withLosingClient { (client: S3Client) async throws in
            try await client.putObject(key: "small", body: small, ifAbsent: true)
            #expect(try await client.getObject(key: "small") == small)
        }
        let large = testBytes(count: S3Client.minimumPartSize + 5000, seed: 6)
        try await withLosingClient { (client: S3Client) async throws in
            try await client.upload(key: "large", chunks: [large].async, partSize: S3Client.minimumPartSize, ifAbsent: true)
            #expect(try await client.getObject(key: "large") == large)
            #expect(try await client.listMultipartUploads().isEmpty)
        }
        // Another writer's object is still refused after a lost answer and its retry.
        try await withLosingClient { (client: S3Client) async throws in
            await #expect(throws: S3Error.self) { try await client.putObject(key: "small", body: testBytes(count: 10, seed: 7), ifAbsent: true) }
            #expect(try await client.getObject(key: "small") == small)
        }
    }

    /// The fault proxy's "ignore conditions" mode is a store that really
    /// ignores them: what the fallback (look before writing) is for.
    @Test func theProxyCanPlayAStoreWithoutConditionalWrites() async throws {
        let moto = try await MotoServer.shared()
        let proxy = try S3FaultProxy(upstream: moto.endpoint, ignoreConditions: true)
        defer { proxy.stop() }
        let configuration = S3Configuration(
            bucket: uniqueBucketName("no-conditions"), accessKeyID: "testing", secretAccessKey: "testing", endpoint: proxy.endpoint)
        try await withClient(configuration) { client in
            try await client.createBucket()
            try await client.putObject(key: "k", body: [1, 2, 3], ifAbsent: true)
            try await client.putObject(key: "k", body: [4, 5], ifAbsent: true)
            #expect(try await client.getObject(key: "k") == [4, 5])
        }
    }
}
