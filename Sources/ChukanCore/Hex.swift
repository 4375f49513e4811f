/// Bytes as lower-case hex digits and back (digests and hashes in files, records and
/// command lines).
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Nil unless `s` is an even number of hex digits (either case), nothing else.
    public static func decode<S: StringProtocol>(_ s: S) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 2)
        for i in stride(from: 0, to: u.count, by: 2) {
            guard let hi = value(of: u[i]), let lo = value(of: u[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
        }
        return out
    }

    /// The value of one hex digit (an ASCII byte, either case), nil for anything else.
    public static func value(of c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }
}
