import ArcaTesting
import Foundation
import NIOCore
import Testing
@testable import ArcaS3

/// The client against a real S3-compatible server (moto_server).
@Suite("S3 client against moto")
struct S3ClientMotoTests {
    static let awkwardKeys = [
        "plain.txt",
        "dir/sub dir/file with  spaces.bin",
        "ünïcødé/日本語/ファイル 🎉",
        "symbols/a+b=c&d;e,f@g$h'i(j)!*~.txt",
        "percent/100% sure",
    ]

    @Test func putGetHeadDeleteRoundTrip() async throws {
        try await withMotoClient("roundtrip") { client in
            for (index, key) in Self.awkwardKeys.enumerated() {
                let body = testBytes(count: 1000 + index, seed: UInt64(index + 1))
                let etag = try await client.putObject(key: key, body: body)
                #expect(etag == Hashes.hex([UInt8](body).withUnsafeBytes { Hashes.md5($0) }), "\(key)")
                #expect(try await client.getObject(key: key) == body, "\(key)")
                let info = try #require(try await client.headObject(key: key), "\(key)")
                #expect(info.key == key)
                #expect(info.size == UInt64(body.count))
                #expect(info.etag == etag)
                #expect(info.lastModified.map { abs($0.timeIntervalSinceNow) < 3600 } == true)
            }
            let listed = try await client.listObjects()
            #expect(Set(listed.map(\.key)) == Set(Self.awkwardKeys))

            for key in Self.awkwardKeys {
                try await client.deleteObject(key: key)
                #expect(try await client.headObject(key: key) == nil, "\(key)")
            }
            #expect(try await client.listObjects().isEmpty)
            // Deleting what is gone succeeds, as in S3.
            try await client.deleteObject(key: "plain.txt")
        }
    }

    @Test func missingObjectAndBucketErrors() async throws {
        try await withMotoClient("missing") { client in
            let error = await #expect(throws: S3Error.self) { try await client.getObject(key: "nothing/here") }
            guard case .noSuchKey(let context) = error else {
                Issue.record("expected noSuchKey, got \(String(describing: error))")
                return
            }
            #expect(context.attempts == 1)
            #expect(context.httpStatus == 404)
            #expect(error?.description == "object 'nothing/here' in bucket '\(client.configuration.bucket)' does not exist (NoSuchKey): it may have been deleted or never uploaded")
        }

        let moto = try await MotoServer.shared()
        let absent = S3Configuration(
            bucket: uniqueBucketName("absent"), accessKeyID: "testing", secretAccessKey: "testing", endpoint: moto.endpoint)
        try await withClient(absent) { client in
            let error = await #expect(throws: S3Error.self) { try await client.listObjects() }
            guard case .noSuchBucket(let context) = error else {
                Issue.record("expected noSuchBucket, got \(String(describing: error))")
                return
            }
            #expect(context.attempts == 1)
            #expect(error?.description.hasPrefix("bucket '\(absent.bucket)' does not exist (NoSuchBucket)") == true)
        }
    }

    @Test func createBucketIsIdempotent() async throws {
        try await withMotoClient("idempotent") { client in
            try await client.createBucket()
            try await client.putObject(key: "k", body: [1, 2, 3])
            try await client.createBucket()
            #expect(try await client.getObject(key: "k") == [1, 2, 3])
        }
    }

