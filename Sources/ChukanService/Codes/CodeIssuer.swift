import ChukanRegister
import ChukanStore

/// Issues and resolves 符号 for one tenant. In the real system the national network
/// issues them (relayed by 住基ネット); this protocol is where such an issuer plugs in.
public protocol CodeIssuer: Sendable {
    /// The person's 符号: the same on every call, for ever.
    func code(for person: PackedID) -> String
    /// The person a 符号 stands for; nil when it is not a 符号 of this issuer.
    func person(for code: String) -> PackedID?
}

/// Chukan as the issuer: a 符号 is the person's 団体内統合宛名番号, packed into 16 bytes
/// and enciphered with AES-256 under the tenant's code key, as 32 hex digits.
///
/// A block cipher is a permutation, so each 団体内統合宛名番号 has exactly one 符号 and
/// back (1:1, unique without a table); the same input always gives the same code (stable,
/// no state to lose); without the key a code says nothing and cannot be made from the
/// 個人番号 or 住民票コード (opaque); and a 個人番号 change does not touch it.
public struct LocalCodeIssuer: CodeIssuer {
    let cipher: AESBlockPermutation

    public init(key: [UInt8]) throws { cipher = try AESBlockPermutation(key: key) }

    public func code(for person: PackedID) -> String {
        cipher.forward(person.bytes).map { String(format: "%02X", $0) }.joined()
    }

    public func person(for code: String) -> PackedID? {
        let utf8 = Array(code.uppercased().utf8)
        guard utf8.count == 32 else { return nil }
        var block: [UInt8] = []
        block.reserveCapacity(16)
        for i in stride(from: 0, to: 32, by: 2) {
            guard let b = UInt8(String(decoding: utf8[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            block.append(b)
        }
        return PackedID(bytes: cipher.backward(block))
    }
}
