import ChukanCore
import ChukanProto
import NIOCore

/// Sends the data frames of a server-streaming call. `write` waits while the client is
/// not reading (the connection is not writable), so a slow client slows the producer
/// instead of growing the server's buffers.
public struct ServerStreamWriter: Sendable {
    let send: @Sendable (ByteBuffer) -> EventLoopFuture<Void>

    public func write(_ payload: ByteBuffer) async throws {
        try await send(payload).get()
    }
}

/// A `ServerStreamWriter` that encodes messages with protobuf-c.
public struct TypedStreamWriter<Message: ProtoMessage>: Sendable {
    let writer: ServerStreamWriter
    let allocator: ByteBufferAllocator

    public func write(_ message: Message) async throws {
        var buffer = allocator.buffer(capacity: 64)
        message.encode(into: &buffer)
        try await writer.write(buffer)
    }
}
