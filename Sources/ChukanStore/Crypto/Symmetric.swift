import ChukanCore
import COpenSSL

#if canImport(Glibc)
import Glibc
import Synchronization
#endif

/// Why encryption or decryption failed. Never carries key material or plaintext.
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The tag did not verify: wrong key, or changed bytes.
    case authenticationFailed
    case openSSL(String)

    public var description: String {
        switch self {
        case .authenticationFailed: "authentication failed (wrong key or changed bytes)"
        case let .openSSL(m): "OpenSSL: \(m)"
        }
    }
}

/// Algorithms fetched from OpenSSL's default provider once. Naming them per call
/// (EVP_sha256(), EVP_aes_256_gcm(), a KDF by name) makes OpenSSL 3 look them up again
/// each time, under its locks: measurable at tens of thousands of calls a second.
enum Algorithms {
    nonisolated(unsafe) static let sha256: OpaquePointer = EVP_MD_fetch(nil, "SHA256", nil)!  // immutable, thread-safe in OpenSSL
    nonisolated(unsafe) static let aes256GCM: OpaquePointer = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil)!
    nonisolated(unsafe) static let hmacSHA256: OpaquePointer = chukan_hmac_sha256_template()!
}

/// AES-256-GCM through OpenSSL EVP, with a reusable cipher context.
/// Not thread-safe: one per writer or reader.
public final class AESGCM {
    public static let keySize = 32
    public static let nonceSize = 12
    public static let tagSize = 16

    private let key: [UInt8]
    private let ctx: OpaquePointer
    /// The direction the context holds the key for: a call in the same direction gives
    /// only the nonce and keeps the key schedule and GHASH table (a WAL writer seals one
    /// small record after another); nil after a failure, so the next call starts afresh.
    private var keyedFor: Direction?
    private enum Direction { case encrypt, decrypt }

    public init(key: [UInt8]) throws {
        precondition(key.count == Self.keySize, "AES-256 takes a 32-byte key")
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError.openSSL("EVP_CIPHER_CTX_new failed") }
        self.key = key
        self.ctx = ctx
    }

    deinit { EVP_CIPHER_CTX_free(ctx) }

    /// Starts a seal or an open with `nonce`: the nonce alone when the context already holds
    /// the key for that direction, else cipher, key and nonce. The caller sets `keyedFor`
    /// again once the call has succeeded.
    private func start(_ direction: Direction, nonce: [UInt8]) -> Bool {
        let keyed = keyedFor == direction
        keyedFor = nil
        let initialise = direction == .encrypt ? EVP_EncryptInit_ex : EVP_DecryptInit_ex
        return (keyed ? initialise(ctx, nil, nil, nil, nonce) : initialise(ctx, Algorithms.aes256GCM, nil, key, nonce)) == 1
    }

    /// Appends ciphertext and the 16-byte tag of `plaintext` to `out`.
    public func seal(nonce: [UInt8], plaintext: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer, into out: inout [UInt8]) throws {
        precondition(nonce.count == Self.nonceSize)
        var outLength: Int32 = 0
        guard start(.encrypt, nonce: nonce) else { throw CryptoError.openSSL("encrypt init") }
        if aad.count > 0 {
            guard EVP_EncryptUpdate(ctx, nil, &outLength, aad.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(aad.count)) == 1 else {
                throw CryptoError.openSSL("encrypt aad")
            }
        }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: plaintext.count + Self.tagSize))
        try out.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress! + start
            if plaintext.count > 0 {
                guard EVP_EncryptUpdate(ctx, base, &outLength, plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(plaintext.count)) == 1 else {
                    throw CryptoError.openSSL("encrypt")
                }
            }
            var finalLength: Int32 = 0
            guard EVP_EncryptFinal_ex(ctx, base + Int(outLength), &finalLength) == 1,
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(Self.tagSize), base + plaintext.count) == 1
            else { throw CryptoError.openSSL("encrypt final") }
        }
        keyedFor = .encrypt
    }

    /// Decrypts `ciphertextAndTag`; throws `.authenticationFailed` if it, the nonce or the aad changed.
    public func open(nonce: [UInt8], ciphertextAndTag: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer) throws -> [UInt8] {
        precondition(nonce.count == Self.nonceSize)
        guard ciphertextAndTag.count >= Self.tagSize else { throw CryptoError.authenticationFailed }
        let n = ciphertextAndTag.count - Self.tagSize
        var outLength: Int32 = 0
        guard start(.decrypt, nonce: nonce) else { throw CryptoError.openSSL("decrypt init") }
        if aad.count > 0 {
            guard EVP_DecryptUpdate(ctx, nil, &outLength, aad.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(aad.count)) == 1 else {
                throw CryptoError.openSSL("decrypt aad")
            }
        }
        let input = ciphertextAndTag.baseAddress!.assumingMemoryBound(to: UInt8.self)
        // Decrypted into uninitialised memory (every byte is written, or the array is
        // thrown away with the error): a snapshot load opens hundreds of MB.
        let plaintext = try [UInt8](unsafeUninitializedCapacity: n) { buffer, initialized in
            initialized = n
            if n > 0 {
                guard EVP_DecryptUpdate(ctx, buffer.baseAddress!, &outLength, input, Int32(n)) == 1, outLength == Int32(n) else {
                    throw CryptoError.openSSL("decrypt")
                }
            }
            var tag = Array(UnsafeBufferPointer(start: input + n, count: Self.tagSize))
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(Self.tagSize), &tag) == 1 else { throw CryptoError.openSSL("set tag") }
            var finalLength: Int32 = 0
            var scratch = [UInt8](repeating: 0, count: 16)
            guard EVP_DecryptFinal_ex(ctx, &scratch, &finalLength) == 1 else { throw CryptoError.authenticationFailed }
        }
        keyedFor = .decrypt
        return plaintext
    }
}

