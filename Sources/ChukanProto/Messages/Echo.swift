import CProtobufC
import ChukanProtoC
import NIOCore

/// chukan.v1.EchoMessage
public struct EchoMessage: ProtoMessage, Equatable {
    public static let protoName = "chukan.v1.EchoMessage"
    nonisolated(unsafe) static let descriptor = protobufDescriptor(Chukan__V1__EchoMessage.self, chukan__v1__echo_message__init)
    public static var protobufCDescriptor: UnsafePointer<ProtobufCMessageDescriptor> { descriptor }
    public var payload: ByteBuffer

    public init(payload: ByteBuffer) { self.payload = payload }
    public init(bytes: [UInt8]) { self.payload = ByteBuffer(bytes: bytes) }

    public func encode(into buffer: inout ByteBuffer) {
        payload.withUnsafeReadableBytes { raw in
            var message = Chukan__V1__EchoMessage()
            chukan__v1__echo_message__init(&message)
            message.payload = ProtobufCBinaryData(
                len: raw.count, data: UnsafeMutablePointer(mutating: raw.baseAddress?.assumingMemoryBound(to: UInt8.self)))
            withMessageBase(&message) { _ = ProtobufC.pack($0, into: &buffer) }
        }
    }

    public init(protobuf bytes: UnsafeRawBufferPointer, limit: Int) throws {
        self = try ProtobufC.withUnpacked(
            Self.descriptor,
            as: Chukan__V1__EchoMessage.self, name: Self.protoName, bytes: bytes, limit: limit
        ) { m in EchoMessage(payload: m.pointee.payload.byteBuffer()) }
    }
}

/// chukan.v1.ExpandRequest: stream `count` copies of `payload` back.
public struct ExpandRequest: ProtoMessage, Equatable {
    public static let protoName = "chukan.v1.ExpandRequest"
    nonisolated(unsafe) static let descriptor = protobufDescriptor(Chukan__V1__ExpandRequest.self, chukan__v1__expand_request__init)
    public static var protobufCDescriptor: UnsafePointer<ProtobufCMessageDescriptor> { descriptor }
    public var payload: ByteBuffer
    public var count: UInt32

    public init(payload: ByteBuffer, count: UInt32) {
        self.payload = payload
        self.count = count
    }

    public func encode(into buffer: inout ByteBuffer) {
        payload.withUnsafeReadableBytes { raw in
            var message = Chukan__V1__ExpandRequest()
            chukan__v1__expand_request__init(&message)
            message.payload = ProtobufCBinaryData(
                len: raw.count, data: UnsafeMutablePointer(mutating: raw.baseAddress?.assumingMemoryBound(to: UInt8.self)))
            message.count = count
            withMessageBase(&message) { _ = ProtobufC.pack($0, into: &buffer) }
        }
    }

    public init(protobuf bytes: UnsafeRawBufferPointer, limit: Int) throws {
        self = try ProtobufC.withUnpacked(
            Self.descriptor,
            as: Chukan__V1__ExpandRequest.self, name: Self.protoName, bytes: bytes, limit: limit
        ) { m in ExpandRequest(payload: m.pointee.payload.byteBuffer(), count: m.pointee.count) }
    }
}
