import ChukanCore
import ChukanTLS
import ChukanWire
import NIOCore
import NIOPosix
import Synchronization

/// A TLS connection that sends bytes exactly as given and collects every frame the
/// server sends back: for testing what the server does with bad input.
final class RawConnection: Sendable {
    let channel: any Channel
    private let inbox: Inbox

    final class Inbox: Sendable {
        let state = Locked<(frames: [Frame], closed: Bool)>(([], false))
        let closeNotify = Locked(false)
    }

    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let inbox: Inbox
        let handshake: EventLoopPromise<Void>
        var decoder = FrameDecoder()
        var buffer = ByteBuffer()
        init(inbox: Inbox, handshake: EventLoopPromise<Void>) {
            self.inbox = inbox
            self.handshake = handshake
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var b = unwrapInboundIn(data)
            buffer.writeBuffer(&b)
            while case let .frame(f)? = decoder.next(from: &buffer) {
                inbox.state.withLock { $0.frames.append(f) }
            }
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is TLSHandshakeCompleted { handshake.succeed() }
            if event is TLSCloseNotifyReceived { inbox.closeNotify.withLock { $0 = true } }
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) {
            handshake.fail(error)
            context.close(promise: nil)
        }
        func channelInactive(context: ChannelHandlerContext) {
            handshake.fail(ChannelError.ioOnClosedChannel)
            inbox.state.withLock { $0.closed = true }
        }
    }

    private init(channel: any Channel, inbox: Inbox) {
        self.channel = channel
        self.inbox = inbox
    }

    static func connect(port: Int, tls: TLSContext) async throws -> RawConnection {
        let inbox = Inbox()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let handshake = loop.makePromise(of: Void.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(OpenSSLHandler(context: tls))
                    try channel.pipeline.syncOperations.addHandler(Collector(inbox: inbox, handshake: handshake))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        } catch {
            handshake.fail(error)
            throw error
        }
        try await handshake.futureResult.get()
        return RawConnection(channel: channel, inbox: inbox)
    }

    /// Stops reading from the server (TCP then pushes back on its writes).
    func stopReading() async throws {
        try await channel.setOption(ChannelOptions.autoRead, value: false)
    }

    func resumeReading() async throws {
        try await channel.setOption(ChannelOptions.autoRead, value: true)
        channel.read()
    }

    func send(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes)
    }

    func sendFrame(id: UInt32, type: UInt8, flags: UInt8 = 0, data: ByteBuffer) async throws {
        var b = ByteBuffer()
        b.writeFrameHeader(FrameHeader(length: UInt32(data.readableBytes), streamID: id, typeByte: type, flags: FrameFlags(rawValue: flags)))
        var d = data
        b.writeBuffer(&d)
        try await send(b)
    }

    func sendRequest(id: UInt32, service: String, method: String, payload: ByteBuffer, timeoutNanos: Int64 = 0) async throws {
        let r = TTRPCRequest(service: service, method: method, payload: payload, timeoutNanos: timeoutNanos)
        try await sendFrame(id: id, type: 1, data: r.encoded())
    }

    /// The next frame, or nil if the connection closed or nothing came within `timeout`.
    func nextFrame(timeout: Duration = .seconds(30)) async throws -> Frame? {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            let (frame, closed): (Frame?, Bool) = inbox.state.withLock { s in
                s.frames.isEmpty ? (nil, s.closed) : (s.frames.removeFirst(), s.closed)
            }
            if let frame { return frame }
            if closed { return nil }
            try await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    /// The next response frame decoded, checked to be on `id`.
    func nextResponse(timeout: Duration = .seconds(30)) async throws -> (UInt32, TTRPCResponse)? {
        guard let f = try await nextFrame(timeout: timeout) else { return nil }
        guard f.header.type == .response else { return nil }
        return (f.header.streamID, try TTRPCResponse(protobuf: f.data))
    }

    func waitClosed(timeout: Duration = .seconds(30)) async throws -> Bool {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if inbox.state.withLock({ $0.closed && $0.frames.isEmpty }) { return true }
            inbox.state.withLock { s in s.frames.removeAll() }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// Whether the server ended the TLS session with close_notify.
    var isClosed: Bool { inbox.state.withLock { $0.closed } }

    var receivedCloseNotify: Bool { inbox.closeNotify.withLock { $0 } }

    /// TLS's half-close: close_notify, with the socket left open for the answers.
    func closeWrite() async throws { try await channel.close(mode: .output) }

    func close() async { try? await channel.close() }
}
