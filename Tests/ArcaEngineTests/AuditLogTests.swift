import Foundation
import Glibc
import Testing
@testable import ArcaEngine
import ArcaFormat

// MARK: - Helpers

/// Each test gets its own directory, removed afterwards.
private func withTemporaryDirectory(_ body: (String) throws -> Void) throws {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("arca-audit-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try body(directory)
}

private func makeLog(_ path: String) -> AuditLog {
    AuditLog(path: path, sha256: testSHA256)
}

private func backupEvent(_ number: Int, action: String = "backup", time: String = "2024-12-01T14:05:30.123Z") -> AuditEvent {
    AuditEvent(time: time, actor: "cli:postgres", action: action, target: "backup-\(number)", outcome: .success)
}

/// The file's lines without their newlines; a missing final newline is kept visible as an unterminated last element.
private func readLines(_ path: String) throws -> [[UInt8]] {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { Array($0) }
    if lines.last == [] { lines.removeLast() }
    return lines
}

private func writeLines(_ lines: [[UInt8]], to path: String) throws {
    try Data(lines.map { $0 + [UInt8(ascii: "\n")] }.joined()).write(to: URL(fileURLWithPath: path))
}

private func encodedLine(_ record: AuditRecord) throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return Array(try encoder.encode(record))
}

/// Writes five records, lets `tamper` change the lines, and verifies the result.
private func verifyTampered(_ tamper: (inout [[UInt8]]) throws -> Void) throws -> AuditVerification {
    var verification: AuditVerification?
    try withTemporaryDirectory { directory in
        let path = directory + "/audit.log"
        let log = makeLog(path)
        for number in 1...5 { try log.append(backupEvent(number)) }
        var lines = try readLines(path)
        try tamper(&lines)
        try writeLines(lines, to: path)
        verification = try log.verify()
    }
    return try #require(verification)
}

private func expectBroken(_ verification: AuditVerification, line: Int, _ keyword: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(!verification.intact, sourceLocation: sourceLocation)
    #expect(verification.line == line, "\(verification.problem ?? "")", sourceLocation: sourceLocation)
    #expect(verification.records == line - 1, sourceLocation: sourceLocation)
    #expect(verification.problem?.contains(keyword) == true, "\(verification.problem ?? "nil")", sourceLocation: sourceLocation)
}

/// Collects errors from plain threads.
private final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [any Error] = []
    func add(_ error: any Error) { lock.withLock { errors.append(error) } }
    var all: [any Error] { lock.withLock { errors } }
}

// MARK: - Round trip and format


@Test func timestampIsRFC3339UTCWithMilliseconds() {
    #expect(AuditEvent.timestamp(Date(timeIntervalSince1970: 1_733_061_930.125)) == "2024-12-01T14:05:30.125Z")
    #expect(AuditEvent.date(fromTimestamp: "2024-12-01T14:05:30.125Z") == Date(timeIntervalSince1970: 1_733_061_930.125))
    #expect(AuditEvent.date(fromTimestamp: "2024-12-01T14:05:30Z") == Date(timeIntervalSince1970: 1_733_061_930))
}

@Test func appendedEventsReadBackUnchanged() throws {
    try withTemporaryDirectory { directory in
        let log = makeLog(directory + "/audit.log")
        let full = AuditEvent(
            time: "2024-12-01T14:05:30.123Z", actor: "token:ops-dashboard", clientIP: "10.0.0.7", action: "restore",
            target: "20241201T140518Z", outcome: .failure, durationSeconds: 12.5,
            error: "disk full: \"/var/lib\"\nsecond line, ünïcödé", details: ["bytes": "1048576", "tables": "12"])
        let minimal = AuditEvent(time: "2024-12-01T14:06:00.000Z", actor: "cli:root", action: "list", outcome: .success)
        try log.append(full)
        try log.append(minimal)

        let records = try log.records()
        #expect(records.map(\.event) == [full, minimal])
        #expect(records.map(\.sequence) == [1, 2])
    }
}

@Test func sequencesAndHashesFormAChainOfCanonicalLines() throws {
    try withTemporaryDirectory { directory in
        let path = directory + "/audit.log"
        let log = makeLog(path)
        for number in 1...4 { try log.append(backupEvent(number)) }

        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(raw.last == UInt8(ascii: "\n"))
        let lines = try readLines(path)
        let records = try log.records()
        #expect(lines.count == 4)
        #expect(records.map(\.sequence) == [1, 2, 3, 4])
        #expect(records[0].previousHash == String(repeating: "0", count: 64))
        for index in 1..<4 {
            #expect(records[index].previousHash == Hex.encode(testSHA256(lines[index - 1])))
        }
        // Each line is exactly the sorted-keys encoding of its record, event nested.
        for (line, record) in zip(lines, records) {
            #expect(line == (try encodedLine(record)))
        }
        #expect(String(decoding: lines[0], as: UTF8.self) == #"{"event":{"action":"backup","actor":"cli:postgres","outcome":"success","target":"backup-1","time":"2024-12-01T14:05:30.123Z"},"previousHash":"0000000000000000000000000000000000000000000000000000000000000000","sequence":1}"#)
    }
}

