import ChukanCore
import ChukanProto
import ChukanTLS
import ChukanWire
import NIOCore

/// A client stream's call has ended (its answer came) before the stream did.
struct CallEnded: Error {}

/// One call handed to the client's pipeline.
struct ClientCall {
    enum Kind {
        case unary
        /// Data frames go to `onData` as they arrive; the final response completes the promise.
        case serverStreaming(onData: (ByteBuffer) -> Void)
        /// Opened with the remote-open flag; `opened` gets the stream id, the caller then
        /// sends data frames (`sendData`); the final response completes the promise.
        case clientStreaming(opened: EventLoopPromise<UInt32>)
    }
    enum Request {
        case message(TTRPCRequest)
        /// An already-encoded `ttrpc.Request` (load generators reuse one for every call).
        case encoded(ByteBuffer, timeoutNanos: Int64)
    }
    var request: Request
    var kind: Kind
    var promise: EventLoopPromise<ByteBuffer>
}

/// The client side of a ttrpc connection: numbers streams (odd, increasing), matches
/// responses to calls whatever their order, enforces client-side deadlines, and fails
/// every open call when the connection goes.
final class TTRPCClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var kind: ClientCall.Kind
        var promise: EventLoopPromise<ByteBuffer>
        var timer: Scheduled<Void>?
    }

    private var decoder: FrameDecoder
    private let maxMessageSize: Int
    private var cumulation: ByteBuffer?
    private var nextStreamID: UInt32 = 1
    private var pending: [UInt32: Pending] = [:]
    private var context: ChannelHandlerContext?
    private var inRead = false
    private var needsFlush = false
    private var flushScheduled = false
    private var closedError: RPCError?
    private var lastError: String?
    let handshake: EventLoopPromise<TLSHandshakeCompleted>

    init(maxMessageSize: Int, handshake: EventLoopPromise<TLSHandshakeCompleted>) {
        self.maxMessageSize = maxMessageSize
        self.decoder = FrameDecoder(maxLength: min(maxMessageSize, FrameHeader.protocolMaxLength))
        self.handshake = handshake
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Sends `call` (on the event loop).
    func start(_ call: ClientCall) {
        guard let context, closedError == nil else {
            call.promise.fail(closedError ?? RPCError.unavailable("the connection is closed"))
            return
        }
        guard nextStreamID < UInt32.max - 1 else {
            call.promise.fail(RPCError.unavailable("stream ids exhausted on this connection; reconnect"))
            return
        }
        let id = nextStreamID
        nextStreamID += 2
        var entry = Pending(kind: call.kind, promise: call.promise)
        let timeoutNanos: Int64
        switch call.request {
        case let .message(m): timeoutNanos = m.timeoutNanos
        case let .encoded(_, t): timeoutNanos = t
        }
        if timeoutNanos > 0 {
            entry.timer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(timeoutNanos)) { [self] in
                if let p = pending.removeValue(forKey: id) {
                    p.promise.fail(RPCError.deadlineExceeded("deadline exceeded (client side)"))
                }
            }
        }
        pending[id] = entry
        var flags: FrameFlags = []
        if case .serverStreaming = call.kind { flags.insert(.remoteClosed) }
        if case .clientStreaming = call.kind { flags.insert(.remoteOpen) }
        var out: ByteBuffer
        switch call.request {
        case let .message(m):
            out = context.channel.allocator.buffer(capacity: m.payload.readableBytes + 64)
            out.writeFrame(streamID: id, type: .request, flags: flags) { m.encode(into: &$0) }
        case let .encoded(bytes, _):
            out = context.channel.allocator.buffer(capacity: bytes.readableBytes + FrameHeader.size)
            out.writeFrame(Frame(streamID: id, type: .request, flags: flags, data: bytes))
        }
        if out.readableBytes - FrameHeader.size > FrameHeader.protocolMaxLength {
            pending.removeValue(forKey: id)?.timer?.cancel()
            call.promise.fail(RPCError.resourceExhausted("request of \(out.readableBytes - FrameHeader.size) bytes exceeds ttrpc's 4 MiB frame limit"))
            return
        }
        context.write(wrapOutboundOut(out), promise: nil)
        scheduleFlush(context)
        if case let .clientStreaming(opened) = call.kind { opened.succeed(id) }
    }

    /// Sends one message of a client stream (`last`: the stream's end, remote closed). The
    /// future completes once the bytes are written: a sender awaiting it goes at the
    /// connection's pace. Fails once the call has ended (e.g. the server refused it).
    func sendData(_ id: UInt32, _ payload: ByteBuffer, last: Bool) -> EventLoopFuture<Void> {
        guard let context else { return handshake.futureResult.eventLoop.makeFailedFuture(closedError ?? RPCError.unavailable("the connection is closed")) }
        guard pending[id] != nil else { return context.eventLoop.makeFailedFuture(CallEnded()) }
        guard payload.readableBytes <= FrameHeader.protocolMaxLength else {
            return context.eventLoop.makeFailedFuture(RPCError.resourceExhausted("message of \(payload.readableBytes) bytes exceeds ttrpc's 4 MiB frame limit"))
        }
        var out = context.channel.allocator.buffer(capacity: payload.readableBytes + FrameHeader.size)
        out.writeFrame(Frame(streamID: id, type: .data, flags: last ? [.remoteClosed] : [], data: payload))
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(out), promise: promise)
        return promise.futureResult
    }

    private func scheduleFlush(_ context: ChannelHandlerContext) {
        if inRead {
            needsFlush = true
        } else if !flushScheduled {
            flushScheduled = true
            context.eventLoop.assumeIsolated().execute { [self] in
                flushScheduled = false
                self.context?.flush()
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if var c = cumulation, c.readableBytes > 0 {
            cumulation = nil
            c.writeBuffer(&incoming)
            incoming = c
        }
        inRead = true
        while let decoded = decoder.next(from: &incoming) {
            switch decoded {
            case let .frame(frame):
                handle(frame)
            case let .oversized(header):
                pending.removeValue(forKey: header.streamID).map {
                    $0.timer?.cancel()
                    $0.promise.fail(RPCError.resourceExhausted("response of \(header.length) bytes exceeds the client's limit"))
                }
            case .notTTRPC:
                fail(RPCError.unavailable("the server sent something that is not ttrpc"), context: context)
                context.close(promise: nil)
                return
            }
        }
        if incoming.readableBytes > 0 { cumulation = incoming }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inRead = false
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    private func handle(_ frame: Frame) {
        let id = frame.header.streamID
        switch frame.header.type {
        case .response?:
            guard let p = pending.removeValue(forKey: id) else { return }  // timed out already
            p.timer?.cancel()
            do {
                let response = try TTRPCResponse(protobuf: frame.data, limit: maxMessageSize)
                if let error = response.status.error {
                    p.promise.fail(error)
                } else {
                    p.promise.succeed(response.payload)
                }
            } catch {
                p.promise.fail(RPCError.internal("response envelope: \(error)"))
            }
        case .data?:
            guard let p = pending[id], case let .serverStreaming(onData) = p.kind else { return }
            let last = frame.header.flags.contains(.remoteClosed)
            // An empty last data frame only marks the end; it is not a message.
            if !(last && frame.data.readableBytes == 0) { onData(frame.data) }
            if last {
                pending.removeValue(forKey: id)?.timer?.cancel()
                p.promise.succeed(ByteBuffer())
            }
        default:
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let done = event as? TLSHandshakeCompleted { handshake.succeed(done) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        lastError = "\(error)"
        if let tls = error as? TLSError { handshake.fail(tls) }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let reason = lastError.map { "the connection closed: \($0)" } ?? "the connection closed"
        handshake.fail(TLSError.handshakeFailed(reason))
        fail(RPCError.unavailable(reason), context: context)
        context.fireChannelInactive()
    }

    private func fail(_ error: RPCError, context: ChannelHandlerContext) {
        closedError = error
        let calls = pending
        pending.removeAll()
        for (_, p) in calls {
            p.timer?.cancel()
            p.promise.fail(error)
        }
    }
}
