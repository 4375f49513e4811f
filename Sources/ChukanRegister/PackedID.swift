/// A register identifier — 宛名番号, 団体内統合宛名番号, 世帯番号 (1-16 ASCII letters or
/// digits), 住民票コード (11 digits), 個人番号 (12 digits) — packed into 16 bytes.
///
/// The tries of a register version hold these instead of `String`s because a write
/// copies the path of trie nodes it changes: with plain 16-byte keys and values that
/// copy is a memory copy, where strings cost a reference-count update per item (the
/// profile of a million-resident load said so). Bytes are stored big-endian and padded
/// with zeros, which no identifier contains, so the order is the strings' order.
public struct PackedID: Hashable, Comparable, Sendable, CustomStringConvertible {
    @usableFromInline let hi: UInt64
    @usableFromInline let lo: UInt64

    /// nil unless `s` is 1-16 ASCII letters or digits.
    @inlinable public init?(_ s: String) {
        var s = s
        guard let packed = s.withUTF8({ Self.pack($0) }) else { return nil }
        self = packed
    }

    /// From a NUL-terminated C string (protobuf-c's `char *` fields), without making a `String`.
    @inlinable public init?(cString p: UnsafePointer<CChar>?) {
        guard let p else { return nil }
        var n = 0
        while n <= 16 && p[n] != 0 { n += 1 }
        guard let packed = p.withMemoryRebound(to: UInt8.self, capacity: n, { Self.pack(UnsafeBufferPointer(start: $0, count: n)) }) else {
            return nil
        }
        self = packed
    }

    @inlinable init(hi: UInt64, lo: UInt64) {
        self.hi = hi
        self.lo = lo
    }

    @inlinable static func pack(_ bytes: UnsafeBufferPointer<UInt8>) -> PackedID? {
        guard (1...16).contains(bytes.count) else { return nil }
        var hi: UInt64 = 0, lo: UInt64 = 0
        for i in 0..<16 {
            var b: UInt64 = 0
            if i < bytes.count {
                let c = bytes[i]
                guard (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) else { return nil }
                b = UInt64(c)
            }
            if i < 8 { hi = hi << 8 | b } else { lo = lo << 8 | b }
        }
        return PackedID(hi: hi, lo: lo)
    }

    public var string: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for word in [hi, lo] {
            for shift in stride(from: 56, through: 0, by: -8) {
                let b = UInt8(truncatingIfNeeded: word >> UInt64(shift))
                if b != 0 { bytes.append(b) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public var description: String { string }

    /// The 16 bytes, big-endian, zero-padded (what `init?(bytes:)` takes back).
    public var bytes: [UInt8] {
        (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? hi : lo) >> UInt64(56 - 8 * (i % 8))) }
    }

    /// From the 16 bytes of `bytes`; nil unless they are an identifier (letters and digits,
    /// then zeros only).
    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        let length = bytes.firstIndex(of: 0) ?? 16
        guard bytes[length...].allSatisfy({ $0 == 0 }) else { return nil }
        guard let packed = bytes.withUnsafeBufferPointer({ Self.pack(UnsafeBufferPointer(rebasing: $0[0..<length])) }) else { return nil }
        self = packed
    }

    @inlinable public static func < (a: PackedID, b: PackedID) -> Bool { (a.hi, a.lo) < (b.hi, b.lo) }

    @inlinable public func hash(into hasher: inout Hasher) {
        hasher.combine(hi)
        hasher.combine(lo)
    }
}

/// The key of a 4情報 search index entry: a 64-bit FNV-1a hash of the normalised key
/// string. Two keys may collide, so a search checks each candidate's record.
public struct SearchKey: Hashable, Sendable {
    @usableFromInline let value: UInt64

    public init(_ s: String) {
        var h = SearchKeyHasher()
        h.append(s)
        self = h.key
    }

    init(value: UInt64) { self.value = value }
}

/// FNV-1a fed piece by piece — bytes, scalars (as UTF-8), padded numbers — giving the
/// same key as `SearchKey(string)` of the whole string, without building the string.
struct SearchKeyHasher {
    private var h: UInt64 = 0xCBF2_9CE4_8422_2325

    var key: SearchKey { SearchKey(value: h) }

    @inline(__always) mutating func append(byte b: UInt8) {
        h ^= UInt64(b)
        h = h &* 0x0000_0100_0000_01B3
    }

    mutating func append(_ s: String) {
        for b in s.utf8 { append(byte: b) }
    }

    @inline(__always) mutating func append(scalar v: UInt32) {
        switch v {
        case 0..<0x80:
            append(byte: UInt8(v))
        case 0x80..<0x800:
            append(byte: UInt8(0xC0 | v >> 6))
            append(byte: UInt8(0x80 | v & 0x3F))
        case 0x800..<0x10000:
            append(byte: UInt8(0xE0 | v >> 12))
            append(byte: UInt8(0x80 | v >> 6 & 0x3F))
            append(byte: UInt8(0x80 | v & 0x3F))
        default:
            append(byte: UInt8(0xF0 | v >> 18))
            append(byte: UInt8(0x80 | v >> 12 & 0x3F))
            append(byte: UInt8(0x80 | v >> 6 & 0x3F))
            append(byte: UInt8(0x80 | v & 0x3F))
        }
    }

    /// `v` in decimal, zero-padded to `width` digits (more digits when it has more),
    /// as `CalendarDate.key` writes its parts.
    mutating func append(_ v: UInt32, width: Int) {
        var digits: [UInt8] = []
        var rest = v
        repeat {
            digits.append(UInt8(48 + rest % 10))
            rest /= 10
        } while rest > 0
        for _ in digits.count..<max(width, digits.count) { append(byte: 48) }
        for d in digits.reversed() { append(byte: d) }
    }
}
