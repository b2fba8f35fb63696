import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaS3
import ArcaTesting
import Foundation
import Testing

/// `--max-rate` and `ARCA_UPLOAD_MAX_RATE` end to end: real PostgreSQL,
/// real moto_server. A throttled backup is whole and restores equal; its
/// duration is checked only against the lower bound its rate implies.
@Suite struct ThrottledBackupTests {
    /// Tables and large objects under one limit: every byte read counts.
    @Test func throttledBackupRoundTripsAndTakesTheTimeItsRateImplies() async throws {
        let source = try TestDatabase("throttle_src")
        let target = try TestDatabase("throttle_dst")
        defer { source.drop(); target.drop() }
        try source.execute("""
            CREATE TABLE reading (id int PRIMARY KEY, body text NOT NULL);
            INSERT INTO reading SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 20000) g;
            CREATE TABLE note (id int PRIMARY KEY, body text);
            INSERT INTO note SELECT g, 'note ' || g FROM generate_series(1, 300) g;
            SELECT lo_from_bytea(0, decode(repeat('00ff10', 200000), 'hex'));
            """)
        let repository = Steps.repository("throttle")
        var options = BackupOptions(source: source.connectionString, repository: repository)
        options.jobs = 2
        options.chunkSize = 128 << 10
        let rate: UInt64 = 1 << 20
        options.maxRate = ByteRate(bytesPerSecond: rate)
        let configured = options
        let start = ContinuousClock.now
        let result = try await onThread { try BackupRunner(options: configured).run() }
        let elapsed = (ContinuousClock.now - start).seconds
        #expect(result.tables == 2)
        #expect(result.rawBytes > 3 << 20, "\(result.rawBytes) bytes of COPY text and large object")
        // The bucket's burst plus one unpaid chunk per worker may go at
        // once; everything else waits for its tokens.
        let free = Double(configured.chunkSize) * Double(1 + configured.jobs)
        let least = (Double(result.rawBytes) - free) / Double(rate)
        #expect(elapsed >= least && result.durationSeconds >= least * 0.99, "\(elapsed) s for \(result.rawBytes) bytes at 1 MiB/s")

        try await onThread { try Steps.restore(result.path, into: target) }
        try await Steps.expectEqualOnThread(source, target)
    }

    /// The same limit stops at once when the backup is cancelled.
    @Test func cancelledThrottledBackupStopsSoon() async throws {
        let source = try TestDatabase("throttle_cancel")
        defer { source.drop() }
        try source.execute("""
            CREATE TABLE reading (id int PRIMARY KEY, body text NOT NULL);
            INSERT INTO reading SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 20000) g;
            """)
        var options = BackupOptions(source: source.connectionString, repository: Steps.repository("throttle-cancel"))
        options.chunkSize = 128 << 10
        options.maxRate = ByteRate(bytesPerSecond: 64 << 10)  // about a minute of data
        let configured = options
        let backup = Task.detached { try await onThread { try BackupRunner(options: configured).run() } }
        try await Task.sleep(for: .milliseconds(700))
        configured.cancellation.cancel()
        let error = await #expect(throws: OperationError.self) { try await backup.value }
        #expect(error.map { "\($0)".contains("cancelled") } == true, "\(String(describing: error))")
    }

    /// ARCA_UPLOAD_MAX_RATE through the bucket's store: an upload after the
    /// backup (parts of a file) and a streamed `--upload-only` one (staged
    /// parts) both complete intact, no faster than the rate allows.
    @Test func throttledUploadsCompleteIntact() async throws {
        let source = try CloudStorageTests.scans("throttle_cloud", rows: 60_000)
        defer { source.drop() }
        let plain = try await CloudStorageTests.bucket("throttle")
        let rate: UInt64 = 16 << 20
        let cloud = CloudStore(configuration: plain.configuration, retryPolicy: CloudStorageTests.quickRetries, uploadRate: ByteRate(bytesPerSecond: rate))
        let repository = Steps.repository("throttle-cloud")

        for uploadOnly in [false, true] {
            let start = ContinuousClock.now
            let result = try await CloudStorageTests.backup(source, repository, cloud: cloud, uploadOnly: uploadOnly)
            let elapsed = (ContinuousClock.now - start).seconds
            #expect(result.bytes > 8 << 20, "the archive should need more than one upload part")
            let least = (Double(result.bytes) - Double(cloud.uploadLimiter!.burst)) / Double(rate)
            #expect(elapsed >= least, "uploaded \(result.bytes) bytes in \(elapsed) s at 16 MiB/s (uploadOnly: \(uploadOnly))")
            let id = try #require(BackupID(result.backupId))
            let verification = try await onThread { try Verification(archive: .cloud(cloud, id), repository: repository).run() }
            #expect(verification.intact && verification.sidecar == "match", "\(verification.problems)")
        }
    }
}
