import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A pipe for one child process's standard stream, both ends closed on
/// exec: the child gets only the end it is given (Process copies it onto
/// 0, 1 or 2, and the copy is inherited). Foundation's `Pipe` leaves its
/// ends inheritable, so every process started meanwhile on another thread
/// kept them open too: a `pg_dump --version` then reached the end of its
/// output only when a long-lived sibling (a pg_restore, a test's server)
/// exited. The caller closes the child's end once the child runs.
public struct ChildPipe: @unchecked Sendable {
    public let reading: FileHandle
    public let writing: FileHandle

    public init() throws {
        var ends: [Int32] = [-1, -1]
        guard systemPipe2(&ends, O_CLOEXEC) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EMFILE) }
        reading = FileHandle(fileDescriptor: ends[0], closeOnDealloc: true)
        writing = FileHandle(fileDescriptor: ends[1], closeOnDealloc: true)
    }
}

/// glibc's pipe2(2), which the Glibc module does not export (it is a GNU
/// extension): creating both ends with the flag leaves no moment in which
/// another thread's spawn could inherit them.
@_silgen_name("pipe2")
private func systemPipe2(_ ends: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32
