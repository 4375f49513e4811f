/// Appends protobuf wire format to bytes already encoded: a field added after the fact
/// (a message's fields may come in any order, and readers take them so).
extension Array where Element == UInt8 {
    /// A varint: seven bits a byte, low bits first, the high bit set on all but the last.
    public mutating func appendProtobufVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }
}
