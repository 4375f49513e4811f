import CProtobufC
import NIOCore

/// A Swift value for a message of `Protos/`, encoded and decoded by protobuf-c.
public protocol ProtoMessage: Sendable {
    /// The fully qualified protobuf name, e.g. "chukan.v1.EchoMessage".
    static var protoName: String { get }
    /// Appends the protobuf encoding of `self` to `buffer`.
    func encode(into buffer: inout ByteBuffer)
    /// Decodes `bytes`; throws `ProtoDecodingError` naming the message, never the bytes.
    init(protobuf bytes: UnsafeRawBufferPointer, limit: Int) throws
    /// protobuf-c's descriptor of the message (for checks made before it unpacks one).
    static var protobufCDescriptor: UnsafePointer<ProtobufCMessageDescriptor> { get }
}

extension ProtoMessage {
    /// Decodes the readable bytes of `buffer`.
    @inlinable
    public init(protobuf buffer: ByteBuffer, limit: Int = ProtobufC.defaultDecodeLimit) throws {
        self = try buffer.withUnsafeReadableBytes { try Self(protobuf: $0, limit: limit) }
    }

    @inlinable
    public init(protobuf bytes: [UInt8], limit: Int = ProtobufC.defaultDecodeLimit) throws {
        self = try bytes.withUnsafeBytes { try Self(protobuf: $0, limit: limit) }
    }

    /// The encoding in a new buffer; `capacity` to start with (a message that needs more
    /// makes the buffer grow: another allocation and a copy).
    @inlinable
    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator(), capacity: Int = 64) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: capacity)
        encode(into: &buffer)
        return buffer
    }

    public var encodedBytes: [UInt8] {
        var buffer = encoded()
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }
}
