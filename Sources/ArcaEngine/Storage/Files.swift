import ArcaFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What can go wrong with files in a repository. Messages name the path and
/// say what to do; `errno` is kept for the disk-full case people must act on.
public enum RepositoryError: Error, Sendable, CustomStringConvertible {
    case io(operation: String, path: String, errno: Int32)
    case diskFull(path: String)
    case backupNotFound(String, repository: String)
    case invalidReference(String)
    case notARegularFile(String)
    /// A small file of the repository (a sidecar, a record, the passphrase
    /// salt) that is too large or does not hold what it should.
    case malformedFile(path: String, detail: String)
    /// A folder of the repository that is a symbolic link.
    case symbolicLink(String)

    public var description: String {
        switch self {
        case .io(let operation, let path, let code):
            "Cannot \(operation) \(path): \(String(cString: strerror(code)))."
        case .diskFull(let path):
            "No space left on the device holding \(path). Free space or point --repo at a larger disk; earlier backups are untouched."
        case .backupNotFound(let reference, let repository):
            "No backup \(reference) in \(repository). `arca list --repo \(repository)` shows the backups there."
        case .invalidReference(let reference):
            "\"\(reference.debugDescription.dropFirst().dropLast())\" is neither a backup id (backup_YYYYMMDD_HHMMSS_mmmrrrrr) nor a path to an .arca file."
        case .notARegularFile(let path):
            "\(path) is not a regular file (a directory or a device?). Give the path of an .arca archive."
        case .symbolicLink(let path):
            "\(path) is a symbolic link; the repository's own folders (local/, temp/) must be real folders, so that nothing outside the repository is written or has its mode changed. Replace the link with a folder (mode 0700)."
        case .malformedFile(let path, let detail):
            "\(path) is invalid: \(detail). It was altered or damaged; remove it (or restore it from a copy) and try again."
        }
    }

    static func fromErrno(_ operation: String, _ path: String, _ code: Int32 = errno) -> RepositoryError {
        code == ENOSPC || code == EDQUOT ? .diskFull(path: path) : .io(operation: operation, path: path, errno: code)
    }
}

/// An archive being written to a file descriptor. Owns the descriptor.
public final class FileSink: ByteSink {
    public let path: String
    private var descriptor: Int32

    /// Creates `path` exclusively with mode 0600: an existing file is never overwritten.
    public init(creatingExclusively path: String) throws {
        self.path = path
        descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw RepositoryError.fromErrno("create", path) }
    }

    deinit { if descriptor >= 0 { Glibc.close(descriptor) } }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw RepositoryError.fromErrno("write", path)
            }
            offset += written
        }
    }

    /// Closes without flushing, for a file being thrown away: its space is
    /// free once it is also removed, not when the last reference goes.
    /// Only once no thread writes to it. Does nothing when closed already.
    public func close() {
        guard descriptor >= 0 else { return }
        Glibc.close(descriptor)
        descriptor = -1
    }

    /// Flushes to stable storage and closes; the file is complete on return.
    public func syncAndClose() throws {
        guard fsync(descriptor) == 0 else { throw RepositoryError.fromErrno("fsync", path) }
        let code = Glibc.close(descriptor)
        descriptor = -1
        guard code == 0 else { throw RepositoryError.fromErrno("close", path) }
    }
}

/// An archive read by offset with `pread`. Owns the descriptor.
public final class FileSource: ByteSource {
    public let path: String
    public let size: UInt64
    private let descriptor: Int32

    public init(path: String) throws {
        self.path = path
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw errno == ENOENT ? RepositoryError.backupNotFound(path, repository: (path as NSString).deletingLastPathComponent)
                : RepositoryError.fromErrno("open", path)
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw RepositoryError.fromErrno("stat", path) }
        guard status.st_mode & S_IFMT == S_IFREG else {
            Glibc.close(descriptor)
            throw RepositoryError.notARegularFile(path)
        }
        size = UInt64(status.st_size)
    }

    deinit { Glibc.close(descriptor) }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try FileSystem.read(descriptor, at: offset, into: buffer, size: size, what: "a read", operation: "read", path: path)
    }
}

