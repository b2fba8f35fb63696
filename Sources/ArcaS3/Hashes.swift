import ArcaFormat
import NIOCore

/// The hashes SigV4 and S3 need, over ArcaFormat's libcrypto wrappers.
enum Hashes {
    static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] { hash(.sha256, bytes) }
    static func md5(_ bytes: UnsafeRawBufferPointer) -> [UInt8] { hash(.md5, bytes) }
    static func sha256(_ bytes: some Collection<UInt8>) -> [UInt8] { Digest.hash(.sha256, Array(bytes)) }
    static func sha256(_ buffer: ByteBuffer) -> [UInt8] { buffer.withUnsafeReadableBytes { sha256($0) } }
    static func md5(_ buffer: ByteBuffer) -> [UInt8] { buffer.withUnsafeReadableBytes { md5($0) } }
    static func hmacSHA256(key: [UInt8], _ string: String) -> [UInt8] { HMACSHA256.authenticate(Array(string.utf8), key: key) }
    static func hex(_ bytes: [UInt8]) -> String { Hex.encode(bytes) }

    private static func hash(_ algorithm: Digest.Algorithm, _ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        let digest = Digest(algorithm)
        digest.update(bytes)
        return digest.finish()
    }
}
