import ArcaS3
import ArcaTesting
import Foundation

/// A bucket name no other test uses.
func uniqueBucketName(_ purpose: String) -> String {
    "arca-\(purpose)-\(UUID().uuidString.prefix(8).lowercased())"
}

/// Fast retries so failure paths take milliseconds.
let quickRetries = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(5))

/// Runs `body` with a client on a fresh bucket of the shared moto server, then shuts it down.
func withMotoClient<T>(
    _ purpose: String, prefix: String = "", retryPolicy: RetryPolicy = quickRetries,
    _ body: (S3Client) async throws -> T
) async throws -> T {
    let moto = try await MotoServer.shared()
    let configuration = S3Configuration(
        bucket: uniqueBucketName(purpose), accessKeyID: "testing", secretAccessKey: "testing",
        endpoint: moto.endpoint, prefix: prefix)
    return try await withClient(configuration, retryPolicy: retryPolicy) { client in
        try await client.createBucket()
        return try await body(client)
    }
}

func withClient<T>(
    _ configuration: S3Configuration, retryPolicy: RetryPolicy = quickRetries,
    requestTimeout: Duration = .seconds(30), _ body: (S3Client) async throws -> T
) async throws -> T {
    let client = S3Client(configuration: configuration, retryPolicy: retryPolicy, requestTimeout: requestTimeout)
    do {
        let result = try await body(client)
        try await client.shutdown()
        return result
    } catch {
        try? await client.shutdown()
        throw error
    }
}

/// Deterministic, non-repeating-looking test bytes.
func testBytes(count: Int, seed: UInt64 = 1) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15
    return (0..<count).map { _ in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return UInt8(truncatingIfNeeded: state)
    }
}
