import ChukanCore
import ChukanProto
import ChukanTLS
import ChukanWire
import NIOCore
import NIOPosix
import Synchronization

/// An async ttrpc client over one TLS connection. Calls are multiplexed: any number may
/// be in flight at once, each on its own stream, answered in whatever order the server
/// finishes them.
public final class RPCClient: Sendable {
    public let channel: any Channel
    private let handler: NIOLoopBound<TTRPCClientHandler>
    /// The TLS session as negotiated (version, ALPN, server identity).
    public let handshake: TLSHandshakeCompleted

    private init(channel: any Channel, handler: NIOLoopBound<TTRPCClientHandler>, handshake: TLSHandshakeCompleted) {
        self.channel = channel
        self.handler = handler
        self.handshake = handshake
    }

    /// Connects, completes the TLS handshake and returns a ready client.
    public static func connect(
        host: String, port: Int, tls: TLSContext, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        maxMessageSize: Int = 4 << 20, connectTimeout: TimeAmount = .seconds(10)
    ) async throws -> RPCClient {
        let loop = group.next()
        let handshake = loop.makePromise(of: TLSHandshakeCompleted.self)
        let handlerSlot = HandlerSlot()
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(OpenSSLHandler(context: tls))
                    let handler = TTRPCClientHandler(maxMessageSize: maxMessageSize, handshake: handshake)
                    try sync.addHandler(handler)
                    handlerSlot.handler.withLock { $0 = NIOLoopBound(handler, eventLoop: channel.eventLoop) }
                }
            }
            .connect(host: host, port: port)
            .get()
        } catch {
            handshake.fail(error)  // never left dangling
            throw error
        }
        let done: TLSHandshakeCompleted
        do {
            done = try await handshake.futureResult.get()
        } catch {
            try? await channel.close()
            throw error
        }
        guard let handler = handlerSlot.handler.withLock({ $0 }) else {
            throw RPCError.internal("client pipeline was not set up")
        }
        return RPCClient(channel: channel, handler: handler, handshake: done)
    }

    public var eventLoop: any EventLoop { channel.eventLoop }

    /// A unary call with a raw payload; the future fails with `RPCError` on a non-OK status.
    public func call(_ request: TTRPCRequest) -> EventLoopFuture<ByteBuffer> {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        start(ClientCall(request: .message(request), kind: .unary, promise: promise))
        return promise.futureResult
    }

    /// A unary call whose `ttrpc.Request` is already encoded: the stream id lives in the
    /// frame header, so one encoding serves any number of calls (load generators).
    public func call(encodedRequest: ByteBuffer, timeoutNanos: Int64 = 0) -> EventLoopFuture<ByteBuffer> {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        start(ClientCall(request: .encoded(encodedRequest, timeoutNanos: timeoutNanos), kind: .unary, promise: promise))
        return promise.futureResult
    }

    private func start(_ call: ClientCall) {
        if channel.eventLoop.inEventLoop {
            handler.value.start(call)
        } else {
            let handler = self.handler
            let boxed = UnsafeTransfer(call)
            channel.eventLoop.execute { handler.value.start(boxed.value) }
        }
    }

    /// A typed unary call.
    public func unary<Request: ProtoMessage, Response: ProtoMessage>(
        service: String, method: String, request: Request, as: Response.Type = Response.self,
        metadata: Metadata = Metadata(), timeout: Duration? = nil
    ) async throws -> Response {
        let payload = try await call(
            TTRPCRequest(service: service, method: method, payload: request.encoded(allocator: channel.allocator),
                         timeoutNanos: timeout.map(Self.nanoseconds) ?? 0, metadata: metadata)
        ).get()
        do {
            return try Response(protobuf: payload)
        } catch {
            throw RPCError.internal("response payload: \(error)")
        }
    }

    /// Opens a client-streaming call: `send` each message (it waits for the connection),
    /// then `finish` for the server's one answer.
    public func clientStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        service: String, method: String, sending: Request.Type, receiving: Response.Type,
        metadata: Metadata = Metadata(), timeout: Duration? = nil
    ) async throws -> ClientStreamingCall<Request, Response> {
        let response = channel.eventLoop.makePromise(of: ByteBuffer.self)
        let opened = channel.eventLoop.makePromise(of: UInt32.self)
        response.futureResult.whenFailure { opened.fail($0) }  // refused before it opened
        let envelope = TTRPCRequest(
            service: service, method: method, payload: ByteBuffer(),
            timeoutNanos: timeout.map(Self.nanoseconds) ?? 0, metadata: metadata)
        start(ClientCall(request: .message(envelope), kind: .clientStreaming(opened: opened), promise: response))
        let id = try await opened.futureResult.get()
        return ClientStreamingCall(id: id, channel: channel, handler: handler, response: response.futureResult)
    }

    /// A typed server-streaming call: the messages the server sends, then the end of the
    /// stream (or the error status that ended it). A consumer that falls behind pauses the
    /// connection's reads (`ServerStream`).
    public func serverStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        service: String, method: String, request: Request, as: Response.Type = Response.self,
        metadata: Metadata = Metadata(), timeout: Duration? = nil
    ) -> ServerStream<Response> {
        let (stream, continuation) = AsyncThrowingStream<Response, Error>.makeStream()
        let flow = ServerStreamFlow(channel: channel)
        continuation.onTermination = { _ in flow.ended() }
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        let envelope = TTRPCRequest(
            service: service, method: method, payload: request.encoded(allocator: channel.allocator),
            timeoutNanos: timeout.map(Self.nanoseconds) ?? 0, metadata: metadata)
        promise.futureResult.whenComplete { result in
            switch result {
            case .success: continuation.finish()
            case let .failure(error): continuation.finish(throwing: error)
            }
        }
        start(ClientCall(request: .message(envelope), kind: .serverStreaming(onData: { data in
            do {
                if case .enqueued = continuation.yield(try Response(protobuf: data)) { flow.arrived() }
            } catch {
                continuation.finish(throwing: RPCError.internal("stream message: \(error)"))
            }
        }), promise: promise))
        return ServerStream(messages: stream, flow: flow)
    }

    /// Sends close_notify and closes the connection.
    public func close() async {
        try? await channel.close()
    }

    /// The duration in nanoseconds, saturating (a negative one counts as "already due").
    static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        let (ns, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return s < 0 ? 1 : Int64.max }
        return max(1, ns.addingReportingOverflow(atto / 1_000_000_000).overflow ? Int64.max : ns + atto / 1_000_000_000)
    }
}