@Test func recordsFilterBySinceAndAction() throws {
    try withTemporaryDirectory { directory in
        let log = makeLog(directory + "/audit.log")
        try log.append(backupEvent(1, action: "backup", time: "2024-12-01T10:00:00.000Z"))
        try log.append(backupEvent(2, action: "verify", time: "2024-12-01T11:00:00.000Z"))
        try log.append(backupEvent(3, action: "backup", time: "2024-12-01T12:00:00.500Z"))
        let elevenOClock = try #require(AuditEvent.date(fromTimestamp: "2024-12-01T11:00:00.000Z"))

        #expect(try log.records().count == 3)
        #expect(try log.records(since: elevenOClock).map(\.sequence) == [2, 3])   // inclusive
        #expect(try log.records(action: "backup").map(\.sequence) == [1, 3])
        #expect(try log.records(since: elevenOClock, action: "backup").map(\.sequence) == [3])
        #expect(try log.records(action: "restore").isEmpty)
    }
}

@Test func missingOrEmptyFileIsIntactWithNoRecords() throws {
    try withTemporaryDirectory { directory in
        let path = directory + "/audit.log"
        let log = makeLog(path)
        #expect(try log.verify() == AuditVerification(intact: true, records: 0))
        #expect(try log.records().isEmpty)
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        #expect(try log.verify() == AuditVerification(intact: true, records: 0))
        try log.append(backupEvent(1))
        #expect(try log.records().map(\.sequence) == [1])
    }
}

@Test func untouchedLogVerifiesIntact() throws {
    let verification = try verifyTampered { _ in }
    #expect(verification == AuditVerification(intact: true, records: 5))
}

@Test func fileIsCreatedWithMode0600() throws {
    try withTemporaryDirectory { directory in
        let path = directory + "/audit.log"
        try makeLog(path).append(backupEvent(1))
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
    }
}

// MARK: - Tamper detection

@Test(arguments: [1, 3, 4])
func editingOneByteOfALineIsLocated(line: Int) throws {
    let verification = try verifyTampered { lines in
        let index = try #require(lines[line - 1].firstIndex(of: UInt8(ascii: "k")))   // the k in "backup"
        lines[line - 1][index] = UInt8(ascii: "K")
    }
    expectBroken(verification, line: line, "edited")
    #expect(verification.problem?.contains("sequence \(line)") == true)
}

