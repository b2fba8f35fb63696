import COpenSSL

/// An incremental MD5 or SHA-256 over OpenSSL's EVP interface. Owns its
/// `EVP_MD_CTX` and frees it when the value goes away.
public final class Digest {
    public enum Algorithm: String, Sendable {
        case md5
        case sha256

        var evp: OpaquePointer? {
            switch self {
            case .md5: EVP_md5()
            case .sha256: EVP_sha256()
            }
        }

        public var length: Int {
            switch self {
            case .md5: 16
            case .sha256: 32
            }
        }
    }

    public let algorithm: Algorithm
    private let context: OpaquePointer

    public init(_ algorithm: Algorithm) {
        self.algorithm = algorithm
        // Allocation failure here means the process is out of memory; nothing
        // sensible can continue.
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed: out of memory") }
        self.context = context
        precondition(EVP_DigestInit_ex(context, algorithm.evp, nil) == 1, "EVP_DigestInit_ex(\(algorithm)) failed")
    }

    private init(copying other: Digest) {
        algorithm = other.algorithm
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed: out of memory") }
        self.context = context
        precondition(EVP_MD_CTX_copy_ex(context, other.context) == 1, "EVP_MD_CTX_copy_ex failed")
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        precondition(EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) == 1, "EVP_DigestUpdate failed")
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of everything so far. The context stays usable: finishing
    /// works on a copy, so a running whole-file digest can report the digest
    /// of its prefix and continue.
    public func finish() -> [UInt8] {
        let copy = Digest(copying: self)
        var output = [UInt8](repeating: 0, count: algorithm.length)
        var length: UInt32 = 0
        output.withUnsafeMutableBufferPointer { buffer in
            precondition(EVP_DigestFinal_ex(copy.context, buffer.baseAddress, &length) == 1, "EVP_DigestFinal_ex failed")
        }
        precondition(Int(length) == algorithm.length)
        return output
    }

    public static func hash(_ algorithm: Algorithm, _ bytes: [UInt8]) -> [UInt8] {
        let digest = Digest(algorithm)
        digest.update(bytes)
        return digest.finish()
    }
}

/// MD5 and SHA-256 of one byte stream, updated together.
public final class StreamDigests {
    public let md5 = Digest(.md5)
    public let sha256 = Digest(.sha256)

    public init() {}

    public func update(_ bytes: UnsafeRawBufferPointer) {
        md5.update(bytes)
        sha256.update(bytes)
    }

    public func finish() -> (md5: String, sha256: String) {
        (Hex.encode(md5.finish()), Hex.encode(sha256.finish()))
    }
}

public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var characters = [UInt8]()
        characters.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            characters.append(digits[Int(byte >> 4)])
            characters.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: characters, as: UTF8.self)
    }

    /// Lowercase or uppercase hex to bytes; nil when the text is not hex.
    public static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = value(utf8[index]), let low = value(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func value(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
