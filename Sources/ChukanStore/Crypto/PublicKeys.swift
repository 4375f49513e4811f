import COpenSSL
import Foundation

/// Files of development keys start with this line, before the PEM block (OpenSSL's PEM
/// reader skips text before "-----BEGIN"). A server not in development mode refuses
/// any key file that carries it (docs/SECURITY.md, "Development keys").
public enum DevelopmentKey {
    public static let marker = "Chukan-Development-Key:"

    /// `pem` marked as a development key of the given use.
    public static func mark(_ pem: String, use: String) -> String {
        "\(marker) \(use) — for development and tests only; a production server refuses it\n\(pem)"
    }

    public static func isMarked(_ text: String) -> Bool { text.hasPrefix(marker) || text.contains("\n\(marker)") }
}

/// An OpenSSL key (EVP_PKEY), freed with its owner. Read-only after creation, so one key
/// may be used from many threads (OpenSSL 3 allows concurrent signing, verifying and
/// deriving with one EVP_PKEY, each call with its own context).
final class OpenSSLKey: @unchecked Sendable {
    let pkey: OpaquePointer
    init(_ pkey: OpaquePointer) { self.pkey = pkey }
    deinit { EVP_PKEY_free(pkey) }

    static func generate(_ make: () -> OpaquePointer?, _ configure: (OpaquePointer) -> Int32 = { _ in 1 }) throws -> OpenSSLKey {
        guard let ctx = make() else { throw CryptoError.openSSL("key context") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var pkey: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1, configure(ctx) == 1, EVP_PKEY_generate(ctx, &pkey) == 1, let pkey else {
            throw CryptoError.openSSL("key generation")
        }
        return OpenSSLKey(pkey)
    }

    /// A private key from PEM (PKCS#8), or a public key (SubjectPublicKeyInfo) when `isPublic`.
    static func read(pem: String, isPublic: Bool) throws -> OpenSSLKey {
        let bytes = Array(pem.utf8)
        let key: OpaquePointer? = bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return isPublic ? PEM_read_bio_PUBKEY(bio, nil, nil, nil) : PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        ERR_clear_error()
        guard let key else { throw CryptoError.openSSL(isPublic ? "not a PEM public key" : "not a PEM private key") }
        return OpenSSLKey(key)
    }

    func pem(isPublic: Bool) throws -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw CryptoError.openSSL("BIO_new") }
        defer { BIO_free(bio) }
        let ok = isPublic ? PEM_write_bio_PUBKEY(bio, pkey) : PEM_write_bio_PrivateKey(bio, pkey, nil, nil, 0, nil, nil)
        guard ok == 1 else { throw CryptoError.openSSL("PEM write") }
        var data: UnsafeMutablePointer<CChar>?
        let n = chukan_BIO_get_mem_data(bio, &data)
        guard n > 0, let data else { throw CryptoError.openSSL("PEM write") }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: Int(n)), as: UTF8.self)
    }

    var isPrivate: Bool {
        // A private EC or X25519 key has its private half as a parameter.
        var size = 0
        if EVP_PKEY_get_raw_private_key(pkey, nil, &size) == 1 { return true }
        ERR_clear_error()
        var bn: OpaquePointer?
        defer { if bn != nil { BN_free(bn) } }
        let ok = EVP_PKEY_get_bn_param(pkey, "priv", &bn) == 1
        ERR_clear_error()
        return ok
    }
}

/// Initialised EVP_PKEY_CTXs for reuse, one thread at a time each.
final class ContextPool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [OpaquePointer] = []

    func take() -> OpaquePointer? {
        lock.lock()
        defer { lock.unlock() }
        return free.popLast()
    }

    func give(_ ctx: OpaquePointer) {
        lock.lock()
        if free.count < 64 { free.append(ctx) } else { EVP_PKEY_CTX_free(ctx) }
        lock.unlock()
    }

    deinit { for c in free { EVP_PKEY_CTX_free(c) } }
}

/// ECDSA over NIST P-256 with SHA-256: the national network's signature on 提供許可証
/// (docs/SECURITY.md, "Provision": why P-256 rather than Ed25519).
public struct ECDSAP256Key: Sendable {
    let key: OpenSSLKey
    public let isPrivate: Bool
    private let verifiers = ContextPool()

    public static func generate() throws -> ECDSAP256Key {
        let k = try OpenSSLKey.generate({ EVP_PKEY_CTX_new_from_name(nil, "EC", nil) }) { EVP_PKEY_CTX_set_group_name($0, "P-256") }
        return ECDSAP256Key(key: k, isPrivate: true)
    }