/// Small POSIX helpers with errors that name the path.
enum FileSystem {
    /// Fills `buffer` from `descriptor` at `offset` (pread, retried when
    /// interrupted); a file of `size` bytes that ends first is `truncated`.
    static func read(
        _ descriptor: Int32, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, size: UInt64,
        what: String, operation: String, path: String
    ) throws {
        var done = 0
        while done < buffer.count {
            let count = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if count < 0 {
                if errno == EINTR { continue }
                throw RepositoryError.fromErrno(operation, path)
            }
            if count == 0 {
                throw ArchiveError.truncated(what: what, offset: offset, needed: UInt64(buffer.count), fileSize: size)
            }
            done += count
        }
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Creates `path` (and missing parents) with mode 0700: backups hold a
    /// whole database's rows. An existing folder is used as it is: Arca
    /// changes the mode only of what it creates (`--repo /tmp` must not
    /// make /tmp private), and with `refusingLinks` a symbolic link is
    /// refused rather than followed (the repository's own folders are
    /// never links unless someone swapped them).
    static func makePrivateDirectory(_ path: String, refusingLinks: Bool = false) throws {
        if mkdir(path, 0o700) == 0 {
            // mkdir's mode passes through the umask.
            guard chmod(path, 0o700) == 0 else { throw RepositoryError.fromErrno("chmod", path) }
            return
        }
        switch errno {
        case EEXIST:
            break
        case ENOENT where path.contains("/"):
            try makePrivateDirectory((path as NSString).deletingLastPathComponent)
            try makePrivateDirectory(path, refusingLinks: refusingLinks)
            return
        default:
            throw RepositoryError.fromErrno("create directory", path)
        }
        var status = stat()
        guard lstat(path, &status) == 0 else { throw RepositoryError.fromErrno("inspect", path) }
        if status.st_mode & S_IFMT == S_IFLNK {
            guard !refusingLinks else { throw RepositoryError.symbolicLink(path) }
            guard stat(path, &status) == 0 else { throw RepositoryError.fromErrno("follow the link", path) }
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw RepositoryError.io(operation: "use as a directory", path: path, errno: ENOTDIR)
        }
    }

    static func rename(_ from: String, to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw RepositoryError.fromErrno("rename \(from) to", to) }
    }

    static func remove(_ path: String) {
        unlink(path)
    }

    /// Makes a rename or create in `directory` durable.
    static func syncDirectory(_ directory: String) throws {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw RepositoryError.fromErrno("open", directory) }
        defer { Glibc.close(descriptor) }
        guard fsync(descriptor) == 0 else { throw RepositoryError.fromErrno("fsync", directory) }
    }

    /// Writes a small file atomically: temp file, fsync, rename, directory fsync.
    static func writeAtomically(_ bytes: [UInt8], to path: String, temporaryDirectory: String) throws {
        let temporary = temporaryDirectory + "/." + (path as NSString).lastPathComponent + ".\(getpid()).tmp"
        FileSystem.remove(temporary)
        let sink = try FileSink(creatingExclusively: temporary)
        do {
            try bytes.withUnsafeBytes { try sink.write($0) }
            try sink.syncAndClose()
            try rename(temporary, to: path)
            try syncDirectory((path as NSString).deletingLastPathComponent)
        } catch {
            FileSystem.remove(temporary)
            throw error
        }
    }

    /// The contents of a small file, nil when it does not exist. At most
    /// `limit` bytes are read (and allocated): a larger file is an error,
    /// whatever it claims to be.
    static func readSmallFile(_ path: String, limit: Int) throws -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return nil }
            throw RepositoryError.fromErrno("open", path)
        }
        defer { Glibc.close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        var count = 0
        while count < bytes.count {
            let read = bytes.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + count, $0.count - count) }
            if read < 0, errno == EINTR { continue }
            guard read >= 0 else { throw RepositoryError.fromErrno("read", path) }
            if read == 0 { break }
            count += read
        }
        guard count <= limit else { throw RepositoryError.malformedFile(path: path, detail: "it is larger than \(limit) bytes") }
        return Array(bytes[0..<count])
    }

    static func size(_ path: String) -> UInt64? {
        var status = stat()
        return stat(path, &status) == 0 ? UInt64(status.st_size) : nil
    }
}
