import ChukanCore
import ChukanProto
import ChukanTLS
import ChukanWire
import Logging
import NIOCore

/// Serves ttrpc on one connection: splits plaintext into frames, opens a stream per
/// request, routes it, and writes each response as soon as it is ready (out of order).
///
/// Everything here runs on the connection's event loop. Responses finished while a
/// read is being processed are flushed once at `channelReadComplete`; those finished
/// later are flushed once per event-loop tick. Bad input is answered on its stream
/// when the stream id is known, and closes only this connection when it is not.
final class TTRPCServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Limits: Sendable {
        var maxMessageSize: Int
        var maxConcurrentStreams: Int
        /// A frame begun must be whole within this long, or the connection is closed; nil never.
        var frameTimeout: TimeAmount? = nil
        /// A client stream silent this long ends with DEADLINE_EXCEEDED (time the server stops
        /// reading for the stream's own unread messages does not count); nil never.
        var clientStreamIdleTimeout: TimeAmount? = nil
    }

    private struct ActiveStream {
        var service: String
        var method: String
        var start: NIODeadline
        var timer: Scheduled<Void>?
        var task: Task<Void, Never>?
        /// A client stream's messages not yet taken by the handler, and whether the client
        /// said it sent its last.
        var inbox: AsyncThrowingStream<ByteBuffer, Error>.Continuation?
        var inboxBytes = 0
        var remoteClosed = false
        /// When the client stream last brought a message, and the timer that ends it if it
        /// stays silent (`Limits.clientStreamIdleTimeout`).
        var lastMessage: NIODeadline?
        var idleTimer: Scheduled<Void>?
        /// When the idle timer was due to fire.
        var idleCheckDue: NIODeadline?

        func cancelTimers() {
            timer?.cancel()
            idleTimer?.cancel()
        }
    }

    /// Client-stream bytes received but not yet taken, over all streams: above the high
    /// mark the connection is not read until they fall below the low one.
    private var inboxBytes = 0
    private var readsPaused = false
    /// The read rate held back a read since the frame timer last looked (`ReadsPacedEvent`).
    private var pacedSinceFrameCheck = false
    static let inboxHighWater = 8 << 20
    static let inboxLowWater = 2 << 20

    private let router: RPCRouter
    private let limits: Limits
    private let metrics: ServerMetrics
    private var logger: Logger

    private var decoder: FrameDecoder
    private var cumulation: ByteBuffer?
    private var lastStreamID: UInt32 = 0
    private var streams: [UInt32: ActiveStream] = [:]
    private var peer: PeerIdentity?
    private var remoteAddress: SocketAddress?
    private var draining = false
    /// Bytes of answers written since the connection stopped taking them (unwritable): a
    /// client that sends calls and reads no answers is bounded by `unreadAnswerLimit`.
    private var unreadAnswerBytes = 0
    /// Past this many bytes of answers waiting unsent, new calls are refused with
    /// RESOURCE_EXHAUSTED before they run (their answers would only be more memory).
    static let unreadAnswerLimit = 16 << 20
    /// Bytes written since the last flush: TLS holds them as plaintext until the flush, so
    /// the channel's writability does not see them; past the high mark they are flushed
    /// at once, so that it does.
    private var unflushedBytes = 0
    private static let flushEarlyAt = 512 * 1024
    /// The client sent TLS close_notify: it sends nothing more, and the connection closes
    /// once the calls it made are answered.
    private var peerFinished = false
    private var closed = false
    private var inRead = false
    private var needsFlush = false
    private var flushScheduled = false
    /// Server-streaming handlers waiting for the connection to take more, by stream.
    private var writabilityWaiters: [(stream: UInt32, promise: EventLoopPromise<Void>)] = []
    private var context: ChannelHandlerContext?
    private var errorBudget = ProtocolErrorBudget()
    private var recentlyEnded = RecentlyEnded()
    /// While part of a frame has arrived (or an oversized one is being skipped): since when,
    /// and the timer that closes the connection if it is not whole within the frame timeout.
    private var partialSince: NIODeadline?
    private var partialTimer: Scheduled<Void>?

    init(router: RPCRouter, limits: Limits, metrics: ServerMetrics, logger: Logger) {
        self.router = router
        self.limits = limits
        self.metrics = metrics
        self.logger = logger
        self.decoder = FrameDecoder(maxLength: limits.maxMessageSize)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        remoteAddress = context.channel.remoteAddress
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard !closed else { return }
        metrics.bytesReceived.increment(by: incoming.readableBytes)
        if var c = cumulation, c.readableBytes > 0 {
            cumulation = nil  // keep the buffer uniquely referenced while appending
            c.writeBuffer(&incoming)
            incoming = c
        }
        inRead = true
        let wasSkipping = decoder.isSkipping
        var framesEnded = false
        while !closed, let decoded = decoder.next(from: &incoming) {
            framesEnded = true
            switch decoded {
            case let .frame(frame):
                handle(frame, context: context)
            case let .oversized(header):
                streamError(header.streamID, .resourceExhausted(
                    "frame data of \(header.length) bytes exceeds the limit of \(limits.maxMessageSize) bytes"),
                    context: context)
            case let .notTTRPC(header):
                metrics.protocolErrors.increment()
                logger.notice("closing connection: not a ttrpc stream", metadata: ["length": "\(header.length)"])
                closeConnection(context: context)
            }
        }
        if incoming.readableBytes > 0 {
            if incoming.readerIndex > 64 * 1024 { incoming.discardReadBytes() }
            cumulation = incoming
        }
        // A frame ended in this read, or an oversized one finished being skipped: what is left begins the next.
        let newFrame = framesEnded || (wasSkipping && !decoder.isSkipping)
        notePartialFrame(pending: incoming.readableBytes > 0 || decoder.isSkipping, newFrame: newFrame, context: context)
    }

    // MARK: frame deadline

    /// Slowloris: a client that starts a frame and never finishes it would hold its
    /// connection (and the bytes so far) until the idle timeout, since each trickle of bytes
    /// counts as traffic. A frame begun must be whole within the frame timeout instead.
    private func notePartialFrame(pending: Bool, newFrame: Bool, context: ChannelHandlerContext) {
        guard let timeout = limits.frameTimeout, !closed else { return }
        guard pending else {
            partialSince = nil
            partialTimer?.cancel()
            partialTimer = nil
            return
        }
        // The bytes left over begin a new frame when one ended in this read.
        if partialSince == nil || newFrame { partialSince = .now() }
        if partialTimer == nil { armFrameTimer(in: timeout, context: context) }
    }

    private func armFrameTimer(in delay: TimeAmount, context: ChannelHandlerContext) {
        partialTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            partialTimer = nil
            frameTimerFired()
        }
    }

    private func frameTimerFired() {
        guard let since = partialSince, let timeout = limits.frameTimeout, let context, !closed else { return }
        let now = NIODeadline.now()
        if now < since + timeout { return armFrameTimer(in: since + timeout - now, context: context) }
        // Fired well after it was due: this loop was stalled, and the rest of the frame may be
        // waiting unread in the socket. Look again once the loop has read it.
        if now - (since + timeout) > .milliseconds(500) {
            partialSince = now - timeout + .seconds(1)
            return armFrameTimer(in: .seconds(1), context: context)
        }
        // Reads stopped by this side (a client stream's unread messages, responses the
        // client has not read yet, or the read rate) are not the client's slowness: wait
        // another period.
        if readsPaused || !context.channel.isWritable || pacedSinceFrameCheck {
            pacedSinceFrameCheck = false
            partialSince = now
            return armFrameTimer(in: timeout, context: context)
        }
        metrics.protocolErrors.increment()
        logger.notice("closing connection: a frame was not completed in time", metadata: ["frame_timeout_s": "\(timeout.nanoseconds / 1_000_000_000)"])
        closeConnection(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inRead = false
        if needsFlush {
            needsFlush = false
            unflushedBytes = 0
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    private func handle(_ frame: Frame, context: ChannelHandlerContext) {
        let id = frame.header.streamID
        switch frame.header.type {
        case .request?:
            handleRequest(frame, context: context)
        case .data?:
            if var stream = streams[id], let inbox = stream.inbox {
                guard !stream.remoteClosed else {
                    return streamError(id, .invalidArgument("data frame on stream \(id) after its last (remote closed)"), context: context)
                }
                // An empty frame is a message too (an all-default protobuf encodes to nothing),
                // except the empty last frame that only marks the end.
                let closes = frame.header.flags.contains(.remoteClosed)
                stream.lastMessage = .now()
                if !(closes && frame.data.readableBytes == 0) {
                    var message = frame.data
                    // A small message sliced from a large read buffer (64 KiB, or a big frame's)
                    // would keep all of it alive while it waits: copied out instead.
                    if message.storageCapacity > 2 * message.readableBytes + 4096 {
                        var copy = context.channel.allocator.buffer(capacity: message.readableBytes)
                        copy.writeBuffer(&message)
                        message = copy
                    }
                    let cost = ClientStream.inboxCost(of: message)
                    stream.inboxBytes += cost
                    inboxBytes += cost
                    inbox.yield(message)
                }
                if closes {
                    stream.remoteClosed = true
                    stream.idleTimer?.cancel()
                    inbox.finish()
                }
                streams[id] = stream
                if inboxBytes > Self.inboxHighWater && !readsPaused {
                    readsPaused = true
                    metrics.clientStreamPaused()
                    context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
                }
                return
            }
            if streams[id] != nil {
                streamError(id, .invalidArgument("stream \(id) does not accept data frames"), context: context)
            } else {
                // A client stream the server answered early: its data still in flight is the
                // client's bad luck, not abuse — not charged, up to a point.
                let inFlight = recentlyEnded.forgive(id)
                streamError(id, .invalidArgument("data frame on stream \(id), which is not open"), charged: !inFlight, context: context)
            }
        case .response?:
            streamError(id, .invalidArgument("clients do not send response frames"), context: context)
        case nil:
            let hex = String(frame.header.typeByte, radix: 16)
            streamError(id, .invalidArgument("unknown frame type 0x\(hex.count == 1 ? "0" : "")\(hex)"), context: context)
        }
    }

    private func handleRequest(_ frame: Frame, context: ChannelHandlerContext) {
        let id = frame.header.streamID
        guard id % 2 == 1 else {
            return streamError(id, .invalidArgument("stream id \(id) is even; clients open odd stream ids"), context: context)
        }
        guard id > lastStreamID else {
            return streamError(id, .invalidArgument("stream id \(id) was already used; stream ids must increase"), context: context)
        }
        lastStreamID = id
        let start = NIODeadline.now()
        let request: TTRPCRequest
        do {
            request = try TTRPCRequest(protobuf: frame.data, limit: limits.maxMessageSize)
        } catch {
            return streamError(id, .invalidArgument("request envelope: \(error)"), context: context)
        }
        // Route first: until a name is known to exist, metrics label it "unknown", so a
        // caller cannot grow the label space.
        let handler: MethodHandler
        switch router.handler(service: request.service, method: request.method) {
        case let .success(h): handler = h
        case let .failure(e):
            return respond(id, status: RPCStatus(e), payload: nil, service: "unknown", method: "unknown", start: start, context: context)
        }
        let service = request.service
        let method = request.method
        func refuse(_ error: RPCError) {
            respond(id, status: RPCStatus(error), payload: nil, service: service, method: method, start: start, context: context)
        }
        if draining { return refuse(.unavailable("the server is shutting down")) }
        // A client that reads none of its answers gets no more calls run: an answer is
        // never dropped once its call has run (it may have taken effect), so the bound is
        // set here, before the handler starts.
        if unreadAnswerBytes > Self.unreadAnswerLimit && !context.channel.isWritable {
            return refuse(.resourceExhausted("the client is not reading its answers: \(unreadAnswerBytes) bytes of them wait unsent"))
        }
        if case .clientStreaming = handler {
            guard frame.header.flags.contains(.remoteOpen) else {
                return refuse(.invalidArgument("\(service)/\(method) takes a client stream: open it with the remote-open flag"))
            }
        } else if frame.header.flags.contains(.remoteOpen) {
            return refuse(.invalidArgument("\(service)/\(method) does not take a client stream"))
        }
        // Calls answered inline never occupy a stream; these count the ones still running.
        guard streams.count < limits.maxConcurrentStreams else {
            return refuse(.resourceExhausted("too many concurrent streams on this connection (limit \(limits.maxConcurrentStreams))"))
        }
        guard request.timeoutNanos >= 0 else { return refuse(.invalidArgument("timeout_nano must not be negative")) }
        let deadline: NIODeadline? = request.timeoutNanos > 0 ? start + .nanoseconds(request.timeoutNanos) : nil

        let callContext = ServerCallContext(
            service: service, method: method, streamID: id, metadata: request.metadata, deadline: deadline,
            peer: peer, remoteAddress: remoteAddress, eventLoop: context.eventLoop,
            allocator: context.channel.allocator, logger: logger)
        let payload = request.payload

        switch handler {
        case let .unary(body):
            if let deadline, deadline <= .now() { return refuse(.deadlineExceeded("deadline exceeded before the call started")) }
            let result: UnaryResult
            do {
                result = try body(payload, callContext)
            } catch {
                return respond(id, status: status(for: error, logger: callContext.logger), payload: nil, service: service, method: method, start: start, context: context)
            }
            switch result {
            case let .now(response):
                respond(id, status: .ok, payload: response, service: service, method: method, start: start, context: context)
            case let .later(future):
                open(id, service: service, method: method, start: start, deadline: deadline, context: context)
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                future.hop(to: context.eventLoop).whenComplete { result in
                    bound.value.finish(id, result)
                }
            }
        case let .unaryAsync(body):
            open(id, service: service, method: method, start: start, deadline: deadline, context: context)
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let loop = context.eventLoop
            streams[id]?.task = Task {
                let result: Result<ByteBuffer, Error>
                do { result = .success(try await body(payload, callContext)) } catch { result = .failure(error) }
                loop.execute { bound.value.finish(id, result) }
            }
        case let .clientStreaming(body):
            open(id, service: service, method: method, start: start, deadline: deadline, context: context)
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let loop = context.eventLoop
            let (messages, inbox) = AsyncThrowingStream<ByteBuffer, Error>.makeStream()
            streams[id]?.inbox = inbox
            if frame.header.flags.contains(.remoteClosed) {
                // Opened and closed in one frame: a stream of no messages.
                streams[id]?.remoteClosed = true
                inbox.finish()
            } else if let idle = limits.clientStreamIdleTimeout {
                streams[id]?.lastMessage = start
                armIdleTimer(id, in: idle, context: context)
            }
            let stream = ClientStream(base: messages) { n in loop.execute { bound.value.taken(id, n) } }
            streams[id]?.task = Task {
                let result: Result<ByteBuffer, Error>
                do { result = .success(try await body(stream, callContext)) } catch { result = .failure(error) }
                loop.execute { bound.value.finish(id, result) }
            }
        case let .serverStreaming(body):
            open(id, service: service, method: method, start: start, deadline: deadline, context: context)
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let loop = context.eventLoop
            let writer = ServerStreamWriter { data in
                loop.flatSubmit { bound.value.sendData(id, data, on: loop) }
            }
            streams[id]?.task = Task {
                let result: Result<ByteBuffer, Error>
                do {
                    try await body(payload, callContext, writer)
                    result = .success(ByteBuffer())
                } catch { result = .failure(error) }
                loop.execute { bound.value.finish(id, result) }
            }
        }
    }

    // MARK: streams

    private func open(_ id: UInt32, service: String, method: String, start: NIODeadline, deadline: NIODeadline?, context: ChannelHandlerContext) {
        var stream = ActiveStream(service: service, method: method, start: start)
        if let deadline {
            stream.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
                deadlineExpired(id)
            }
        }
        streams[id] = stream
    }

    private func armIdleTimer(_ id: UInt32, in delay: TimeAmount, context: ChannelHandlerContext) {
        streams[id]?.idleCheckDue = .now() + delay
        streams[id]?.idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            clientStreamIdleCheck(id)
        }
    }

    /// Ends a client stream that brought nothing for the idle timeout. Time the server
    /// was not reading (its own back-pressure) is not the client's silence.
    private func clientStreamIdleCheck(_ id: UInt32) {
        guard let context, let timeout = limits.clientStreamIdleTimeout, let stream = streams[id], !stream.remoteClosed else { return }
        let now = NIODeadline.now()
        // Reads stopped by this side for the stream's own unread messages are not the
        // client's silence. (Answers the client does not read are: it is the client that
        // stopped, and the connection must not be held open for it.)
        if readsPaused {
            streams[id]?.lastMessage = now
            return armIdleTimer(id, in: timeout, context: context)
        }
        // Fired well after it was due: this loop was stalled, and the stream's messages may be
        // waiting unread in the socket. Look again once the loop has read them (as the frame
        // timer does).
        if let due = stream.idleCheckDue, now - due > .milliseconds(500) { return armIdleTimer(id, in: .seconds(1), context: context) }
        let due = (stream.lastMessage ?? stream.start) + timeout
        if now < due { return armIdleTimer(id, in: due - now, context: context) }
        end(id, answering: .deadlineExceeded("the client stream brought no message for \(timeout.nanoseconds / 1_000_000_000) s"), context: context)
    }

    /// Ends a running stream from this side: its timers, task, waits and unread messages
    /// go (the handler's message stream ends with `inboxError`, by default `error`), and the
    /// client is answered `error`.
    private func end(_ id: UInt32, answering error: RPCError, inboxError: Error? = nil, context: ChannelHandlerContext) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        stream.cancelTimers()
        stream.task?.cancel()
        releaseWaiters(of: id)
        dropInbox(id, stream, error: inboxError ?? error)
        respond(id, status: RPCStatus(error), payload: nil, service: stream.service, method: stream.method, start: stream.start, context: context)
    }

    /// The handler took `n` bytes of stream `id`'s messages.
    private func taken(_ id: UInt32, _ n: Int) {
        // A stream already ended released what it held when it ended (`dropInbox`).
        guard streams[id] != nil else { return }
        streams[id]!.inboxBytes -= n
        release(n)
    }

    /// Bytes no longer held for client streams; reading resumes below the low mark.
    private func release(_ n: Int) {
        inboxBytes -= n
        if readsPaused && inboxBytes < Self.inboxLowWater, let context {
            readsPaused = false
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        }
    }

    /// A stream's messages never taken are dropped with it. A client stream answered before
    /// the client said it sent its last may still have data frames on the way: those are
    /// answered without charging the error budget, a few dozen per stream, for the last
    /// few such streams (`RecentlyEnded`).
    private func dropInbox(_ id: UInt32, _ stream: ActiveStream, error: Error?) {
        guard let inbox = stream.inbox else { return }
        if !stream.remoteClosed { recentlyEnded.add(id) }
        if let error { inbox.finish(throwing: error) } else { inbox.finish() }
        if stream.inboxBytes > 0 { release(stream.inboxBytes) }
    }

    private func finish(_ id: UInt32, _ result: Result<ByteBuffer, Error>) {
        // Gone already: the deadline passed, the stream was reset, or the connection closed.
        guard let context, let stream = streams.removeValue(forKey: id) else { return }
        stream.cancelTimers()
        dropInbox(id, stream, error: nil)
        switch result {
        case let .success(payload):
            respond(id, status: .ok, payload: payload, service: stream.service, method: stream.method, start: stream.start, context: context)
        case let .failure(error):
            var callLogger = logger
            callLogger[metadataKey: "rpc"] = "\(stream.service)/\(stream.method)"
            respond(id, status: status(for: error, logger: callLogger), payload: nil, service: stream.service, method: stream.method, start: stream.start, context: context)
        }
    }

    private func deadlineExpired(_ id: UInt32) {
        guard let context, let start = streams[id]?.start else { return }
        let ms = (NIODeadline.now() - start).nanoseconds / 1_000_000
        end(id, answering: .deadlineExceeded("deadline exceeded after \(ms) ms"), inboxError: CancellationError(), context: context)
    }

    /// Writes one data frame of a server-streaming call; the future completes when the
    /// connection can take more.
    private func sendData(_ id: UInt32, _ payload: ByteBuffer, on loop: any EventLoop) -> EventLoopFuture<Void> {
        guard let context, !closed, streams[id] != nil else {
            return loop.makeFailedFuture(RPCError(.cancelled, "the call was cancelled"))
        }
        guard payload.readableBytes <= FrameHeader.protocolMaxLength else {
            return loop.makeFailedFuture(RPCError.resourceExhausted(
                "stream message of \(payload.readableBytes) bytes exceeds ttrpc's 4 MiB frame limit"))
        }
        // A message waits for the connection to take more before it is written, not after:
        // woken together, many streams would otherwise each add a frame past the mark.
        guard context.channel.isWritable else {
            let promise = context.eventLoop.makePromise(of: Void.self)
            writabilityWaiters.append((id, promise))
            return promise.futureResult.flatMap { self.sendData(id, payload, on: loop) }
        }
        var out = context.channel.allocator.buffer(capacity: payload.readableBytes + FrameHeader.size)
        out.writeFrame(Frame(streamID: id, type: .data, data: payload))
        metrics.bytesSent.increment(by: out.readableBytes)
        context.write(wrapOutboundOut(out), promise: nil)
        scheduleFlush(context: context, wrote: out.readableBytes)
        return context.eventLoop.makeSucceededVoidFuture()
    }

    /// A stream ended by the server (deadline, bad frame): its handler, if it waits for the
    /// connection to take more, stops waiting now — a task's cancellation does not reach a
    /// future it awaits, and a client that stops reading would keep it (and whatever it
    /// holds, an export's register version) until the connection closed.
    private func releaseWaiters(of id: UInt32) {
        guard writabilityWaiters.contains(where: { $0.stream == id }) else { return }
        let ended = writabilityWaiters.filter { $0.stream == id }
        writabilityWaiters.removeAll { $0.stream == id }
        ended.forEach { $0.promise.fail(RPCError(.cancelled, "the call was cancelled")) }
    }

    /// Answers a bad frame on its stream, dropping any work still running for it; counts it,
    /// and (when `charged`) closes a connection that keeps sending them (`ProtocolErrorBudget`).
    private func streamError(_ id: UInt32, _ error: RPCError, charged: Bool = true, context: ChannelHandlerContext) {
        metrics.protocolErrors.increment()
        defer {
            if charged && !errorBudget.spend(at: .now()) {
                logger.notice("closing connection: too many protocol errors", metadata: ["burst": "\(ProtocolErrorBudget.burst)"])
                closeConnection(context: context)
            }
        }
        var service = "unknown", method = "unknown", start = NIODeadline.now()
        if let stream = streams.removeValue(forKey: id) {
            stream.cancelTimers()
            stream.task?.cancel()
            releaseWaiters(of: id)
            dropInbox(id, stream, error: error)
            (service, method, start) = (stream.service, stream.method, stream.start)
        }
        logger.info("refused frame", metadata: ["stream": "\(id)", "code": "\(error.code.name)", "reason": "\(error.message)"])
        respond(id, status: RPCStatus(error), payload: nil, service: service, method: method, start: start, context: context)
    }

    private func respond(_ id: UInt32, status: RPCStatus, payload: ByteBuffer?, service: String, method: String, start: NIODeadline, context: ChannelHandlerContext) {
        guard !closed else { return }
        let body = payload ?? ByteBuffer()
        var out = context.channel.allocator.buffer(capacity: body.readableBytes + 32 + status.message.utf8.count)
        out.writeFrame(streamID: id, type: .response) { buffer in
            TTRPCResponse.encode(status: status, payload: body, into: &buffer)
        }
        // A frame carries at most 4 MiB: a larger answer would read as "not ttrpc" to any client.
        if out.readableBytes - FrameHeader.size > FrameHeader.protocolMaxLength {
            return respond(id, status: RPCStatus(.resourceExhausted(
                "response of \(out.readableBytes - FrameHeader.size) bytes exceeds ttrpc's 4 MiB frame limit")),
                payload: nil, service: service, method: method, start: start, context: context)
        }
        if !context.channel.isWritable { unreadAnswerBytes += out.readableBytes }
        metrics.bytesSent.increment(by: out.readableBytes)
        metrics.record(service: service, method: method, code: status.code, since: start)
        context.write(wrapOutboundOut(out), promise: nil)
        scheduleFlush(context: context, wrote: out.readableBytes)
        if (draining || peerFinished) && streams.isEmpty { closeConnection(context: context) }
    }

    private func status(for error: Error, logger: Logger) -> RPCStatus {
        if !(error is RPCError) && !(error is CancellationError) {
            // The error's text may quote data; log its type only.
            logger.error("handler failed", metadata: ["error_type": "\(type(of: error))"])
        }
        return RPCStatus(RPCError.from(error))
    }

    /// Flushes once the read (or this turn of the loop) is over, so that many answers go out
    /// as few records and writes; or at once past `flushEarlyAt` unflushed bytes.
    private func scheduleFlush(context: ChannelHandlerContext, wrote bytes: Int) {
        unflushedBytes += bytes
        if unflushedBytes >= Self.flushEarlyAt {
            unflushedBytes = 0
            needsFlush = false
            return context.flush()
        }
        if inRead {
            needsFlush = true
        } else if !flushScheduled {
            flushScheduled = true
            context.eventLoop.assumeIsolated().execute { [self] in
                flushScheduled = false
                unflushedBytes = 0
                self.context?.flush()
            }
        }
    }

    // MARK: connection events

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            unreadAnswerBytes = 0
            let waiters = writabilityWaiters
            writabilityWaiters = []
            waiters.forEach { $0.promise.succeed() }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let handshake as TLSHandshakeCompleted:
            peer = handshake.peer
            if let cn = handshake.peer?.commonName { logger[metadataKey: "peer"] = "\(cn)" }
            logger.debug("connection ready", metadata: ["tls": "\(handshake.protocolVersion)"])
        case is IdleStateHandler.IdleStateEvent:
            if streams.isEmpty {
                logger.debug("closing idle connection")
                closeConnection(context: context)
            }
        case is ReadsPacedEvent:
            pacedSinceFrameCheck = true
        case is ServerDrainEvent:
            draining = true
            if streams.isEmpty { closeConnection(context: context) }
        case is TLSCloseNotifyReceived:
            peerFinished = true
            // A client stream still open can bring nothing more: it ends now, answered.
            for (id, stream) in streams where stream.inbox != nil && !stream.remoteClosed {
                end(id, answering: RPCError(.cancelled, "the client closed its side of the connection before the stream's end"), context: context)
            }
            if streams.isEmpty { closeConnection(context: context) }
        default:
            break
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let tls = error as? TLSError {
            if case .handshakeFailed = tls { metrics.handshakeFailures.increment() }
            if case .handshakeTimeout = tls { metrics.handshakeFailures.increment() }
            logger.info("TLS connection failed", metadata: ["error": "\(tls)"])
        } else {
            logger.info("connection error", metadata: ["error_type": "\(type(of: error))"])
        }
        closeConnection(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        endCalls()
        context.fireChannelInactive()
    }

    /// The calls still running end with the connection: nothing they answer will be sent.
    private func endCalls() {
        for (_, stream) in streams {
            stream.cancelTimers()
            stream.task?.cancel()
            stream.inbox?.finish(throwing: RPCError(.cancelled, "the connection closed"))
        }
        streams.removeAll()
        partialTimer?.cancel()
        partialTimer = nil
        let waiters = writabilityWaiters
        writabilityWaiters = []
        waiters.forEach { $0.promise.fail(RPCError(.cancelled, "the connection closed")) }
    }

    /// Closes the connection: what was written still goes out (`OpenSSLHandler` sends it
    /// before its close_notify), but calls still running (a close for abuse, a frame never
    /// finished) end now rather than while the close waits for a client that may not read.
    private func closeConnection(context: ChannelHandlerContext) {
        guard !closed else { return }
        closed = true
        endCalls()
        // Reads paused for the streams' unread messages resume: the close reads on until the
        // client closes (unread input would make the socket's close an RST).
        if readsPaused {
            readsPaused = false
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        }
        context.flush()
        context.close(promise: nil)
    }
}

