import ArcaFormat
import ArcaPostgres
import Foundation

/// One unit of work: a table, or one ctid range of a big one.
struct CopyTask: Sendable {
    var table: Int
    /// The table's OID and quoted name, to lock and check it.
    var oid: UInt32
    var quotedTable: String
    var stream: UInt32
    var sql: String
    /// `public.x`, or `public.x part 2/4` for a range of a split table.
    var name: String
    var estimatedBytes: UInt64
    var firstPage: UInt32?
    var endPage: UInt32?
    /// Only hash the COPY output (an incremental backup's comparison with
    /// its base): nothing is compressed or written.
    var digestOnly = false
}

struct CopyResult: Sendable {
    var rows: UInt64
    var summary: StreamSummary
}

/// Streams many COPYs into one archive in parallel, inside one snapshot.
///
/// Each task runs in a short transaction that imports the backup's exported
/// snapshot, waits for the table's ACCESS SHARE lock and checks that the
/// table is still the one the snapshot saw (not dropped, renamed or
/// rewritten since): its lock is released at the commit, so a worker never
/// holds more than `tablesPerTransaction` locks, whatever the number of
/// tables. Small tables share a transaction, up to that many: a
/// transaction per table costs three round trips and a snapshot import,
/// which for 10,000 small tables is most of the backup's time.
///
/// Each of `jobs` workers is two threads joined by a bounded queue:
///
///     connection ──COPY rows──▶ reader ──full chunks──▶ encoder ──frames──▶ archive
///                              (fills)   (queue of 1)  (MD5, SHA-256,
///                                                       zstd, write)
///
/// so neither the server connection nor the compressor waits on the other.
/// Chunk buffers circulate in a pool of two per worker: one being filled
/// while the other is queued or being encoded. (A third buffer bought no
/// measurable speed and cost a chunk per worker.) Memory is therefore
/// bounded by `jobs × 2 × chunk size` plus one zstd output buffer per worker,
/// whatever the size of the tables. Tasks are taken largest first.
final class ParallelCopy: @unchecked Sendable {
    let tasks: [CopyTask]
    let jobs: Int
    let source: ConnectionString
    let snapshot: String
    let encoding: String
    let lockTimeoutMilliseconds: Int
    let archive: ArchiveWriter
    let level: Int32
    let cancellation: Cancellation

    private let lock = NSLock()
    private var next = 0
    private var results: [Int: CopyResult] = [:]
    private var failure: (any Error)?
    private var queues: [BoundedQueue<Item>] = []
    private var pools: [BoundedQueue<ChunkBuffer>] = []
    private(set) var rawBytesRead: UInt64 = 0
    private(set) var tasksDone = 0
    private(set) var running: [String] = []

    /// Two: the reader fills one while the encoder works on the other. One
    /// when the destination is slower than either (a streamed upload):
    /// overlapping them gains nothing there, and a chunk per worker is
    /// memory the upload's own buffers need.
    var buffersPerWorker = 2

    /// `--max-rate`: every worker takes tokens for each chunk it read
    /// before it reads more, so the server's backends wait on a full
    /// socket instead of scanning (nil: as fast as the server sends).
    var limiter: RateLimiter?

    /// Tables estimated below `smallTableBytes` share transactions, up to
    /// `tablesPerTransaction` each: few enough locks for the default
    /// `max_locks_per_transaction` (64), many enough that the per-transaction
    /// round trips stop mattering.
    static let tablesPerTransaction = 16
    static let smallTableBytes: UInt64 = 1 << 20

    enum Item {
        case chunk(task: Int, ChunkBuffer)
        case end(task: Int, rows: UInt64)
    }

    init(
        tasks: [CopyTask], jobs: Int, source: ConnectionString, snapshot: String, encoding: String,
        lockTimeoutMilliseconds: Int, archive: ArchiveWriter, level: Int32, cancellation: Cancellation
    ) {
        self.cancellation = cancellation
        self.tasks = tasks
        self.jobs = max(1, min(jobs, max(tasks.count, 1)))
        self.source = source
        self.snapshot = snapshot
        self.encoding = encoding
        self.lockTimeoutMilliseconds = lockTimeoutMilliseconds
        self.archive = archive
        self.level = level
    }