    @Test func rangedReads() async throws {
        try await withMotoClient("ranges") { client in
            let body = testBytes(count: 1000)
            try await client.putObject(key: "data/ranged object", body: ByteBuffer(bytes: body))
            for range: Range<UInt64> in [0..<10, 400..<600, 999..<1000, 0..<1000] {
                let bytes = try await client.getObject(key: "data/ranged object", range: range)
                #expect(bytes == Array(body[Int(range.lowerBound)..<Int(range.upperBound)]), "\(range)")
            }
            #expect(try await client.getObject(key: "data/ranged object", range: 5..<5) == [])

            // Past the end: S3 shortens the range; an exact reader must refuse that.
            let short = await #expect(throws: S3Error.self) {
                try await client.getObject(key: "data/ranged object", range: 990..<1010)
            }
            guard case .invalidResponse = short else {
                Issue.record("expected invalidResponse, got \(String(describing: short))")
                return
            }
            // Entirely past the end: 416 InvalidRange, not retried.
            let beyond = await #expect(throws: S3Error.self) {
                try await client.getObject(key: "data/ranged object", range: 2000..<2010)
            }
            #expect(beyond?.context?.httpStatus == 416)
            #expect(beyond?.context?.attempts == 1)
        }
    }

    @Test func listingFollowsContinuationTokensWithinThePrefix() async throws {
        try await withMotoClient("listing", prefix: "/repo/db1") { client in
            let keys = (0..<23).map { String(format: "chunks/%03d & more", $0) } + ["manifest.json"]
            for key in keys { try await client.putObject(key: key, body: Array(key.utf8)) }

            let all = try await client.listObjects(prefix: "", pageSize: 5)
            #expect(all.map(\.key) == keys.sorted())
            #expect(all.allSatisfy { $0.size > 0 && !$0.etag.isEmpty && $0.lastModified != nil })

            let chunks = try await client.listObjects(prefix: "chunks/", pageSize: 4)
            #expect(chunks.count == 23)

            // Keys outside the configured prefix are invisible to this client.
            let outside = S3Configuration(
                bucket: client.configuration.bucket, accessKeyID: "testing", secretAccessKey: "testing",
                endpoint: client.configuration.endpoint)
            try await withClient(outside) { unprefixed in
                try await unprefixed.putObject(key: "elsewhere.txt", body: [1])
                #expect(try await unprefixed.headObject(key: "repo/db1/manifest.json") != nil)
            }
            #expect(try await client.listObjects().count == keys.count)

            try await client.deleteObjects(keys: Array(keys.prefix(20)))
            #expect(try await client.listObjects().map(\.key) == Array(keys.sorted().suffix(4)))
        }
    }

    @Test func multipartUploadOfThreeParts() async throws {
        try await withMotoClient("multipart") { client in
            let partSize = S3Client.minimumPartSize
            let body = testBytes(count: 2 * partSize + 1_234_567)
            // Chunks of an odd size, so parts are cut across chunk boundaries.
            let chunkSize = 1_000_003
            let chunks = stride(from: 0, to: body.count, by: chunkSize).map {
                Array(body[$0..<min($0 + chunkSize, body.count)])
            }
            let etag = try await client.upload(
                key: "backups/2024 01/base.arca", chunks: chunks.async, partSize: partSize, concurrency: 2)
            #expect(etag.hasSuffix("-3"))
            #expect(try await client.getObject(key: "backups/2024 01/base.arca") == body)
            #expect(try await client.headObject(key: "backups/2024 01/base.arca")?.size == UInt64(body.count))
            #expect(try await client.listMultipartUploads().isEmpty)
        }
    }

    @Test func explicitMultipartCalls() async throws {
        try await withMotoClient("parts") { client in
            let first = testBytes(count: S3Client.minimumPartSize, seed: 7)
            let second = testBytes(count: 10, seed: 8)
            let uploadID = try await client.createMultipartUpload(key: "explicit & parts")
            #expect(try await client.listMultipartUploads().map(\.uploadID) == [uploadID])
            #expect(try await client.listMultipartUploads().map(\.key) == ["explicit & parts"])
            // Uploaded out of order, completed in order.
            let etag2 = try await client.uploadPart(key: "explicit & parts", uploadID: uploadID, partNumber: 2, body: ByteBuffer(bytes: second))
            let etag1 = try await client.uploadPart(key: "explicit & parts", uploadID: uploadID, partNumber: 1, body: ByteBuffer(bytes: first))
            try await client.completeMultipartUpload(
                key: "explicit & parts", uploadID: uploadID,
                parts: [S3UploadedPart(partNumber: 2, etag: etag2), S3UploadedPart(partNumber: 1, etag: etag1)])
            #expect(try await client.getObject(key: "explicit & parts") == first + second)
            #expect(try await client.listMultipartUploads().isEmpty)

            // An aborted upload disappears; aborting it again is harmless.
            let abandoned = try await client.createMultipartUpload(key: "abandoned")
            try await client.abortMultipartUpload(key: "abandoned", uploadID: abandoned)
            try await client.abortMultipartUpload(key: "abandoned", uploadID: abandoned)
            #expect(try await client.listMultipartUploads().isEmpty)
        }
    }

    @Test func smallStreamBecomesOnePut() async throws {
        try await withMotoClient("small") { client in
            let body = testBytes(count: 1000)
            try await client.upload(key: "small", chunks: [Array(body[..<500]), Array(body[500...])].async, partSize: S3Client.minimumPartSize)
            #expect(try await client.getObject(key: "small") == body)
            try await client.upload(key: "empty", chunks: [[UInt8]]().async, partSize: S3Client.minimumPartSize)
            #expect(try await client.headObject(key: "empty")?.size == 0)
            #expect(try await client.listMultipartUploads().isEmpty)
        }
    }

    struct StreamBroke: Error, Equatable {}

    @Test func failingStreamAbortsTheUpload() async throws {
        try await withMotoClient("abort") { client in
            let partSize = S3Client.minimumPartSize
            // Two whole parts, then the producer fails in the middle of the third.
            let chunks = FailingChunks(chunk: testBytes(count: 1024 * 1024), chunksBeforeFailure: 12)
            await #expect(throws: StreamBroke()) {
                try await client.upload(key: "broken/upload", chunks: chunks, partSize: partSize)
            }
            let leftovers = try await client.listMultipartUploads(prefix: "broken/")
            #expect(leftovers.isEmpty)
            let object = try await client.headObject(key: "broken/upload")
            #expect(object == nil)
        }
    }

    @Test func cancellationAbortsTheUpload() async throws {
        try await withMotoClient("cancel") { client in
            let upload = Task {
                try await client.upload(
                    key: "cancelled", chunks: FailingChunks(chunk: testBytes(count: 1024 * 1024), chunksBeforeFailure: .max),
                    partSize: S3Client.minimumPartSize)
            }
            // Wait until the multipart upload exists, then cancel mid-stream.
            while try await client.listMultipartUploads().isEmpty {
                try await Task.sleep(for: .milliseconds(20))
            }
            upload.cancel()
            let result = await upload.result
            #expect(throws: CancellationError.self) { try result.get() }
            #expect(try await client.listMultipartUploads().isEmpty)
            #expect(try await client.headObject(key: "cancelled") == nil)
        }
    }

    @Test func unreachableEndpointFailsAfterTheConfiguredAttempts() async throws {
        let closedPort = try freeLocalPort()
        let configuration = S3Configuration(
            bucket: "unreachable", accessKeyID: "AKIAUNREACHABLE", secretAccessKey: "secret-never-shown",
            endpoint: URL(string: "http://127.0.0.1:\(closedPort)"))
        try await withClient(configuration, retryPolicy: RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(1), maxDelay: .milliseconds(5))) { client in
            let error = await #expect(throws: S3Error.self) { try await client.putObject(key: "k", body: [1]) }
            guard case .unreachable(let context, let reason) = error else {
                Issue.record("expected unreachable, got \(String(describing: error))")
                return
            }
            #expect(context.attempts == 4)
            #expect(reason == "connection refused")
            #expect(error?.description == "the S3 endpoint http://127.0.0.1:\(closedPort) could not be reached after 4 attempts (connection refused): check AWS_ENDPOINT_URL and that the server is running")
            #expect(error?.description.contains("secret-never-shown") == false)
        }
    }
}

/// 1 MiB chunks, then an error (or endless when `chunksBeforeFailure` is .max).
struct FailingChunks: AsyncSequence, Sendable {
    typealias Element = [UInt8]
    let chunk: [UInt8]
    let chunksBeforeFailure: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let chunk: [UInt8]
        var remaining: Int

        mutating func next() async throws -> [UInt8]? {
            guard remaining > 0 else { throw S3ClientMotoTests.StreamBroke() }
            remaining -= 1
            await Task.yield()
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(chunk: chunk, remaining: chunksBeforeFailure) }
}

/// An array as an AsyncSequence, for feeding `upload(key:chunks:)`.
struct AsyncArray<Element: Sendable>: AsyncSequence, Sendable {
    let elements: [Element]

    struct AsyncIterator: AsyncIteratorProtocol {
        var remaining: IndexingIterator<[Element]>
        mutating func next() async -> Element? { remaining.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(remaining: elements.makeIterator()) }
}

extension Array where Element: Sendable {
    var async: AsyncArray<Element> { AsyncArray(elements: self) }
}
