import COpenSSL
import NIOCore

/// TLS through OpenSSL 3, as a NIO channel handler.
///
/// OpenSSL never touches the socket: ciphertext from the network is written into a
/// memory BIO (`rbio`), `SSL_read` turns it into plaintext for the handlers after us, and
/// plaintext written to us is passed to `SSL_write`, whose records we drain from the
/// other memory BIO (`wbio`) and write to the channel. Plaintext writes are gathered
/// until `flush`, so many small responses go out as few records and one socket write.
public final class OpenSSLHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private enum State {
        case idle
        case handshaking
        case active
        /// The peer sent close_notify and this side writes on (`halfClose`): nothing more is read.
        case peerClosed
        /// We sent close_notify (or are about to); inbound plaintext is dropped.
        case closing
        case closed
    }

    /// Largest plaintext handed to one `SSL_write`: one full TLS record.
    private static let recordSize = 16 * 1024
    /// Plaintext read per `SSL_read_ex` batch before it is passed on.
    private static let readChunk = 64 * 1024
    /// How long a close waits for what was written before it (and our close_notify) to
    /// reach the socket, for a peer that has stopped reading.
    public static let closeFlushTimeout = TimeAmount.seconds(30)
    /// How long, once that is sent and our side shut, a close waits for the peer's.
    public static let closeLingerTimeout = TimeAmount.seconds(2)

    private let context: TLSContext
    private let ssl: OpaquePointer
    private let rbio: OpaquePointer
    private let wbio: OpaquePointer
    private var state: State = .idle
    private var handshakeTimer: Scheduled<Void>?

    /// Plaintext written but not yet encrypted, and the promises waiting on it.
    private var pendingPlaintext: ByteBuffer?
    private var pendingPromises: [EventLoopPromise<Void>] = []
    private var flushPending = false

    /// The verified peer, once the handshake is done.
    public private(set) var peer: PeerIdentity?
    /// On the peer's close_notify, pass `TLSCloseNotifyReceived` on and keep writing until
    /// the handlers after us close (TLS 1.3 closes one direction at a time: a server
    /// answers the calls already made); else answer it with ours and close at once.
    private let halfClose: Bool
    /// This side sent close_notify while it still reads (`close(mode: .output)`).
    private var outputClosed = false
    /// The peer's close_notify came: nothing it sends after counts (nor is kept).
    private var peerSentCloseNotify = false
    /// A close shut our side and reads until the peer closes its own (`close(after:)`).
    private var lingering = false

    public init(context: TLSContext, halfClose: Bool = false) throws {
        self.halfClose = halfClose
        self.context = context
        self.ssl = try context.makeConnection()
        self.rbio = SSL_get_rbio(ssl)
        self.wbio = SSL_get_wbio(ssl)
    }

    deinit { SSL_free(ssl) }

    // MARK: lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startHandshake(context: context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        startHandshake(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        let wasHandshaking = state == .handshaking
        state = .closed
        failPending(ChannelError.ioOnClosedChannel)
        if wasHandshaking { context.fireErrorCaught(TLSError.handshakeFailed("the peer closed the connection")) }
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        failPending(ChannelError.ioOnClosedChannel)
    }

    private func startHandshake(context: ChannelHandlerContext) {
        guard state == .idle else { return }
        state = .handshaking
        let timeout = self.context.configuration.handshakeTimeout
        handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            guard state == .handshaking else { return }
            fail(context: context, TLSError.handshakeTimeout)
        }
        doHandshake(context: context)
    }

    // MARK: inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let ciphertext = unwrapInboundIn(data)
        // After the peer's close_notify nothing it sends counts (nor is kept).
        guard state != .closed && !peerSentCloseNotify else { return }
        ciphertext.withUnsafeReadableBytes { raw in
            var offset = 0
            while offset < raw.count {
                // Memory BIOs grow as needed; a write only fails on allocation failure.
                let n = BIO_write(rbio, raw.baseAddress! + offset, Int32(min(raw.count - offset, Int(Int32.max))))
                if n <= 0 { break }
                offset += Int(n)
            }
        }
        switch state {
        case .handshaking: doHandshake(context: context)
        case .active, .closing: readPlaintext(context: context)
        case .idle, .peerClosed, .closed: break
        }
    }

    private func doHandshake(context: ChannelHandlerContext) {
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 {
            handshakeTimer?.cancel()
            handshakeTimer = nil
            state = .active
            if let cert = SSL_get0_peer_certificate(ssl) { peer = PeerIdentity(certificate: cert) }
            writeNetwork(context: context, promise: nil)
            var alpn: String?
            var alpnData: UnsafePointer<UInt8>?
            var alpnLength: UInt32 = 0
            SSL_get0_alpn_selected(ssl, &alpnData, &alpnLength)
            if let alpnData, alpnLength > 0 {
                alpn = String(decoding: UnsafeBufferPointer(start: alpnData, count: Int(alpnLength)), as: UTF8.self)
            }
            let version = String(cString: SSL_get_version(ssl))
            context.fireUserInboundEventTriggered(
                TLSHandshakeCompleted(peer: peer, protocolVersion: version, applicationProtocol: alpn))
            // Writes queued during the handshake, and any application data that came with it.
            if flushPending { encryptAndFlush(context: context) }
            readPlaintext(context: context)
            return
        }
        switch SSL_get_error(ssl, rc) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            writeNetwork(context: context, promise: nil)
        default:
            var reason = openSSLErrors(fallback: "the handshake was aborted")
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                reason += " (\(String(cString: X509_verify_cert_error_string(verify))))"
            }
            // Send the alert OpenSSL queued, so the peer learns why.
            writeNetwork(context: context, promise: nil)
            fail(context: context, TLSError.handshakeFailed(reason))
        }
    }

    private func readPlaintext(context: ChannelHandlerContext) {
        var sawData = false
        while state == .active || state == .closing {
            var buffer = context.channel.allocator.buffer(capacity: Self.readChunk)
            var result: Int32 = 1
            var got = 0
            // Why the read stopped, taken at once: the handlers the plaintext goes to may
            // write (and so call SSL_write) before it is looked at, which would change it.
            var stopped = SSL_ERROR_NONE
            var reason = ""
            while buffer.writableBytes > 0 {
                ERR_clear_error()
                var n = 0
                result = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { raw in
                    let r = SSL_read_ex(ssl, raw.baseAddress, raw.count, &n)
                    return r == 1 ? n : 0
                } > 0 ? 1 : 0
                if result != 1 {
                    stopped = SSL_get_error(ssl, 0)
                    if stopped != SSL_ERROR_WANT_READ && stopped != SSL_ERROR_WANT_WRITE && stopped != SSL_ERROR_ZERO_RETURN {
                        reason = openSSLErrors(fallback: "a record did not decrypt")
                    }
                    break
                }
                got += n
            }
            if got > 0 && state == .active {
                sawData = true
                context.fireChannelRead(wrapInboundOut(buffer))
            }
            if result == 1 { continue }  // buffer filled up: read on
            switch stopped {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                break
            case SSL_ERROR_ZERO_RETURN:
                // The peer's close_notify: answer with ours and close, or (`halfClose`) read
                // no more and let the handlers after us close when they are done.
                guard !peerSentCloseNotify else { break }
                peerSentCloseNotify = true
                if halfClose && state == .active { state = .peerClosed }
                context.fireUserInboundEventTriggered(TLSCloseNotifyReceived())
                peerClosed(context: context)  // answers it unless `halfClose` (or a close began)
            default:
                fail(context: context, TLSError.protocolError(reason))
            }
            break
        }
        // Post-handshake messages (key updates) may have produced records to send.
        if chukan_BIO_pending(wbio) > 0 { writeNetwork(context: context, promise: nil) }
        _ = sawData
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
        // Lingering: read on (whatever the handlers after us paused) until the peer closes.
        if lingering { context.read() }
    }

    // MARK: outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch state {
        case .closing, .closed:
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        case .idle, .handshaking, .active, .peerClosed:
            break
        }
        guard !outputClosed else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        let plaintext = unwrapOutboundIn(data)
        if pendingPlaintext == nil {
            pendingPlaintext = plaintext
        } else {
            pendingPlaintext!.writeImmutableBuffer(plaintext)
        }
        if let promise { pendingPromises.append(promise) }
        // Many large writes before one flush are sent as they come, so that neither this
        // buffer nor one write to the network grows past what a count of them can hold.
        if isWriting && pendingPlaintext!.readableBytes >= Self.largestNetworkWrite { encryptAndFlush(context: context) }
    }

    /// The most bytes one buffer handed to the network holds (`writeNetwork`).
    private static let largestNetworkWrite = 16 << 20

    public func flush(context: ChannelHandlerContext) {
        flushPending = true
        if isWriting { encryptAndFlush(context: context) }
    }

    /// Past the handshake and before our close_notify.
    private var isWriting: Bool { state == .active || state == .peerClosed }

    private func encryptAndFlush(context: ChannelHandlerContext) {
        flushPending = false
        guard var plaintext = pendingPlaintext else { return }
        pendingPlaintext = nil
        let promises = pendingPromises
        pendingPromises = []
        while plaintext.readableBytes > 0 {
            ERR_clear_error()
            let chunk = min(plaintext.readableBytes, Self.recordSize)
            var written = 0
            let rc = plaintext.withUnsafeReadableBytes { raw in SSL_write_ex(ssl, raw.baseAddress, chunk, &written) }
            guard rc == 1 else {
                let error = TLSError.protocolError(openSSLErrors(fallback: "SSL_write failed"))
                promises.forEach { $0.fail(error) }
                fail(context: context, error)
                return
            }
            plaintext.moveReaderIndex(forwardBy: written)
        }
        var promise: EventLoopPromise<Void>?
        if promises.count == 1 {
            promise = promises[0]
        } else if promises.count > 1 {
            let p = context.eventLoop.makePromise(of: Void.self)
            p.futureResult.whenComplete { result in promises.forEach { $0.completeWith(result) } }
            promise = p
        }
        writeNetwork(context: context, promise: promise)
    }

    /// Moves every record OpenSSL produced onto the wire, in buffers of at most 16 MiB.
    private func writeNetwork(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        var pending = chukan_BIO_pending(wbio)
        guard pending > 0 else {
            promise?.succeed()
            return
        }
        while true {
            let size = min(pending, Self.largestNetworkWrite)
            var out = context.channel.allocator.buffer(capacity: size)
            let read = out.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
                Int(max(0, BIO_read(wbio, raw.baseAddress, Int32(size))))
            }
            pending = read > 0 ? chukan_BIO_pending(wbio) : 0
            guard pending > 0 else {
                context.writeAndFlush(wrapOutboundOut(out), promise: promise)
                return
            }
            context.write(wrapOutboundOut(out), promise: nil)
        }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all else {
            // Closing the output is TLS's own half-close (as Go's tls.Conn.CloseWrite):
            // what was written, then our close_notify; the socket stays open for the answers.
            if mode == .output && state == .active && !outputClosed {
                outputClosed = true
                return sendCloseNotify(context: context, promise: promise)
            }
            context.close(mode: mode, promise: promise)
            return
        }
        switch state {
        case .active, .peerClosed:
            closeAfterCloseNotify(context: context, promise: promise)
        case .idle, .handshaking, .closing:
            state = .closing
            context.close(promise: promise)
        case .closed:
            context.close(promise: promise)
        }
    }

    /// The peer's close_notify: answered with ours, and the connection closed.
    private func peerClosed(context: ChannelHandlerContext) {
        // Closing already: that close sends what is queued, then closes (`close(after:)`).
        guard state == .active else { return }
        closeAfterCloseNotify(context: context, promise: nil)
    }

    /// Whatever was written goes out first, then our close_notify; the socket closes once
    /// they have left (closing at once would drop what still waits in the channel).
    private func closeAfterCloseNotify(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        state = .closing
        let written = context.eventLoop.makePromise(of: Void.self)
        sendCloseNotify(context: context, promise: written)
        close(context: context, after: written.futureResult, promise: promise)
    }

    /// What was written, then our close_notify, onto the wire; `promise` once they are out.
    private func sendCloseNotify(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        encryptAndFlush(context: context)
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        writeNetwork(context: context, promise: promise)
    }

    /// Closes the socket's write side once `written` (our close_notify, after everything
    /// before it) has left, then reads until the peer closes too, dropping what comes: a
    /// socket closed with input unread sends RST, and a peer that gets RST may lose what it
    /// has not read yet. After `closeFlushTimeout` it closes whatever the peer does.
    private func close(context: ChannelHandlerContext, after written: EventLoopFuture<Void>, promise: EventLoopPromise<Void>?) {
        let backstop = context.eventLoop.scheduleTask(in: Self.closeFlushTimeout) { context.close(promise: nil) }
        context.channel.closeFuture.whenComplete { _ in
            backstop.cancel()
            promise?.succeed()
        }
        written.whenComplete { _ in
            backstop.cancel()
            guard context.channel.isActive else { return }
            let linger = context.eventLoop.scheduleTask(in: Self.closeLingerTimeout) { context.close(promise: nil) }
            context.channel.closeFuture.whenComplete { _ in linger.cancel() }
            let halfClosed = context.eventLoop.makePromise(of: Void.self)
            halfClosed.futureResult.whenFailure { _ in context.close(promise: nil) }
            context.close(mode: .output, promise: halfClosed)
            // Reads may have been stopped (back-pressure, a paused inbox): the peer's close
            // must be seen, and what it still sends read and dropped (`channelReadComplete`).
            self.lingering = true
            context.read()
        }
    }

    private func fail(context: ChannelHandlerContext, _ error: TLSError) {
        guard state != .closed else { return }
        handshakeTimer?.cancel()
        state = .closing
        failPending(error)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    private func failPending(_ error: Error) {
        pendingPlaintext = nil
        let promises = pendingPromises
        pendingPromises = []
        promises.forEach { $0.fail(error) }
    }
}

@available(*, unavailable)
extension OpenSSLHandler: Sendable {}
