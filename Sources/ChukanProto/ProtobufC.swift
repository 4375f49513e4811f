import CProtobufC
import NIOCore

/// Why bytes did not decode into a message. The description names the message type
/// only, never the bytes: payloads may hold personal data.
public enum ProtoDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The encoded message is larger than the caller allows.
    case tooLarge(message: String, size: Int, limit: Int)
    /// protobuf-c rejected the bytes (truncated, bad wire type, bad varint, ...).
    case malformed(message: String)
    /// It decoded, but a field holds a value this schema does not allow.
    case invalidField(message: String, field: String)
    /// More fields (nested ones counted) than the reader allows: each costs protobuf-c
    /// work and often an allocation, and a frame of two-byte fields holds two million.
    case tooManyFields(message: String, limit: Int)

    public var description: String {
        switch self {
        case let .tooLarge(message, size, limit): "\(message) of \(size) bytes exceeds the limit of \(limit) bytes"
        case let .malformed(message): "\(message) does not decode as protobuf"
        case let .invalidField(message, field): "\(message).\(field) holds a value the schema does not allow"
        case let .tooManyFields(message, limit): "\(message) holds more than \(limit) fields (nested ones counted)"
        }
    }
}

/// Thin, safe calls into protobuf-c's descriptor-driven API. Every unpacked message
/// is freed before these functions return, so callers never own protobuf-c memory.
public enum ProtobufC {
    /// The default largest message we decode: the ttrpc frame limit.
    public static let defaultDecodeLimit = 4 << 20

    /// Packs `message` (any protoc-c struct, viewed through its `base`) onto the end of `buffer`.
    @inlinable
    @discardableResult
    public static func pack(_ message: UnsafePointer<ProtobufCMessage>, into buffer: inout ByteBuffer) -> Int {
        let size = protobuf_c_message_get_packed_size(message)
        guard size > 0 else { return 0 }
        return buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            protobuf_c_message_pack(message, raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Unpacks `bytes` as a `descriptor` message, hands it to `body`, then frees it.
    @inlinable
    public static func withUnpacked<C, R>(
        _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
        as type: C.Type,
        name: @autoclosure () -> String,
        bytes: UnsafeRawBufferPointer,
        limit: Int,
        _ body: (UnsafePointer<C>) throws -> R
    ) throws -> R {
        guard bytes.count <= limit else {
            throw ProtoDecodingError.tooLarge(message: name(), size: bytes.count, limit: limit)
        }
        // protobuf-c reads nothing for an empty message, but wants a non-null pointer.
        var empty: UInt8 = 0
        let unpacked: UnsafeMutablePointer<ProtobufCMessage>? = withUnsafeMutablePointer(to: &empty) { emptyPointer in
            let data = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(emptyPointer)
            return protobuf_c_message_unpack(descriptor, nil, bytes.count, data)
        }
        guard let unpacked else { throw ProtoDecodingError.malformed(message: name()) }
        defer { protobuf_c_message_free_unpacked(unpacked, nil) }
        return try UnsafeRawPointer(unpacked).withMemoryRebound(to: C.self, capacity: 1) { try body($0) }
    }
}

extension UnsafePointer where Pointee == CChar {
    /// A Swift string from a protobuf-c string field (never null once unpacked).
    @inlinable
    public var protoString: String { String(cString: self) }
}

extension Optional where Wrapped == UnsafeMutablePointer<CChar> {
    @inlinable
    public var protoString: String {
        guard let s = self else { return "" }
        return String(cString: s)
    }
}

extension ProtobufCBinaryData {
    /// Copies the bytes into a new buffer.
    @inlinable
    public func byteBuffer(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: len)
        if len > 0, let data { buffer.writeBytes(UnsafeRawBufferPointer(start: data, count: len)) }
        return buffer
    }

    @inlinable
    public var bytes: [UInt8] {
        guard len > 0, let data else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: len))
    }
}

extension ProtobufC {
    /// Counts the fields of `bytes` as a `descriptor` message, walking into every field the
    /// schema says is a message, and throws `tooManyFields` past `limit` or past `maxDepth`
    /// levels: what a server checks before protobuf-c unpacks a caller's request. It reads
    /// in place and allocates nothing; malformed bytes are left for protobuf-c to refuse.
    public static func checkFieldCount(
        _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>, _ bytes: UnsafeRawBufferPointer,
        name: @autoclosure () -> String, limit: Int, maxDepth: Int = 32
    ) throws {
        var budget = limit
        guard (try? countFields(descriptor, bytes, budget: &budget, depth: maxDepth)) != false else {
            throw ProtoDecodingError.tooManyFields(message: name(), limit: limit)
        }
    }

    /// false once the budget or the depth is spent; throws on bytes that do not parse.
    private static func countFields(
        _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>, _ bytes: UnsafeRawBufferPointer, budget: inout Int, depth: Int
    ) throws -> Bool {
        guard depth > 0 else { return false }
        var reader = WireReader(bytes)
        while let (number, type) = try reader.nextField() {
            budget -= 1
            guard budget >= 0 else { return false }
            guard type == .lengthDelimited else {
                try reader.skip(type)
                continue
            }
            let value = try reader.lengthDelimited()
            guard number <= UInt64(UInt32.max), let field = protobuf_c_message_descriptor_get_field(descriptor, UInt32(number)),
                  field.pointee.type == PROTOBUF_C_TYPE_MESSAGE, let inner = field.pointee.descriptor
            else { continue }
            guard try countFields(inner.assumingMemoryBound(to: ProtobufCMessageDescriptor.self), value, budget: &budget, depth: depth - 1) else { return false }
        }
        return true
    }
}

/// The address of a protoc-c message's descriptor, read from an initialised struct.
///
/// Swift cannot take the address of an imported C global without possibly copying it,
/// and protobuf-c keeps the pointer inside every message it unpacks; the one `init`
/// writes into `base.descriptor` is the real thing.
public func protobufDescriptor<T>(_ type: T.Type, _ initialise: (UnsafeMutablePointer<T>) -> Void) -> UnsafePointer<ProtobufCMessageDescriptor> {
    let message = UnsafeMutablePointer<T>.allocate(capacity: 1)
    defer { message.deallocate() }
    initialise(message)
    return UnsafeRawPointer(message).load(as: ProtobufCMessage.self).descriptor
}