@Test func editingAPreviousHashIsLocated() throws {
    let verification = try verifyTampered { lines in
        let field = Array(#""previousHash":""#.utf8)
        let start = try #require(lines[2].indices.first { lines[2][$0...].starts(with: field) })
        let digit = start + field.count
        lines[2][digit] = lines[2][digit] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
    }
    expectBroken(verification, line: 3, "edited")
}

@Test(arguments: [1, 3, 4])
func deletingALineIsLocated(line: Int) throws {
    let verification = try verifyTampered { lines in lines.remove(at: line - 1) }
    expectBroken(verification, line: line, "removed")
    #expect(verification.problem?.contains("sequence \(line) is missing") == true)
}

@Test func swappingTwoLinesIsLocated() throws {
    let verification = try verifyTampered { lines in lines.swapAt(1, 2) }
    expectBroken(verification, line: 2, "reordered")
}

@Test func movingALineFurtherDownIsLocated() throws {
    let verification = try verifyTampered { lines in lines.insert(lines.remove(at: 1), at: 3) }
    expectBroken(verification, line: 2, "reordered")
}

@Test func insertingAForgedLineIsLocated() throws {
    let verification = try verifyTampered { lines in
        let forged = AuditRecord(sequence: 3, previousHash: String(repeating: "a", count: 64), event: backupEvent(99, action: "restore"))
        lines.insert(try encodedLine(forged), at: 2)
    }
    expectBroken(verification, line: 3, "inserted")
}

@Test func insertingAForgedLineWithAValidHashIsLocated() throws {
    let verification = try verifyTampered { lines in
        // The forger chains the fake record correctly onto line 2; line 4 (the real sequence 3) then exposes it.
        let forged = AuditRecord(sequence: 3, previousHash: Hex.encode(testSHA256(lines[1])), event: backupEvent(99, action: "restore"))
        lines.insert(try encodedLine(forged), at: 2)
    }
    expectBroken(verification, line: 3, "inserted")
}

@Test func truncatedLastLineIsLocated() throws {
    try withTemporaryDirectory { directory in
        let path = directory + "/audit.log"
        let log = makeLog(path)
        for number in 1...3 { try log.append(backupEvent(number)) }
        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        try raw.dropLast(20).write(to: URL(fileURLWithPath: path))   // cut mid-line, as a crash or `truncate` would

        expectBroken(try log.verify(), line: 3, "truncated")
        // An incomplete line blocks further appends and listing rather than being built upon.
        #expect(throws: AuditError.self) { try log.append(backupEvent(4)) }
        #expect(throws: AuditError.self) { try log.records() }
    }
}

@Test func missingFinalNewlineIsLocated() throws {
    try withTemporaryDirectory { directory in
        let path = directory + "/audit.log"
        let log = makeLog(path)
        for number in 1...3 { try log.append(backupEvent(number)) }
        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        try raw.dropLast(1).write(to: URL(fileURLWithPath: path))
        expectBroken(try log.verify(), line: 3, "no trailing newline")
    }
}

@Test func appendedGarbageIsLocated() throws {
    let verification = try verifyTampered { lines in lines.append(Array("rm -rf / # garbage".utf8)) }
    expectBroken(verification, line: 6, "unparsable")
}

@Test func overlongLineIsRejectedWithItsLineNumber() throws {
    try withTemporaryDirectory { directory in
        let path = directory + "/audit.log"
        let log = makeLog(path)
        for number in 1...2 { try log.append(backupEvent(number)) }
        var lines = try readLines(path)
        lines.append([UInt8](repeating: UInt8(ascii: "x"), count: AuditLog.maxLineBytes + 1))
        try writeLines(lines, to: path)

        let error = #expect(throws: AuditError.self) { try log.records() }
        #expect(error?.description.contains("Line 3") == true)
        expectBroken(try log.verify(), line: 3, "longer than 1 MiB")
    }
}

// MARK: - Concurrency and failures

@Test func concurrentAppendsFromManyThreadsKeepOneChain() throws {
    try withTemporaryDirectory { directory in
        let path = directory + "/audit.log"
        let threads = 8
        let eventsPerThread = 50
        let errors = ErrorBox()
        let finished = DispatchGroup()
        for thread in 0..<threads {
            finished.enter()
            // Plain threads, each with its own AuditLog (its own file descriptors), like separate processes.
            Thread {
                let log = makeLog(path)
                for number in 0..<eventsPerThread {
                    do { try log.append(backupEvent(number, action: "thread-\(thread)")) } catch { errors.add(error) }
                }
                finished.leave()
            }.start()
        }
        finished.wait()

        #expect(errors.all.isEmpty, "\(errors.all)")
        let log = makeLog(path)
        #expect(try log.verify() == AuditVerification(intact: true, records: threads * eventsPerThread))
        let records = try log.records()
        #expect(records.map(\.sequence) == Array(1...UInt64(threads * eventsPerThread)))
        for thread in 0..<threads {
            // Every event of every thread is there exactly once, in the order the thread wrote it.
            let targets = records.filter { $0.event.action == "thread-\(thread)" }.map { $0.event.target }
            #expect(targets == (0..<eventsPerThread).map { "backup-\($0)" })
        }
    }
}

@Test func appendInMissingDirectoryThrowsAClearError() throws {
    try withTemporaryDirectory { directory in
        let path = directory + "/no-such-directory/audit.log"
        let error = #expect(throws: AuditError.self) { try makeLog(path).append(backupEvent(1)) }
        #expect(error?.description.contains(path) == true)
        #expect(error?.description.contains("No such file or directory") == true)
    }
}

@Test func appendToADirectoryThrowsAClearError() throws {
    try withTemporaryDirectory { directory in
        let path = directory + "/audit.log"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        let error = #expect(throws: AuditError.self) { try makeLog(path).append(backupEvent(1)) }
        #expect(error?.description.contains(path) == true)
        #expect(error?.description.contains("Is a directory") == true)
        #expect(throws: AuditError.self) { try makeLog(path).verify() }
    }
}

/// The SHA-256 the service passes: OpenSSL's, through ArcaFormat.
private let testSHA256: @Sendable ([UInt8]) -> [UInt8] = { Digest.hash(.sha256, $0) }