    /// Runs every task; calls `progress` on the calling thread about every
    /// 200 ms. Returns the results in task order, or throws the first failure.
    func run(progress: () -> Void) throws -> [CopyResult] {
        let order = tasks.indices.sorted { tasks[$0].estimatedBytes > tasks[$1].estimatedBytes }
        let chunkSize = Int(archive.header.chunkSize)
        let group = DispatchGroup()
        for _ in 0..<jobs {
            let queue = BoundedQueue<Item>(capacity: 1)
            let pool = BoundedQueue<ChunkBuffer>(capacity: buffersPerWorker)
            for _ in 0..<buffersPerWorker { try pool.push(ChunkBuffer(capacity: chunkSize)) }
            // `abort` may come from another thread at any time: a queue
            // added after it is closed here, one added before it by `fail`.
            lock.lock()
            queues.append(queue)
            pools.append(pool)
            let failed = failure != nil
            lock.unlock()
            if failed {
                queue.close()
                pool.close()
            }
            group.enter()
            Thread { [self] in
                defer { group.leave() }
                readerLoop(order: order, queue: queue, pool: pool)
            }.start()
            group.enter()
            Thread { [self] in
                defer { group.leave() }
                encoderLoop(queue: queue, pool: pool)
            }.start()
        }
        while group.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
            if cancellation.isCancelled { fail(OperationError.cancelled("The backup")) }
            progress()
        }
        if cancellation.isCancelled { fail(OperationError.cancelled("The backup")) }
        progress()
        lock.lock()
        let failure = self.failure
        lock.unlock()
        if let failure { throw failure }
        return tasks.indices.map { results[$0]! }
    }

    /// The next positions in `order` to copy in one transaction: one task,
    /// or up to `tablesPerTransaction` small ones.
    private func takeBatch(_ order: [Int]) -> [Int]? {
        lock.lock()
        defer { lock.unlock() }
        guard failure == nil, next < tasks.count else { return nil }
        var batch = [order[next]]
        next += 1
        while batch.count < Self.tablesPerTransaction, next < tasks.count,
              tasks[batch[0]].estimatedBytes < Self.smallTableBytes, tasks[order[next]].estimatedBytes < Self.smallTableBytes {
            batch.append(order[next])
            next += 1
        }
        return batch
    }

    /// Stops every worker; `run` throws `error` (unless it failed first).
    func abort(_ error: any Error) { fail(error) }

    private func fail(_ error: any Error) {
        lock.lock()
        if failure == nil { failure = error }
        let (queues, pools) = (self.queues, self.pools)
        lock.unlock()
        // Wake every thread: readers stop at their next chunk, encoders drain.
        for queue in queues { queue.close() }
        for pool in pools { pool.close() }
    }

    private func readerLoop(order: [Int], queue: BoundedQueue<Item>, pool: BoundedQueue<ChunkBuffer>) {
        defer { queue.close() }
        let connection: PostgresConnection
        do {
            connection = try PostgresConnection(source, applicationName: "arca backup")
            try SessionSettings.apply(to: connection, encoding: encoding)
            // A scan that joins another session's scan of the same table
            // starts in its middle: the rows would come in another order,
            // and an incremental backup's comparison would find a change.
            try connection.execute("SET synchronize_seqscans = off", during: "setting up the session")
        } catch let error as PostgresError {
            fail(BackupError.snapshot(error))
            return
        } catch {
            fail(error)
            return
        }
        while let batch = takeBatch(order) {
            do {
                try copy(batch, connection, queue: queue, pool: pool)
            } catch is BoundedQueue<Item>.Closed {
                return  // another worker failed first
            } catch is BoundedQueue<ChunkBuffer>.Closed {
                return
            } catch is RateLimiter.Stopped {
                return  // stopped waiting because the copy failed or was cancelled
            } catch {
                fail(error)
                return
            }
        }
    }

    /// Throttles the reader by `bytes` just read (see `limiter`).
    private func pace(_ bytes: Int) throws(RateLimiter.Stopped) {
        try limiter?.take(bytes) { hasFailed }
    }

    private var hasFailed: Bool {
        lock.lock()
        defer { lock.unlock() }
        return failure != nil
    }

    /// Copies the tasks `batch` (indices into `tasks`) in one transaction.
    private func copy(_ batch: [Int], _ connection: PostgresConnection, queue: BoundedQueue<Item>, pool: BoundedQueue<ChunkBuffer>) throws {
        do {
            try begin(batch.map { tasks[$0] }, connection)
        } catch is OneOfManyLocks {
            // One LOCK of many tables does not say which one it waited for
            // or found gone: taken one at a time, the failure names it (and
            // a lock freed meanwhile lets the backup go on).
            do {
                try connection.execute("ROLLBACK", during: "ending the transaction of \(batch.count) tables")
            } catch {
                throw BackupError.table(Self.tableName(tasks[batch[0]].name), error)
            }
            for index in batch { try copy([index], connection, queue: queue, pool: pool) }
            return
        }
        for index in batch {
            try copyTable(index, connection, queue: queue, pool: pool)
        }
        let subject = batch.count == 1 ? tasks[batch[0]].name : "\(batch.count) tables"
        do {
            try connection.execute("COMMIT", during: "ending the transaction of \(subject)")
        } catch {
            throw BackupError.table(Self.tableName(tasks[batch[batch.count - 1]].name), error)
        }
    }

    /// One task's COPY through the chunk buffers into the encoder's queue.
    private func copyTable(_ index: Int, _ connection: PostgresConnection, queue: BoundedQueue<Item>, pool: BoundedQueue<ChunkBuffer>) throws {
        let task = tasks[index]
        lock.lock(); running.append(task.name); lock.unlock()
        defer { lock.lock(); running.removeAll { $0 == task.name }; lock.unlock() }
        do {
            guard var buffer = pool.pop() else { throw BoundedQueue<ChunkBuffer>.Closed() }
            let rows = try connection.copyOut(task.sql, during: "COPY of \(task.name)") { row in
                var remaining = row
                while !remaining.isEmpty {
                    let taken = buffer.fill(from: remaining)
                    remaining = UnsafeRawBufferPointer(rebasing: remaining[taken...])
                    if buffer.isFull {
                        let read = buffer.count
                        count(rawBytes: UInt64(read))
                        try queue.push(.chunk(task: index, buffer))
                        try pace(read)
                        guard let fresh = pool.pop() else { throw BoundedQueue<Item>.Closed() }
                        buffer = fresh
                    }
                }
            }
            let read = buffer.count
            count(rawBytes: UInt64(read))
            if read > 0 {
                try queue.push(.chunk(task: index, buffer))
            } else {
                try pool.push(buffer)
            }
            try queue.push(.end(task: index, rows: rows))
            try pace(read)
        } catch let error as BoundedQueue<Item>.Closed {
            throw error
        } catch let error as RateLimiter.Stopped {
            throw error
        } catch let error as BoundedQueue<ChunkBuffer>.Closed {
            throw error
        } catch let error as RepositoryError {
            throw error
        } catch let error where Self.isLockTimeout(error) {
            throw BackupError.lockTimeout(Self.tableName(task.name), milliseconds: lockTimeoutMilliseconds)
        } catch let error as PostgresError where error.sqlState == "42703" {
            // The column list comes from the snapshot's catalog; COPY
            // resolves it in the current one, where a column is gone.
            throw BackupError.tableChanged(Self.tableName(task.name), .columnDroppedOrRenamed)
        } catch {
            throw BackupError.table(Self.tableName(task.name), error)
        }
    }

    /// A lock of several tables timed out, or found one gone.
    private struct OneOfManyLocks: Error {}

    /// Starts a transaction in the backup's snapshot, waits for the locks
    /// of `batch`'s tables and refuses a table changed since the snapshot,
    /// in one round trip. Names are looked up in the current catalog once
    /// the locks are granted; the snapshot's `relfilenode` against the
    /// current file tells a rewrite (TRUNCATE, a rewriting ALTER TABLE),
    /// which an older snapshot would read as an empty table.
    private func begin(_ batch: [CopyTask], _ connection: PostgresConnection) throws {
        let subject = batch.count == 1 ? Self.tableName(batch[0].name) : "\(batch.count) tables"
        let check: QueryResult
        do {
            check = try connection.execute(
                """
                BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
                SET TRANSACTION SNAPSHOT \(SQLIdentifier.literal(snapshot));
                SET LOCAL row_security = off;
                SET LOCAL lock_timeout = \(lockTimeoutMilliseconds);
                LOCK TABLE ONLY \(batch.map(\.quotedTable).joined(separator: ", ")) IN ACCESS SHARE MODE;
                \(Catalog.changesSinceSnapshotQuery(batch.map { ($0.oid, $0.quotedTable) }))
                """, during: "locking \(subject) in the backup's snapshot")
        } catch let error where Self.isLockTimeout(error) {
            if batch.count > 1 { throw OneOfManyLocks() }
            throw BackupError.lockTimeout(subject, milliseconds: lockTimeoutMilliseconds)
        } catch let error as PostgresError where error.sqlState == "42P01" {
            // The lock waited for a DROP or RENAME to commit; the name is
            // looked up again once the lock is granted, and is gone.
            if batch.count > 1 { throw OneOfManyLocks() }
            throw BackupError.tableChanged(subject, .droppedOrRenamed)
        } catch let error as PostgresError {
            // A lost connection is this table's copy failing, as in COPY;
            // anything else is the snapshot that could not be imported.
            if case .connectionLost = error { throw BackupError.table(subject, error) }
            throw BackupError.snapshot(error)
        }
        let changes = try Catalog.changesSinceSnapshot(check, expected: batch.count)
        for task in batch {
            switch changes[task.oid] {
            case nil: continue
            case .replaced: throw BackupError.tableChanged(Self.tableName(task.name), .droppedOrRenamed)
            case .rewritten: throw BackupError.tableChanged(Self.tableName(task.name), .rewritten)
            }
        }
    }

    private func encoderLoop(queue: BoundedQueue<Item>, pool: BoundedQueue<ChunkBuffer>) {
        let encoder = archive.makeEncoder(level: level)
        var streams: [Int: StreamEncoder] = [:]
        var hashers: [Int: StreamHasher] = [:]
        while let item = queue.pop() {
            do {
                switch item {
                case .chunk(let index, let buffer) where tasks[index].digestOnly:
                    let hasher = hashers[index] ?? StreamHasher()
                    hashers[index] = hasher
                    hasher.update(buffer.bytes)
                    buffer.reset()
                    try pool.push(buffer)
                case .chunk(let index, let buffer):
                    let stream = streams[index] ?? StreamEncoder(archive: archive, encoder: encoder, stream: tasks[index].stream)
                    streams[index] = stream
                    try stream.encode(buffer.bytes)
                    buffer.reset()
                    try pool.push(buffer)
                case .end(let index, let rows):
                    let summary = tasks[index].digestOnly
                        ? (hashers.removeValue(forKey: index) ?? StreamHasher()).finish()
                        : (streams.removeValue(forKey: index)
                            ?? StreamEncoder(archive: archive, encoder: encoder, stream: tasks[index].stream)).finish()
                    lock.lock()
                    results[index] = CopyResult(rows: rows, summary: summary)
                    tasksDone += 1
                    lock.unlock()
                }
            } catch is BoundedQueue<ChunkBuffer>.Closed {
                return
            } catch {
                fail(error)
                return
            }
        }
    }

    private func count(rawBytes: UInt64) {
        lock.lock()
        rawBytesRead += rawBytes
        lock.unlock()
    }

    /// A consistent view for progress reports.
    func status() -> (rawBytes: UInt64, tasksDone: Int, running: [String]) {
        lock.lock()
        defer { lock.unlock() }
        return (rawBytesRead, tasksDone, running)
    }

    static func isLockTimeout(_ error: any Error) -> Bool {
        (error as? PostgresError)?.sqlState == "55P03"
    }

    /// `public.x part 2/4` → `public.x`.
    static func tableName(_ name: String) -> String {
        guard let range = name.range(of: " part ", options: .backwards) else { return name }
        return String(name[..<range.lowerBound])
    }
}
