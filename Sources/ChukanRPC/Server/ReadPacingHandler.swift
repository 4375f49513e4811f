import NIOCore

/// Paces what one connection may make the server read: a token bucket of bytes, refilled at
/// `bytesPerSecond` up to `burst`. It sits first in the pipeline, on the raw (encrypted)
/// bytes, and holds back the channel's `read` while the bucket is empty, so a client sending
/// maximum-size frames in a loop costs the server no more decryption and decoding a second
/// than the rate allows; the kernel's buffers, then TCP, push back on the client. A client
/// within the rate never waits. Holding `read` (rather than toggling auto-read) leaves
/// auto-read to the handlers that already use it for back-pressure; a held read is sent
/// again from the pipeline's tail, so those handlers see it, and dropped if auto-read was
/// turned off meanwhile (whoever turns it on reads again). Each hold is announced
/// (`ReadsPacedEvent`) so that the frame timeout does not blame the client for it.
final class ReadPacingHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var bucket: ByteBucket
    private var heldRead = false
    private var resume: Scheduled<Void>?

    init(bytesPerSecond: Int, burst: Int) {
        bucket = ByteBucket(bytesPerSecond: bytesPerSecond, burst: burst)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bucket.spend(unwrapInboundIn(data).readableBytes, at: .now())
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        let wait = bucket.wait(at: .now())
        guard wait > .zero else { return context.read() }
        guard !heldRead else { return }
        heldRead = true
        context.fireUserInboundEventTriggered(ReadsPacedEvent())
        resume = context.eventLoop.assumeIsolated().scheduleTask(in: wait) { [self] in
            heldRead = false
            resume = nil
            let autoRead = (try? context.channel.syncOptions?.getOption(ChannelOptions.autoRead)) ?? true
            if autoRead && context.channel.isActive { context.channel.read() }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension ReadPacingHandler: Sendable {}

/// Bytes allowed: `burst` at most, refilled at `bytesPerSecond`. Spending may overdraw it
/// (a read brings what it brings); the next read waits until it is positive again.
public struct ByteBucket: Sendable {
    public let bytesPerSecond: Int
    public let burst: Int
    private var tokens: Double
    private var at: NIODeadline?

    public init(bytesPerSecond: Int, burst: Int) {
        self.bytesPerSecond = max(1, bytesPerSecond)
        self.burst = max(1, burst)
        tokens = Double(self.burst)
    }

    private mutating func refill(at now: NIODeadline) {
        if let at, now > at {
            tokens = min(Double(burst), tokens + Double((now - at).nanoseconds) / 1e9 * Double(bytesPerSecond))
        }
        at = now
    }

    public mutating func spend(_ bytes: Int, at now: NIODeadline) {
        refill(at: now)
        tokens -= Double(bytes)
    }

    /// How long until a read may go ahead: zero while the bucket holds anything.
    public mutating func wait(at now: NIODeadline) -> TimeAmount {
        refill(at: now)
        guard tokens <= 0 else { return .zero }
        // Until the bucket holds a little again (1 ms at least, so the timer is not spun).
        let seconds = (1 - tokens) / Double(bytesPerSecond)
        return .nanoseconds(max(1_000_000, Int64(seconds * 1e9)))
    }
}
