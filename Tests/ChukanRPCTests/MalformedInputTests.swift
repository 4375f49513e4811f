import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanWire
import NIOCore
import Testing

/// Bad input gets the precise status on its stream, or closes only its own connection;
/// the server keeps serving everyone else.
@Suite struct MalformedInputTests {
    func expectStatus(_ raw: RawConnection, id: UInt32, _ code: StatusCode, _ message: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let r = try #require(try await raw.nextResponse(), sourceLocation: sourceLocation)
        #expect(r.0 == id, sourceLocation: sourceLocation)
        #expect(r.1.status.code == code, "\(r.1.status)", sourceLocation: sourceLocation)
        if let message { #expect(r.1.status.message == message, sourceLocation: sourceLocation) }
        #expect(r.1.payload.readableBytes == 0, sourceLocation: sourceLocation)
    }

    /// Reads INVALID_ARGUMENT answers until the server closes the connection: how many came.
    func invalidArgumentsUntilClosed(_ raw: RawConnection, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Int {
        var answered = 0
        while let r = try await raw.nextResponse() {
            #expect(r.1.status.code == .invalidArgument, sourceLocation: sourceLocation)
            answered += 1
        }
        #expect(try await raw.waitClosed(), sourceLocation: sourceLocation)
        return answered
    }

    @Test func eachBadFrameGetsItsOwnStatus() async throws {
        let s = try await TestServer.start { $0.maxMessageSize = 64 * 1024 }
        let raw = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        let echo = EchoMessage(bytes: [1, 2, 3]).encoded()

        // Data over the limit: skipped, RESOURCE_EXHAUSTED on its stream.
        try await raw.sendFrame(id: 1, type: 1, data: ByteBuffer(repeating: 0, count: 100 * 1024))
        try await expectStatus(raw, id: 1, .resourceExhausted, "frame data of 102400 bytes exceeds the limit of 65536 bytes")
        // An unknown frame type.
        try await raw.sendFrame(id: 3, type: 0x09, data: ByteBuffer())
        try await expectStatus(raw, id: 3, .invalidArgument, "unknown frame type 0x09")
        // An even stream id.
        try await raw.sendRequest(id: 4, service: "chukan.v1.Echo", method: "Echo", payload: echo)
        try await expectStatus(raw, id: 4, .invalidArgument, "stream id 4 is even; clients open odd stream ids")
        // A good call in between.
        try await raw.sendRequest(id: 5, service: "chukan.v1.Echo", method: "Echo", payload: echo)
        let good = try #require(try await raw.nextResponse())
        #expect(good.0 == 5 && good.1.status.isOK && good.1.payload == echo)
        // A reused (not increasing) stream id.
        try await raw.sendRequest(id: 5, service: "chukan.v1.Echo", method: "Echo", payload: echo)
        try await expectStatus(raw, id: 5, .invalidArgument, "stream id 5 was already used; stream ids must increase")
        // An envelope that does not decode.
        try await raw.sendFrame(id: 7, type: 1, data: ByteBuffer(bytes: [0x0A, 0x7F, 0x01]))
        try await expectStatus(raw, id: 7, .invalidArgument, "request envelope: ttrpc.Request does not decode as protobuf")
        // Unknown service, unknown method.
        try await raw.sendRequest(id: 9, service: "nope.Service", method: "X", payload: echo)
        try await expectStatus(raw, id: 9, .unimplemented, "unknown service nope.Service")
        try await raw.sendRequest(id: 11, service: "chukan.v1.Echo", method: "X", payload: echo)
        try await expectStatus(raw, id: 11, .unimplemented, "unknown method X of service chukan.v1.Echo")
        // A payload that does not decode as the method's request.
        try await raw.sendRequest(id: 13, service: "chukan.v1.Echo", method: "Echo", payload: ByteBuffer(bytes: [0xFF, 0xFF]))
        try await expectStatus(raw, id: 13, .invalidArgument, "request payload: chukan.v1.EchoMessage does not decode as protobuf")
        // A data frame on a stream that is not open; a response frame from a client.
        try await raw.sendFrame(id: 15, type: 3, data: ByteBuffer(bytes: [1]))
        try await expectStatus(raw, id: 15, .invalidArgument, "data frame on stream 15, which is not open")
        try await raw.sendFrame(id: 17, type: 2, data: ByteBuffer())
        try await expectStatus(raw, id: 17, .invalidArgument, "clients do not send response frames")
        // A client stream opened on a unary method.
        try await raw.sendFrame(id: 19, type: 1, flags: 0x02, data: TTRPCRequest(service: "chukan.v1.Echo", method: "Echo", payload: echo).encoded())
        try await expectStatus(raw, id: 19, .invalidArgument, "chukan.v1.Echo/Echo does not take a client stream")
        // A negative timeout.
        try await raw.sendRequest(id: 21, service: "chukan.v1.Echo", method: "Echo", payload: echo, timeoutNanos: -1)
        try await expectStatus(raw, id: 21, .invalidArgument, "timeout_nano must not be negative")
        // After all that, the same connection still serves.
        try await raw.sendRequest(id: 23, service: "chukan.v1.Echo", method: "Echo", payload: echo)
        let last = try #require(try await raw.nextResponse())
        #expect(last.0 == 23 && last.1.status.isOK)
        await raw.close()
        await s.stop()
    }

    /// Bad frames in a loop (stream-id abuse): each is answered until the connection's error
    /// budget (100, refilled at 10 a second) is spent, then the connection is closed; a
    /// connection with the odd bad frame, and everyone else, are served on.
    @Test func aConnectionSendingBadFramesInALoopIsClosed() async throws {
        let s = try await TestServer.start()
        let good = try await s.client()
        let abuser = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        let echo = EchoMessage(bytes: [1]).encoded()
        // 300 bad frames in one write, so they arrive together however slow the machine.
        var burst = ByteBuffer()
        let request = TTRPCRequest(service: "chukan.v1.Echo", method: "Echo", payload: echo).encoded()
        for i in 0..<300 {
            burst.writeMultipleIntegers(UInt32(request.readableBytes), UInt32(2 * i + 2), UInt8(1), UInt8(0))
            burst.writeImmutableBuffer(request)
        }
        try? await abuser.send(burst)
        let answered = try await invalidArgumentsUntilClosed(abuser)
        #expect((100...130).contains(answered), "\(answered) bad frames answered before the close")
        // The odd bad frame on another connection is answered and the connection stays.
        let careless = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        try await careless.sendRequest(id: 2, service: "chukan.v1.Echo", method: "Echo", payload: echo)
        try await expectStatus(careless, id: 2, .invalidArgument)
        try await careless.sendRequest(id: 3, service: "chukan.v1.Echo", method: "Echo", payload: echo)
        let ok = try #require(try await careless.nextResponse())
        #expect(ok.0 == 3 && ok.1.status.isOK && !careless.isClosed)
        #expect(try await good.echo("unaffected") == "unaffected")
        await careless.close()
        await good.close()
        await s.stop()
    }

    /// Envelopes protobuf-c would take but this server refuses before unpacking: too much
    /// metadata (a frame of tiny entries costs millions of allocations), a name holding a
    /// NUL (protobuf-c would cut it there and route "chukan.v1.Echo\0x" as Echo), invalid
    /// UTF-8. The connection serves on.
    @Test func envelopesOverTheLimitsOrWithHiddenBytesAreRefused() async throws {
        let s = try await TestServer.start()
        let raw = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        let echo = EchoMessage(bytes: [1]).encoded()
        var many = Metadata()
        for i in 0...TTRPCRequest.maxMetadataEntries { many.add("k\(i)", "v") }
        try await raw.sendFrame(id: 1, type: 1, data: TTRPCRequest(service: "chukan.v1.Echo", method: "Echo", payload: echo, metadata: many).encoded())
        try await expectStatus(raw, id: 1, .invalidArgument, "request envelope: metadata: at most 64 entries and 16384 bytes")
        func envelope(service: [UInt8], method: [UInt8]) -> ByteBuffer {
            var b = ByteBuffer()
            b.writeBytes([0x0A, UInt8(service.count)] + service + [0x12, UInt8(method.count)] + method)
            b.writeBytes([0x1A, UInt8(echo.readableBytes)])
            b.writeImmutableBuffer(echo)
            return b
        }
        try await raw.sendFrame(id: 3, type: 1, data: envelope(service: Array("chukan.v1.Echo".utf8) + [0, 0x78], method: Array("Echo".utf8)))
        try await expectStatus(raw, id: 3, .invalidArgument, "request envelope: service: must be UTF-8 text without NUL")
        try await raw.sendFrame(id: 5, type: 1, data: envelope(service: Array("chukan.v1.Echo".utf8), method: [0x45, 0xC3, 0x28]))
        try await expectStatus(raw, id: 5, .invalidArgument, "request envelope: method: must be UTF-8 text without NUL")
        try await raw.sendFrame(id: 7, type: 1, data: envelope(service: Array("chukan.v1.Echo".utf8), method: Array("Echo".utf8)))
        let ok = try #require(try await raw.nextResponse())
        #expect(ok.0 == 7 && ok.1.status.isOK && ok.1.payload == echo)
        // Few entries, but more than 16 KiB of them; and more unknown fields than allowed.
        var big = Metadata()
        for i in 0..<3 { big.add("k\(i)", String(repeating: "v", count: 6000)) }
        try await raw.sendFrame(id: 9, type: 1, data: TTRPCRequest(service: "chukan.v1.Echo", method: "Echo", payload: echo, metadata: big).encoded())
        try await expectStatus(raw, id: 9, .invalidArgument, "request envelope: metadata: at most 64 entries and 16384 bytes")
        var unknown = TTRPCRequest(service: "chukan.v1.Echo", method: "Echo", payload: echo).encoded()
        for _ in 0..<17 { unknown.writeBytes([6 << 3, 1]) }  // field 6 (not in ttrpc.Request), a varint, 17 times
        try await raw.sendFrame(id: 11, type: 1, data: unknown)
        try await expectStatus(raw, id: 11, .invalidArgument, "request envelope: more than 16 fields ttrpc.Request does not have or repeats")
        // A singular field repeated (protobuf-c would take each in turn: a frame holds two million).
        var repeated = TTRPCRequest(service: "chukan.v1.Echo", method: "Echo", payload: echo).encoded()
        for _ in 0..<18 { repeated.writeBytes([4 << 3, 0]) }  // timeout_nano, then 17 repeats of it
        try await raw.sendFrame(id: 13, type: 1, data: repeated)
        try await expectStatus(raw, id: 13, .invalidArgument, "request envelope: more than 16 fields ttrpc.Request does not have or repeats")
        // A payload of more fields than a request may hold, refused before protobuf-c unpacks it.
        var fields = ByteBuffer()
        for _ in 0...MethodHandler.maxRequestFields { fields.writeBytes([0x0A, 0]) }
        try await raw.sendFrame(id: 15, type: 1, data: TTRPCRequest(service: "chukan.v1.Echo", method: "Echo", payload: fields).encoded())
        try await expectStatus(raw, id: 15, .invalidArgument, "request payload: chukan.v1.EchoMessage holds more than 4096 fields (nested ones counted)")
        try await raw.sendFrame(id: 17, type: 1, data: TTRPCRequest(service: "chukan.v1.Echo", method: "Echo", payload: echo).encoded())
        let still = try #require(try await raw.nextResponse())
        #expect(still.0 == 17 && still.1.status.isOK && still.1.payload == echo)
        await raw.close()
        await s.stop()
    }

    /// Data frames on a stream id below the highest used (here every odd id, after a request
    /// on the highest) are charged like any bad frame: the connection sending them in a loop
    /// is closed, not answered without end.
    @Test func dataOnStreamsThatAreNotOpenIsCharged() async throws {
        let s = try await TestServer.start()
        let abuser = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        try await abuser.sendRequest(id: 0xFFFF_FFFF, service: "chukan.v1.Echo", method: "Echo", payload: EchoMessage(bytes: [1]).encoded())
        #expect(try await abuser.nextResponse()?.1.status.isOK == true)
        var burst = ByteBuffer()
        for i in 0..<300 {
            burst.writeMultipleIntegers(UInt32(1), UInt32(2 * i + 1), UInt8(3), UInt8(0), UInt8(0x08))
        }
        try? await abuser.send(burst)
        let answered = try await invalidArgumentsUntilClosed(abuser)
        #expect((100...130).contains(answered), "\(answered) stray data frames answered before the close")
        await s.stop()
    }

    /// Bytes that cannot be ttrpc close that connection only.
    @Test func garbageClosesOnlyThatConnection() async throws {
        let s = try await TestServer.start()
        let good = try await s.client()
        let raw = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        try await raw.send(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(try await raw.waitClosed())
        #expect(try await good.echo("unaffected") == "unaffected")
        await good.close()
        await s.stop()
    }

    /// Plaintext to a TLS port: the handshake fails, the connection closes, others are served.
    @Test func plaintextClientIsClosed() async throws {
        let s = try await TestServer.start()
        let good = try await s.client()
        let socket = try await PlainSocket.connect(port: s.port)
        try await socket.send(Array(repeating: 0x41, count: 200))
        #expect(try await socket.waitClosed())
        #expect(try await good.echo("fine") == "fine")
        await good.close()
        await s.stop()
    }

    /// Slowloris: a frame begun and then trickled a byte at a time (each byte is traffic, so
    /// the idle timeout never fires) is closed by the frame timeout; a client whose frames
    /// each complete in time, however many, stays; the server serves others meanwhile.
    @Test func aFrameTrickledTooSlowlyClosesItsConnection() async throws {
        let s = try await TestServer.start { $0.frameTimeout = .seconds(3); $0.idleTimeout = .seconds(3600) }  // a loaded suite can stretch this test past a minute
        let good = try await s.client()
        let slow = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        let steady = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        let echo = EchoMessage(bytes: [1, 2, 3]).encoded()
        var frame = ByteBuffer()
        let request = TTRPCRequest(service: "chukan.v1.Echo", method: "Echo", payload: echo).encoded()
        frame.writeMultipleIntegers(UInt32(request.readableBytes), UInt32(1), UInt8(1), UInt8(0))
        frame.writeImmutableBuffer(request)
        let start = NIODeadline.now()
        var closedAfter: TimeAmount?
        var id: UInt32 = 1
        // For 8 s: the slow one sends a byte of one frame every 0.5 s (the frame would need
        // far longer); the steady one a whole call every 0.5 s, each frame in two halves
        // 0.1 s apart — partial often, and for longer than the timeout all told.
        // Under a loaded suite this task itself can be held up for seconds between the two
        // halves; then the steady frame really was late, and only then may it be closed.
        var steadyOpen = true
        for byte in frame.readableBytesView.prefix(16) {
            if closedAfter == nil { try? await slow.send(ByteBuffer(bytes: [byte])) }
            if steadyOpen {
                var call = ByteBuffer()
                call.writeMultipleIntegers(UInt32(request.readableBytes), id, UInt8(1), UInt8(0))
                call.writeImmutableBuffer(request)
                let begun = ContinuousClock.now
                var secondSent: ContinuousClock.Instant?
                do {
                    try await steady.send(call.getSlice(at: 0, length: 7)!)
                    try await Task.sleep(for: .milliseconds(100))
                    try await steady.send(call.getSlice(at: 7, length: call.readableBytes - 7)!)
                    secondSent = .now
                    let r = try #require(try await steady.nextResponse())
                    #expect(r.0 == id && r.1.status.isOK)
                } catch {
                    let gap = (secondSent ?? .now) - begun  // between the halves, as this task saw it
                    #expect(gap >= .milliseconds(2_500), "a frame sent in two halves within \(gap) lost its connection: \(error)")
                    steadyOpen = false
                }
                id += 2
            }
            try await Task.sleep(for: .milliseconds(400))
            if closedAfter == nil && slow.isClosed { closedAfter = .now() - start }
        }
        #expect(closedAfter != nil, "the trickled frame's connection is still open")
        if let closedAfter { #expect(closedAfter >= .milliseconds(2_900), "closed after \(closedAfter), before the frame timeout") }
        #expect(try await good.echo("unaffected") == "unaffected")
        await steady.close()
        await good.close()
        await s.stop()
    }

    /// A partial frame, then nothing: the connection is closed by the idle timeout.
    @Test func idleAndPartialFramesTimeOut() async throws {
        let s = try await TestServer.start { $0.idleTimeout = .seconds(4) }
        let raw = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        // On a slow machine the timeout may already have closed the connection: then the
        // send fails, and what follows still holds.
        try? await raw.send(ByteBuffer(bytes: [0, 0, 0, 50, 0, 0, 0, 1, 1, 0, 1, 2]))
        #expect(try await raw.waitClosed(timeout: .seconds(20)))
        #expect(raw.receivedCloseNotify, "the server closed without close_notify")
        await s.stop()
    }
}