/// Hands the pipeline's handler out of the channel initializer.
private final class HandlerSlot: Sendable {
    let handler = Mutex<NIOLoopBound<TTRPCClientHandler>?>(nil)
}

/// Moves a value to the event loop that will own it; used only for values built on
/// one thread and handed over whole.
struct UnsafeTransfer<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A client-streaming call in progress (`RPCClient.clientStreaming`).
public struct ClientStreamingCall<Request: ProtoMessage, Response: ProtoMessage>: Sendable {
    let id: UInt32
    let channel: any Channel
    let handler: NIOLoopBound<TTRPCClientHandler>
    let response: EventLoopFuture<ByteBuffer>

    /// Sends one message; returns once it is written. Throws the server's status if the
    /// call has already ended (a refusal comes back while the client is still sending).
    public func send(_ message: Request) async throws {
        do { try await write(message.encoded(allocator: channel.allocator), last: false) } catch is CallEnded {
            _ = try await response.get()  // the server's answer, usually a refusal, is the error
            throw RPCError(.cancelled, "the server answered before the stream was complete")
        }
    }

    /// Ends the stream and waits for the answer.
    public func finish() async throws -> Response {
        do { try await write(ByteBuffer(), last: true) } catch is CallEnded {}  // answered already
        return try Response(protobuf: try await response.get())
    }

    private func write(_ payload: ByteBuffer, last: Bool) async throws {
        let handler = self.handler, id = self.id
        let boxed = UnsafeTransfer(payload)
        try await channel.eventLoop.flatSubmit { handler.value.sendData(id, boxed.value, last: last) }.get()
    }
}

