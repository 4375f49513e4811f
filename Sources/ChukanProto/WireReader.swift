/// Why `WireReader` could not read a message.
public struct WireFormatError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Reads protobuf wire format one field at a time, in place, allocating nothing: for
/// code that needs a few fields of a large message a great many times (the index keys
/// of every record of a snapshot), where protobuf-c would unpack all of it — every
/// string and submessage its own allocation — only for most of it to be freed unread.
/// Everything else decodes with protobuf-c.
///
/// It reads what protobuf-c reads: varint, 64-bit, length-delimited and 32-bit fields
/// (groups, wire types 3 and 4, are refused, as protobuf-c refuses them), at most ten
/// bytes a varint, lengths within the message. A caller that wants protobuf-c's answer
/// keeps its rules too: the last value of a singular field wins, and a message field
/// that occurs twice is merged the way protobuf-c merges it — a string or message of
/// the later occurrence replaces the earlier one's only where it is present, a proto3
/// number always (an absent one as 0).
public struct WireReader {
    public enum WireType: UInt8 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
    }

    private let base: UnsafeRawPointer?
    private var offset: Int
    private let end: Int

    /// Where the next field starts, from the start of the message.
    public var position: Int { offset }

    public init(_ bytes: UnsafeRawBufferPointer) {
        base = bytes.baseAddress
        offset = 0
        end = bytes.count
    }

    /// The next field's number and wire type; nil at the end of the message. The number
    /// is what protobuf-c makes of the tag: 32 bits of it, and 0 refused only when the
    /// tag's first byte says so (an overlong 0 is an unknown field to protobuf-c — the
    /// `record` fuzz target found the difference).
    public mutating func nextField() throws -> (number: UInt64, type: WireType)? {
        guard offset < end else { return nil }
        guard base!.load(fromByteOffset: offset, as: UInt8.self) & 0xF8 != 0 else {
            throw WireFormatError("field number 0 at offset \(offset)")
        }
        let tag = try varint()
        guard let type = WireType(rawValue: UInt8(tag & 7)) else {
            throw WireFormatError("wire type \(tag & 7) at offset \(offset)")
        }
        return (UInt64(UInt32(truncatingIfNeeded: tag >> 3)), type)
    }

    public mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end, shift < 70 else { throw WireFormatError("truncated or overlong varint") }
            let byte = base!.load(fromByteOffset: offset, as: UInt8.self)
            offset += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    /// The bytes of a length-delimited field (a string, bytes or a message), in place.
    public mutating func lengthDelimited() throws -> UnsafeRawBufferPointer {
        let length = try varint()
        guard length <= UInt64(end - offset) else { throw WireFormatError("length \(length) runs past the message") }
        let start = offset
        offset += Int(length)
        return UnsafeRawBufferPointer(start: base! + start, count: Int(length))
    }

    /// A string field's bytes as protobuf-c hands them over: a C string, so they end at
    /// the first NUL.
    public mutating func cStringBytes() throws -> UnsafeRawBufferPointer {
        let bytes = try lengthDelimited()
        let length = bytes.firstIndex(of: 0) ?? bytes.count
        return UnsafeRawBufferPointer(rebasing: bytes[..<length])
    }

    /// A string field as `String(cString:)` makes it of protobuf-c's: up to the first
    /// NUL, invalid UTF-8 repaired.
    public mutating func string() throws -> String {
        String(decoding: try cStringBytes(), as: UTF8.self)
    }

    /// Steps over a field of `type` that the caller does not want.
    public mutating func skip(_ type: WireType) throws {
        switch type {
        case .varint: _ = try varint()
        case .lengthDelimited: _ = try lengthDelimited()
        case .fixed64, .fixed32:
            let size = type == .fixed64 ? 8 : 4
            guard end - offset >= size else { throw WireFormatError("truncated fixed-size field") }
            offset += size
        }
    }

    /// Requires `type` for a known field: protobuf-c refuses a field of the wrong type.
    public static func expect(_ type: WireType, _ wanted: WireType, field: UInt64) throws {
        guard type == wanted else { throw WireFormatError("field \(field) has wire type \(type.rawValue), not \(wanted.rawValue)") }
    }
}
