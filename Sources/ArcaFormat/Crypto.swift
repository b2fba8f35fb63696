import COpenSSL

/// The cryptographic building blocks of encrypted archives (FORMAT.md,
/// "Encryption"), over OpenSSL's libcrypto: AES-256-GCM, HMAC-SHA256, scrypt
/// and the system's random number generator. Nothing here knows about files.

/// Secret bytes: never printed, never in an error message.
public struct SecretBytes: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var description: String { "<\(bytes.count) secret bytes>" }
    public var debugDescription: String { description }
}

public enum SecureRandom {
    /// `count` bytes from OpenSSL's CSPRNG (seeded by the kernel).
    public static func bytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let status = bytes.withUnsafeMutableBytes { RAND_bytes($0.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(count)) }
        // Without randomness no key or nonce is safe; nothing may continue.
        precondition(status == 1, "RAND_bytes failed: the system random number generator is unavailable")
        return bytes
    }
}

public enum HMACSHA256 {
    public static func authenticate(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        // libcrypto refuses a null data pointer even for zero bytes.
        let data = message.isEmpty ? [0] : message
        let result = key.withUnsafeBytes { keyBytes in
            data.withUnsafeBytes { messageBytes in
                output.withUnsafeMutableBytes { out in
                    HMAC(EVP_sha256(), keyBytes.baseAddress, Int32(key.count),
                         messageBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count,
                         out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length)
                }
            }
        }
        precondition(result != nil && length == 32, "HMAC-SHA256 failed")
        return output
    }
}

/// scrypt's cost parameters, stored in an archive so that a reader derives
/// the same key. `log2N` 15, r 8, p 1 takes about 0.1 s and 32 MiB.
public struct ScryptCost: Sendable, Hashable, CustomStringConvertible {
    public var log2N: UInt8
    public var r: UInt32
    public var p: UInt32

    public init(log2N: UInt8, r: UInt32 = 8, p: UInt32 = 1) {
        self.log2N = log2N
        self.r = r
        self.p = p
    }

    public static let standard = ScryptCost(log2N: 15)
    /// What a writer may choose and a reader accepts. The upper bounds are
    /// what a forged key envelope may make a reader spend: memory 128 · r · N
    /// ≤ 64 MiB, and work N · r · p ≤ 2^20 block mixes, about 1 s of one core
    /// (SECURITY.md has the measurement).
    public static let log2NRange: ClosedRange<UInt8> = 10...16
    public static let rRange: ClosedRange<UInt32> = 1...8
    public static let pRange: ClosedRange<UInt32> = 1...2
    /// The costliest parameters accepted: the bound on a forged envelope.
    public static let maximum = ScryptCost(log2N: log2NRange.upperBound, r: rRange.upperBound, p: pRange.upperBound)
    public static let memoryLimit: UInt64 = 64 << 20
    public static let workLimit: UInt64 = 1 << 20

    public var isAcceptable: Bool {
        Self.log2NRange.contains(log2N) && Self.rRange.contains(r) && Self.pRange.contains(p)
            && memory <= Self.memoryLimit && work <= Self.workLimit
    }

    /// scrypt's large buffer, 128 · r · N bytes. Computed for any stored
    /// parameters without trapping (saturates), so an error can report it.
    public var memory: UInt64 { Self.saturatingProduct([128, UInt64(r), Self.n(log2N)]) }
    /// N · r · p: how many times scrypt mixes a 128-byte block, in proportion to its CPU time.
    public var work: UInt64 { Self.saturatingProduct([Self.n(log2N), UInt64(r), UInt64(p)]) }

    private static func n(_ log2N: UInt8) -> UInt64 { log2N < 64 ? UInt64(1) << log2N : .max }

    private static func saturatingProduct(_ factors: [UInt64]) -> UInt64 {
        factors.reduce(1) { product, factor in
            let (result, overflow) = product.multipliedReportingOverflow(by: factor)
            return overflow ? .max : result
        }
    }

    public var description: String { "scrypt N=2^\(log2N) r=\(r) p=\(p)" }
}

public enum Scrypt {
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The parameters are outside `ScryptCost`'s bounds; nothing was run.
        case unacceptableCost(ScryptCost)
        /// libcrypto refused or failed (out of memory).
        case failed(ScryptCost)

