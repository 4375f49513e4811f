import ChukanCore
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
        let block = cipher.forward(person.bytes)
        return String(unsafeUninitializedCapacity: 32) { out in
            for (i, b) in block.enumerated() {
                out[2 * i] = Self.hexDigits[Int(b >> 4)]
                out[2 * i + 1] = Self.hexDigits[Int(b & 0xF)]
            }
            return 32
        }
    }

    /// Upper-case hex digits, as codes are written (they are read in either case).
    static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    public func person(for code: String) -> PackedID? {
        var block = [UInt8](repeating: 0, count: 16)
        var count = 0
        for c in code.utf8 {
            guard count < 32, let v = Hex.value(of: c) else { return nil }
            block[count / 2] |= count % 2 == 0 ? v << 4 : v
            count += 1
        }
        guard count == 32 else { return nil }
        return PackedID(bytes: cipher.backward(block))
    }
}
