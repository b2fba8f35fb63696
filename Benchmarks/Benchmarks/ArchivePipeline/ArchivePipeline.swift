import ArcaFormat
import Benchmark
import Foundation

/// The chunk pipeline without a database: what one 4 MiB chunk of COPY text
/// costs in each stage, and the whole write path end to end. Throughput is
/// reported as bytes of raw COPY text per second.
let chunkSize = 4 << 20

/// Deterministic COPY-like text: a pgbench_accounts-shaped row repeated with
/// varying numbers, which compresses about as well as real tables do.
let copyText: [UInt8] = {
    var text = [UInt8]()
    text.reserveCapacity(chunkSize)
    var row = 0
    while text.count < chunkSize {
        let line = "\(row)\t\(row % 100_000)\t\(row &* 7919 % 100_000)\tpatient note \(row % 997) " + String(repeating: " ", count: 60) + "\n"
        text.append(contentsOf: line.utf8)
        row += 1
    }
    return Array(text.prefix(chunkSize))
}()

let benchmarks: @Sendable () -> Void = {
    // ARCA_BENCH_SHORT=1 (CI): a few iterations, to prove they build and run.
    let short = ProcessInfo.processInfo.environment["ARCA_BENCH_SHORT"] == "1"
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        scalingFactor: .one,
        maxDuration: short ? .milliseconds(200) : .seconds(2),
        maxIterations: short ? 3 : 200)

    Benchmark("CRC-32C of a 4 MiB chunk") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(copyText.withUnsafeBytes { CRC32C.checksum($0) })
        }
    }

    Benchmark("MD5 + SHA-256 of a 4 MiB chunk") { benchmark in
        let digests = StreamDigests()
        for _ in benchmark.scaledIterations {
            copyText.withUnsafeBytes { digests.update($0) }
        }
        blackHole(digests.finish())
    }

    for level in [1, 3, 6] as [Int32] {
        Benchmark("zstd level \(level) compress a 4 MiB chunk") { benchmark in
            let encoder = ChunkEncoder(maximumRawLength: chunkSize, level: level)
            for _ in benchmark.scaledIterations {
                blackHole(copyText.withUnsafeBytes { encoder.encode($0, stream: 0, sequence: 0).payload.count })
            }
        }
    }

    Benchmark("AES-256-GCM seal a 4 MiB chunk") { benchmark in
        let aes = AESGCM(key: SecureRandom.bytes(32))
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize + AESGCM.tagLength, alignment: 16)
        defer { output.deallocate() }
        let nonce = [UInt8](repeating: 7, count: AESGCM.nonceLength)
        for _ in benchmark.scaledIterations {
            blackHole(copyText.withUnsafeBytes { aes.seal($0, nonce: nonce, associatedData: [1, 2, 3], into: output) })
        }
    }

    for encrypted in [false, true] {
        Benchmark("Write + read back a 64 MiB stream (archive encode/decode\(encrypted ? ", encrypted" : ""))") { benchmark in
            let key = encrypted ? ArchiveKey.generate() : nil
            for _ in benchmark.scaledIterations {
                let reader = try ArchiveReader(source: MemorySource(try writeArchive(key: key)), key: key)
                blackHole(try read(reader, checking: .streamDigests))
            }
        }
    }

    // What a restore reads with (every chunk's CRC and content checksum)
    // against what verify reads with (and each stream's MD5 and SHA-256).
    for (check, name) in [(ArchiveReader.StreamCheck.chunkContent, "chunk checks: restore"), (.streamDigests, "and stream digests: verify")] {
        Benchmark("Read a 64 MiB stream (\(name))") { benchmark in
            let reader = try ArchiveReader(source: MemorySource(try writeArchive(key: nil)))
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try read(reader, checking: check))
            }
        }
    }
}

/// 16 chunks of COPY text written through the archive writer at zstd level
/// 3: the whole write path without a database.
func writeArchive(key: ArchiveKey?) throws -> [UInt8] {
    let sink = MemorySink()
    let header = FileHeader(chunkSize: UInt32(chunkSize), compression: .zstd, compressionLevel: 3, archiveID: .random())
    let writer = try ArchiveWriter(sink: sink, header: header, key: key)
    let stream = StreamWriter(archive: writer, encoder: writer.makeEncoder(level: 3), stream: 0)
    for _ in 0..<16 { try copyText.withUnsafeBytes { try stream.append($0) } }
    let summary = try stream.finish()
    let manifest = Manifest(
        archiveId: header.archiveID.description, backupId: "backup_20241201_140530", startedAt: "", completedAt: "",
        tool: .init(version: "bench"),
        source: .init(database: "bench", serverVersion: "15", serverVersionNumber: 150000, snapshot: "", systemIdentifier: nil, encoding: "UTF8"),
        compression: .init(level: 3), chunkSize: UInt32(chunkSize),
        tables: [.init(schema: "public", name: "t", kind: "table", parent: nil, columns: [],
                       parts: [.init(stream: 0, rows: 0, summary: summary)])],
        sequences: [])
    _ = try writer.finish(manifest: manifest)
    return sink.bytes
}

/// Reads the archive's one table back; returns the bytes read.
func read(_ reader: ArchiveReader, checking check: ArchiveReader.StreamCheck) throws -> Int {
    var total = 0
    try reader.readTable(reader.manifest.tables[0], checking: check) { total += $0.count }
    return total
}