/// A client may send bad frames now and then (each answered on its stream), not as a
/// stream: a token bucket of `burst` errors, refilled at `perSecond`; a connection that
/// empties it is closed. A correct client never gets near it; one that sends bad frames in a
/// loop (stream-id abuse) is shed instead of being answered — and logged — without end.
struct ProtocolErrorBudget {
    static let burst = 100.0
    static let perSecond = 10.0
    private var tokens = burst
    private var at: NIODeadline?

    /// Takes one error from the budget; false when there was none left.
    mutating func spend(at now: NIODeadline) -> Bool {
        if let at { tokens = min(Self.burst, tokens + Double((now - at).nanoseconds) / 1e9 * Self.perSecond) }
        at = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// Client streams the server answered while the client was still sending: the data frames
/// already on their way are forgiven (not charged to `ProtocolErrorBudget`), at most
/// `framesEach` per stream and for the last `capacity` streams only — any other data frame
/// on a stream that is not open is charged, so no id can be used to send them without end.
struct RecentlyEnded {
    static let capacity = 16
    static let framesEach = 64
    private var entries: [(id: UInt32, forgiven: Int)] = []

    mutating func add(_ id: UInt32) {
        if entries.count == Self.capacity { entries.removeFirst() }
        entries.append((id, 0))
    }

    /// Whether a data frame on `id` is forgiven (and counts it).
    mutating func forgive(_ id: UInt32) -> Bool {
        guard let i = entries.firstIndex(where: { $0.id == id }), entries[i].forgiven < Self.framesEach else { return false }
        entries[i].forgiven += 1
        return true
    }
}
