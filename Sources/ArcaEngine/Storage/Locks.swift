import ArcaFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An advisory lock on a file (`flock`). The kernel releases it when the
/// process dies, so a crashed or killed `arca` never holds a lock forever.
public final class FileLock {
    let path: String
    private var descriptor: Int32

    public enum Mode { case shared, exclusive }

    /// Takes the lock without waiting; nil when another process holds it.
    public init?(path: String, mode: Mode, create: Bool = true) throws {
        self.path = path
        descriptor = open(path, (create ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw RepositoryError.fromErrno("open", path) }
        if flock(descriptor, (mode == .exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            let code = errno
            Glibc.close(descriptor)
            descriptor = -1
            if code == EWOULDBLOCK { return nil }
            throw RepositoryError.fromErrno("lock", path, code)
        }
    }

    deinit { release() }

    /// Replaces the file's contents (who holds the lock, for `status`).
    public func write(_ text: String) {
        guard descriptor >= 0 else { return }
        _ = ftruncate(descriptor, 0)
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
    }

    public func release() {
        guard descriptor >= 0 else { return }
        flock(descriptor, LOCK_UN)
        Glibc.close(descriptor)
        descriptor = -1
    }

    /// The file's contents, readable whether or not anyone holds the lock.
    public static func contents(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether some process holds the lock now.
    public static func isHeld(_ path: String) -> Bool {
        guard FileSystem.exists(path) else { return false }
        guard let probe = try? FileLock(path: path, mode: .exclusive, create: false) else { return true }
        probe.release()
        return false
    }
}

/// Who holds the repository's operation lock: written into the lock file.
public struct LockHolder: Codable, Sendable {
    public var pid: Int32
    public var operation: String
    public var since: String

    public init(pid: Int32, operation: String, since: String) {
        self.pid = pid
        self.operation = operation
        self.since = since
    }
}

extension Repository {
    var lockPath: String { root + "/arca.lock" }

    /// One writer per repository: backups and cleanups take this lock. A
    /// second one gets `.alreadyRunning` at once instead of waiting. Taking
    /// it also proves no other writer is alive, so leftovers in `temp/` are
    /// from a crashed run and are removed.
    public func lockForWriting(_ operation: String) throws -> FileLock {
        try prepare()
        guard let lock = try FileLock(path: lockPath, mode: .exclusive) else {
            let holder = FileLock.contents(lockPath).flatMap { try? JSONDecoder().decode(LockHolder.self, from: Data($0.utf8)) }
            throw OperationError.alreadyRunning(holder)
        }
        let holder = LockHolder(pid: getpid(), operation: operation, since: Manifest.timestamp(Date()))
        if let json = try? JSONEncoder().encode(holder) { lock.write(String(decoding: json, as: UTF8.self)) }
        removeStaleTemporaryFiles()
        return lock
    }

    /// Files in `temp/` left by a process that died mid-write. Only called
    /// while holding the repository lock.
    @discardableResult
    public func removeStaleTemporaryFiles() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: temporaryDirectory)) ?? []
        for name in names { FileSystem.remove("\(temporaryDirectory)/\(name)") }
        return names
    }

    /// Who holds the repository lock, when someone does.
    public var lockHolder: LockHolder? {
        guard FileLock.isHeld(lockPath) else { return nil }
        return FileLock.contents(lockPath).flatMap { try? JSONDecoder().decode(LockHolder.self, from: Data($0.utf8)) }
    }

    /// A restore or drill reading an archive holds a shared lock on it;
    /// cleanup never deletes an archive it cannot lock exclusively.
    func lockForReading(_ archivePath: String) throws -> FileLock? {
        try FileLock(path: archivePath, mode: .shared, create: false)
    }
}

/// Failures of the service operations (locking, schedules, cleanup, init).
public enum OperationError: Error, Sendable, CustomStringConvertible {
    case alreadyRunning(LockHolder?)
    /// A backup a restore is reading: it cannot be removed now.
    case inUse(String)
    case cancelled(String)
    /// There is no backup to act on (`message` says where it looked).
    case noBackup(String)
    /// Every id for that second is taken in that place.
    case noFreeID(place: String, date: Date)
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case .alreadyRunning(let holder?):
            "Another \(holder.operation) is already running on this repository (pid \(holder.pid), since \(holder.since)). Wait for it to finish; one writer at a time keeps the repository consistent."
        case .alreadyRunning(nil):
            "Another backup or cleanup is already running on this repository. Wait for it to finish."
        case .cancelled(let what):
            "\(what) was cancelled (signal received); nothing was left half-written."
        case .inUse(let id):
            "Backup \(id) is being read by a restore; it was not removed. Try again when the restore has finished."
        case .noFreeID(let place, let date):
            "No free backup id in \(place) for \(Manifest.timestamp(date)): 8 new ids in a row were taken, which random ids make all but impossible. Check what writes into \(place); then try again."
        case .noBackup(let message), .invalidConfiguration(let message):
            message
        }
    }
}