    /// A private (PKCS#8) or public (SubjectPublicKeyInfo) P-256 key in PEM.
    public init(pem: String) throws {
        let isPublic = pem.contains("-----BEGIN PUBLIC KEY-----")
        key = try OpenSSLKey.read(pem: pem, isPublic: isPublic)
        guard EVP_PKEY_is_a(key.pkey, "EC") == 1 else { throw CryptoError.openSSL("not an EC key") }
        var name = [CChar](repeating: 0, count: 64)
        var length = 0
        guard EVP_PKEY_get_utf8_string_param(key.pkey, "group", &name, name.count, &length) == 1,
              ["prime256v1", "P-256"].contains(String(decoding: name.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        else { ERR_clear_error(); throw CryptoError.openSSL("not a P-256 key") }
        isPrivate = !isPublic
    }

    private init(key: OpenSSLKey, isPrivate: Bool) {
        self.key = key
        self.isPrivate = isPrivate
    }

    public func privatePEM() throws -> String {
        precondition(isPrivate, "a public key has no private PEM")
        return try key.pem(isPublic: false)
    }

    public func publicPEM() throws -> String { try key.pem(isPublic: true) }

    /// A DER signature over SHA-256 of `message`.
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        precondition(isPrivate, "signing needs the private key")
        guard let ctx = EVP_MD_CTX_new() else { throw CryptoError.openSSL("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, EVP_sha256(), nil, key.pkey) == 1 else { throw CryptoError.openSSL("sign init") }
        var length = 0
        guard EVP_DigestSign(ctx, nil, &length, message, message.count) == 1 else { throw CryptoError.openSSL("sign") }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(ctx, &signature, &length, message, message.count) == 1 else { throw CryptoError.openSSL("sign") }
        return Array(signature.prefix(length))
    }

    /// Whether `signature` (DER) is this key's signature over SHA-256 of `message`.
    public func verify(signature: [UInt8], message: UnsafeRawBufferPointer) -> Bool {
        let digest = SHA256.hash(message)
        // A context set up for verifying is kept for the next call: setting one up looks
        // the algorithm up in the provider, which costs as much as a tenth of the verification.
        guard let ctx = verifiers.take() ?? makeVerifier() else { return false }
        let ok = EVP_PKEY_verify(ctx, signature, signature.count, digest, digest.count) == 1
        if !ok { ERR_clear_error() }
        verifiers.give(ctx)
        return ok
    }

    private func makeVerifier() -> OpaquePointer? {
        guard let ctx = EVP_PKEY_CTX_new(key.pkey, nil) else { return nil }
        guard EVP_PKEY_verify_init(ctx) == 1 else {
            EVP_PKEY_CTX_free(ctx)
            ERR_clear_error()
            return nil
        }
        return ctx
    }
}

/// X25519 key agreement (RFC 7748): the key an answer is sealed to.
public struct X25519Key: Sendable {
    public static let size = 32
    let key: OpenSSLKey
    public let isPrivate: Bool

    public static func generate() throws -> X25519Key {
        X25519Key(key: try OpenSSLKey.generate({ EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nil) }), isPrivate: true)
    }

    /// A public key from its 32 raw bytes.
    public init(publicKey raw: [UInt8]) throws {
        guard raw.count == Self.size, let k = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nil, raw, raw.count) else {
            ERR_clear_error()
            throw CryptoError.openSSL("an X25519 public key is 32 bytes")
        }
        key = OpenSSLKey(k)
        isPrivate = false
    }

    /// A private (PKCS#8) or public (SubjectPublicKeyInfo) X25519 key in PEM.
    public init(pem: String) throws {
        let isPublic = pem.contains("-----BEGIN PUBLIC KEY-----")
        key = try OpenSSLKey.read(pem: pem, isPublic: isPublic)
        guard EVP_PKEY_is_a(key.pkey, "X25519") == 1 else { throw CryptoError.openSSL("not an X25519 key") }
        isPrivate = !isPublic
    }

    private init(key: OpenSSLKey, isPrivate: Bool) {
        self.key = key
        self.isPrivate = isPrivate
    }

    public var publicKey: [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.size)
        var length = Self.size
        precondition(EVP_PKEY_get_raw_public_key(key.pkey, &out, &length) == 1 && length == Self.size)
        return out
    }

    public func privatePEM() throws -> String {
        precondition(isPrivate, "a public key has no private PEM")
        return try key.pem(isPublic: false)
    }

    public func publicPEM() throws -> String { try key.pem(isPublic: true) }

    /// The shared secret with `peer`'s public key. Throws for a low-order peer key
    /// (OpenSSL refuses an all-zero result).
    public func agree(with peer: X25519Key) throws -> [UInt8] {
        precondition(isPrivate, "key agreement needs the private key")
        guard let ctx = EVP_PKEY_CTX_new(key.pkey, nil) else { throw CryptoError.openSSL("derive context") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: Self.size)
        var length = Self.size
        guard EVP_PKEY_derive_init(ctx) == 1, EVP_PKEY_derive_set_peer(ctx, peer.key.pkey) == 1,
              EVP_PKEY_derive(ctx, &out, &length) == 1, length == Self.size
        else { ERR_clear_error(); throw CryptoError.openSSL("X25519 agreement refused (a low-order or malformed key)") }
        return out
    }
}