        public var description: String {
            switch self {
            case .unacceptableCost(let cost):
                "The passphrase cost \(cost) is outside the accepted range (N from 2^\(ScryptCost.log2NRange.lowerBound) to 2^\(ScryptCost.log2NRange.upperBound), r \(ScryptCost.rRange), p \(ScryptCost.pRange))."
            case .failed(let cost):
                "scrypt failed for \(cost): the system is probably out of memory. Free memory and try again."
            }
        }
    }

    /// Derives `length` bytes; refuses parameters outside `ScryptCost`'s
    /// bounds before running anything.
    public static func deriveKey(password: [UInt8], salt: [UInt8], cost: ScryptCost, length: Int = 32) throws(Failure) -> [UInt8] {
        guard cost.isAcceptable else { throw .unacceptableCost(cost) }
        var output = [UInt8](repeating: 0, count: length)
        let status = password.withUnsafeBytes { passwordBytes in
            salt.withUnsafeBytes { saltBytes in
                output.withUnsafeMutableBytes { out in
                    // libcrypto's own memory limit: scrypt's buffers (128 · r · N,
                    // plus 128 · r · p) and a margin.
                    EVP_PBE_scrypt(
                        passwordBytes.baseAddress?.assumingMemoryBound(to: CChar.self), password.count,
                        saltBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), salt.count,
                        UInt64(1) << cost.log2N, UInt64(cost.r), UInt64(cost.p), cost.memory + 128 * UInt64(cost.r) * UInt64(cost.p) + (1 << 20),
                        out.baseAddress?.assumingMemoryBound(to: UInt8.self), length)
                }
            }
        }
        guard status == 1 else { throw .failed(cost) }
        return output
    }
}

/// AES-256-GCM with a reusable OpenSSL context. One instance per thread.
/// Sealed output is the ciphertext followed by the 16-byte tag.
public final class AESGCM {
    public static let keyLength = 32
    public static let nonceLength = 12
    public static let tagLength = 16

    private let context: OpaquePointer
    private let key: [UInt8]

    public init(key: [UInt8]) {
        precondition(key.count == Self.keyLength)
        guard let context = EVP_CIPHER_CTX_new() else { fatalError("EVP_CIPHER_CTX_new failed: out of memory") }
        self.context = context
        self.key = key
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    /// Encrypts `plaintext` into `output` (at least `plaintext.count + 16`
    /// bytes) and returns the sealed length. `output` may be `plaintext`'s
    /// own memory: GCM encrypts in place.
    public func seal(
        _ plaintext: UnsafeRawBufferPointer, nonce: [UInt8], associatedData: [UInt8], into output: UnsafeMutableRawBufferPointer
    ) -> Int {
        precondition(output.count >= plaintext.count + Self.tagLength)
        let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var ok = start(encrypting: true, nonce: nonce, associatedData: associatedData)
        var written: Int32 = 0
        if ok, plaintext.count > 0 {
            ok = EVP_CipherUpdate(context, out, &written, plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(plaintext.count)) == 1
        }
        var final: Int32 = 0
        ok = ok && EVP_CipherFinal_ex(context, out + Int(written), &final) == 1
        let total = Int(written + final)
        ok = ok && EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, Int32(Self.tagLength), out + total) == 1
        precondition(ok && total == plaintext.count, "AES-256-GCM encryption failed")
        return total + Self.tagLength
    }

    /// Decrypts and authenticates `sealed` into `output`; false when the
    /// tag does not match (wrong key, altered bytes, wrong nonce or data).
    public func open(
        _ sealed: UnsafeRawBufferPointer, nonce: [UInt8], associatedData: [UInt8], into output: UnsafeMutableRawBufferPointer
    ) -> Bool {
        guard sealed.count >= Self.tagLength else { return false }
        let cipherLength = sealed.count - Self.tagLength
        precondition(output.count >= cipherLength)
        let out = output.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var ok = start(encrypting: false, nonce: nonce, associatedData: associatedData)
        var written: Int32 = 0
        if ok, cipherLength > 0 {
            ok = EVP_CipherUpdate(context, out, &written, sealed.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(cipherLength)) == 1
        }
        // The tag is set before Final, which compares it in constant time.
        var tag = Array(UnsafeRawBufferPointer(rebasing: sealed[cipherLength...]))
        ok = ok && EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(Self.tagLength), &tag) == 1
        var final: Int32 = 0
        ok = ok && withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { scratch in
            EVP_CipherFinal_ex(context, out.map { $0 + Int(written) } ?? scratch.baseAddress!, &final) == 1
        }
        return ok
    }

    /// Key, nonce and direction into the context, then the associated data.
    private func start(encrypting: Bool, nonce: [UInt8], associatedData: [UInt8]) -> Bool {
        precondition(nonce.count == Self.nonceLength)
        let initialized = key.withUnsafeBytes { keyBytes in
            nonce.withUnsafeBytes { nonceBytes in
                EVP_CipherInit_ex(context, EVP_aes_256_gcm(), nil,
                                  keyBytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                  nonceBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), encrypting ? 1 : 0) == 1
            }
        }
        var length: Int32 = 0
        return initialized && associatedData.withUnsafeBytes {
            EVP_CipherUpdate(context, nil, &length, $0.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32($0.count)) == 1
        }
    }
}
