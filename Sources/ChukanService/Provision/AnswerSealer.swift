import ChukanCore
import ChukanProto
import ChukanStore
import Foundation
import Synchronization

/// Seals answers to the inquirer's X25519 key (docs/SECURITY.md, "Provision: the answer").
///
/// The server's side of the agreement is an answer key that lives in memory only and is
/// replaced every `rotation`; the agreement with each inquirer key is computed once per
/// answer key and reused, since X25519 is the costly step and inquirers return. Every
/// answer still gets its own AES-256-GCM key: HKDF-SHA256 over the shared secret with a
/// fresh random salt, and the permit id as associated data, so an answer cannot be passed
/// off as the answer to another permit.
public final class AnswerSealer: Sendable {
    public static let label = Array("chukan.v1.EncryptedAnswer\u{0}".utf8)
    static let info = Array("chukan provision answer v1".utf8)
    /// Inquirer keys whose agreement is kept per answer key.
    static let cacheLimit = 4096

    struct AnswerKey {
        var key: X25519Key
        var publicKey: [UInt8]
        var since: Date
        var agreements: [[UInt8]: [UInt8]] = [:]
    }

    let rotation: TimeInterval
    let now: @Sendable () -> Date
    private let current: Locked<AnswerKey>

    public init(rotation: TimeInterval = 600, now: @escaping @Sendable () -> Date = { Date() }) throws {
        self.rotation = rotation
        self.now = now
        let k = try X25519Key.generate()
        current = Locked(AnswerKey(key: k, publicKey: k.publicKey, since: now()))
    }

    /// Makes (or finds) the agreement with `inquirerKey`: throws INVALID_ARGUMENT for a key
    /// no answer can be sealed to (wrong size, low order).
    public func prepare(for inquirerKey: [UInt8]) throws {
        _ = try agreement(with: inquirerKey)
    }

    private func agreement(with inquirerKey: [UInt8]) throws -> (AnswerKey, [UInt8]) {
        let (server, cached) = try answerKey(for: inquirerKey)
        if let cached { return (server, cached) }
        let peer: X25519Key
        do { peer = try X25519Key(publicKey: inquirerKey) } catch {
            throw RPCError.invalidArgument("inquirer_public_key: must be an X25519 public key of 32 bytes")
        }
        let shared: [UInt8]
        do { shared = try server.key.agree(with: peer) } catch {
            throw RPCError.invalidArgument("inquirer_public_key: not a usable X25519 public key")
        }
        remember(shared, for: inquirerKey, under: server.publicKey)
        return (server, shared)
    }

    /// The payload sealed to `inquirerKey` (32 raw bytes) for `permitID`.
    public func seal(_ payload: [UInt8], to inquirerKey: [UInt8], permitID: String) throws -> EncryptedAnswer {
        let (server, shared) = try agreement(with: inquirerKey)
        var answer = EncryptedAnswer()
        answer.version = 1
        answer.serverPublicKey = server.publicKey
        answer.salt = secureRandomBytes(32)
        answer.nonce = secureRandomBytes(AESGCM.nonceSize)
        answer.permitId = permitID
        let key = try Self.answerKey(shared: shared, salt: answer.salt, server: server.publicKey, inquirer: inquirerKey)
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + AESGCM.tagSize)
        let aad = Self.label + Array(permitID.utf8)
        try payload.withUnsafeBytes { p in
            try aad.withUnsafeBytes { a in try AESGCM(key: key).seal(nonce: answer.nonce, plaintext: p, aad: a, into: &out) }
        }
        answer.ciphertext = out
        return answer
    }

    /// Opens `answer` with the inquirer's private key (the inquirer's side; `chukanctl dev
    /// open-answer` and the tests). `permitID`, when given, must be the one the answer is bound to.
    public static func open(_ answer: EncryptedAnswer, with inquirer: X25519Key, permitID: String? = nil) throws -> ProvisionPayload {
        guard answer.version == 1 else { throw CryptoError.openSSL("answer version \(answer.version) is not known") }
        if let permitID, permitID != answer.permitId { throw CryptoError.authenticationFailed }
        guard answer.nonce.count == AESGCM.nonceSize, answer.salt.count == 32 else { throw CryptoError.authenticationFailed }
        let shared = try inquirer.agree(with: X25519Key(publicKey: answer.serverPublicKey))
        let key = try answerKey(shared: shared, salt: answer.salt, server: answer.serverPublicKey, inquirer: inquirer.publicKey)
        let aad = label + Array(answer.permitId.utf8)
        let plain = try answer.ciphertext.withUnsafeBytes { c in
            try aad.withUnsafeBytes { a in try AESGCM(key: key).open(nonce: answer.nonce, ciphertextAndTag: c, aad: a) }
        }
        return try ProvisionPayload(protobuf: plain)
    }

    static func answerKey(shared: [UInt8], salt: [UInt8], server: [UInt8], inquirer: [UInt8]) throws -> [UInt8] {
        try HKDF.sha256(key: shared, salt: salt, info: info + server + inquirer, length: AESGCM.keySize)
    }

    /// The answer key in force (replaced once it is `rotation` old) and the agreement
    /// with `inquirerKey` under it, if already made.
    private func answerKey(for inquirerKey: [UInt8]) throws -> (AnswerKey, [UInt8]?) {
        let t = now()
        if let hit = current.withLock({ k -> (AnswerKey, [UInt8]?)? in
            guard t.timeIntervalSince(k.since) < rotation else { return nil }
            return (k, k.agreements[inquirerKey])
        }) { return hit }
        let fresh = try X25519Key.generate()
        return current.withLock { k in
            if t.timeIntervalSince(k.since) >= rotation { k = AnswerKey(key: fresh, publicKey: fresh.publicKey, since: t) }
            return (k, k.agreements[inquirerKey])
        }
    }

    private func remember(_ shared: [UInt8], for inquirerKey: [UInt8], under server: [UInt8]) {
        current.withLock { k in
            guard k.publicKey == server else { return }  // rotated meanwhile
            if k.agreements.count >= Self.cacheLimit { k.agreements.removeAll(keepingCapacity: true) }
            k.agreements[inquirerKey] = shared
        }
    }

    /// The answer key's public half (for the record and the tests).
    public var publicKey: [UInt8] { current.withLock { $0.publicKey } }
}