/// HKDF-SHA256 (RFC 5869) through OpenSSL.
public enum HKDF {
    public static func sha256(key: [UInt8], salt: [UInt8], info: [UInt8], length: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        guard chukan_hkdf_sha256(Algorithms.hmacSHA256, key, key.count, salt, salt.count, info, info.count, &out, length) == 1 else {
            throw CryptoError.openSSL("HKDF derive")
        }
        return out
    }
}

/// Cryptographically random bytes from OpenSSL.
public func secureRandomBytes(_ count: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    precondition(RAND_bytes(&out, Int32(count)) == 1, "OpenSSL's RAND_bytes failed")
    return out
}

/// `bytes` random bytes as lower-case hex (ids, salts).
public func secureRandomHex(_ bytes: Int) -> String { Hex.encode(secureRandomBytes(bytes)) }

public enum SHA256 {
    public static let size = 32

    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer { o in
            EVP_Digest(bytes.baseAddress, bytes.count, o.baseAddress, &length, Algorithms.sha256, nil)
        }
        precondition(ok == 1 && length == UInt32(size), "EVP_Digest(SHA-256) failed")
        return out
    }

    public static func hash(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes { hash($0) } }
}

/// AES-256 on single 16-byte blocks: a keyed permutation of 128-bit values (used for
/// 符号, where every block must map to exactly one other, and back).
public final class AESBlockPermutation: @unchecked Sendable {
    private let encrypt: OpaquePointer
    private let decrypt: OpaquePointer
    private let lock = Locked(())  // an EVP context is not safe to share between threads; contended by every 符号 lookup

    public init(key: [UInt8]) throws {
        guard key.count == 32 else { throw CryptoError.openSSL("an AES-256 key is 32 bytes") }
        guard let e = EVP_CIPHER_CTX_new(), let d = EVP_CIPHER_CTX_new() else { throw CryptoError.openSSL("EVP_CIPHER_CTX_new failed") }
        encrypt = e
        decrypt = d
        guard EVP_EncryptInit_ex(e, EVP_aes_256_ecb(), nil, key, nil) == 1, EVP_CIPHER_CTX_set_padding(e, 0) == 1,
              EVP_DecryptInit_ex(d, EVP_aes_256_ecb(), nil, key, nil) == 1, EVP_CIPHER_CTX_set_padding(d, 0) == 1
        else { throw CryptoError.openSSL("AES-256 block init") }
    }

    deinit {
        EVP_CIPHER_CTX_free(encrypt)
        EVP_CIPHER_CTX_free(decrypt)
    }

    public func forward(_ block: [UInt8]) -> [UInt8] { run(encrypt, block) }
    public func backward(_ block: [UInt8]) -> [UInt8] { run(decrypt, block) }

    private func run(_ ctx: OpaquePointer, _ block: [UInt8]) -> [UInt8] {
        precondition(block.count == 16, "AES works on 16-byte blocks")
        var out = [UInt8](repeating: 0, count: 32)
        var n: Int32 = 0
        let ok = lock.withLock { _ in EVP_CipherUpdate(ctx, &out, &n, block, 16) == 1 && n == 16 }
        precondition(ok, "AES block operation failed")
        return Array(out.prefix(16))
    }
}

/// Staff passwords, stored as `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>` (OpenSSL's
/// PKCS5_PBKDF2_HMAC; 16-byte random salt, 32-byte hash). The iteration count travels
/// with each hash, so raising it later leaves old hashes verifiable.
public enum PasswordHash {
    public static let defaultIterations = 210_000

    public static func make(_ password: String, iterations: Int = defaultIterations) -> String {
        let salt = secureRandomBytes(16)
        let hash = derive(password, salt: salt, iterations: iterations)
        return "pbkdf2-sha256$\(iterations)$\(Hex.encode(salt))$\(Hex.encode(hash))"
    }

    /// Whether `password` matches `stored`; compares in constant time.
    public static func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$")
        guard parts.count == 4, parts[0] == "pbkdf2-sha256", let iterations = Int(parts[1]), (1...10_000_000).contains(iterations),
              let salt = Hex.decode(parts[2]), let expected = Hex.decode(parts[3]), expected.count == 32
        else { return false }
        let got = derive(password, salt: salt, iterations: iterations)
        return CRYPTO_memcmp(got, expected, 32) == 0
    }

    static func derive(_ password: String, salt: [UInt8], iterations: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let bytes = Array(password.utf8)
        let ok = bytes.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { pc in
                PKCS5_PBKDF2_HMAC(pc.baseAddress, Int32(pc.count), salt, Int32(salt.count), Int32(iterations), EVP_sha256(), 32, &out)
            }
        }
        precondition(ok == 1, "PKCS5_PBKDF2_HMAC failed")
        return out
    }
}
