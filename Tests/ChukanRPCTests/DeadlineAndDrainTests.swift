import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanWire
import NIOCore
import Testing

@Suite struct DeadlineTests {
    /// The server answers DEADLINE_EXCEEDED itself and cancels the handler's task. The
    /// handler would take ten minutes, so an answer within `nextResponse`'s 30 s is the
    /// server's own (no wall-clock bound: a sanitizer-loaded suite stretches every step).
    @Test func serverEnforcesDeadlineAndDropsTheWork() async throws {
        let s = try await TestServer.start()
        let raw = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        try await raw.sendRequest(id: 1, service: "test.Slow", method: "Sleep", payload: EchoMessage(bytes: Array("600000".utf8)).encoded(), timeoutNanos: 100_000_000)
        let r = try #require(try await raw.nextResponse())
        #expect(r.0 == 1)
        #expect(r.1.status.code == .deadlineExceeded)
        var waited = 0
        while s.slow.cancelled.load(ordering: .relaxed) == 0 && waited < 300 {
            try await Task.sleep(for: .milliseconds(100))
            waited += 1
        }
        #expect(s.slow.cancelled.load(ordering: .relaxed) == 1)
        #expect(s.slow.finished.load(ordering: .relaxed) == 0)
        // Future-based handlers too.
        try await raw.sendRequest(id: 3, service: "test.Slow", method: "Later", payload: EchoMessage(bytes: Array("3000".utf8)).encoded(), timeoutNanos: 50_000_000)
        let later = try #require(try await raw.nextResponse())
        #expect(later.0 == 3 && later.1.status.code == .deadlineExceeded)
        // A call within its deadline succeeds.
        let c = try await s.client()
        #expect(try await c.slow("Sleep", millis: 10, timeout: .seconds(30)) == "10")  // generous: the suite keeps both cores busy
        await raw.close()
        await c.close()
        await s.stop()
    }

    /// A server and a connection that reads nothing, with `Flood` called on stream 1: its
    /// handler fills the buffers, then waits to write.
    func floodToAReaderThatStopped(timeoutNanos: Int64) async throws -> (TestServer, RawConnection) {
        let s = try await TestServer.start()
        let raw = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        try await raw.stopReading()
        let open = TTRPCRequest(service: "test.Slow", method: "Flood", payload: ByteBuffer(), timeoutNanos: timeoutNanos)
        try await raw.sendFrame(id: 1, type: 1, flags: 0x01, data: open.encoded())
        return (s, raw)
    }

    /// Waits up to 5 s for the `Flood` handler to end; the milliseconds waited.
    func floodEnded(_ s: TestServer) async throws -> Int {
        var waited = 0
        while s.slow.floodsEnded.load(ordering: .relaxed) == 0 && waited < 5000 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 10
        }
        return waited
    }

    /// A server-streaming handler waiting for a client that stopped reading is released when
    /// its deadline passes, not kept (with what it holds) until the connection closes.
    @Test func aStreamingHandlerBlockedOnAReaderThatStoppedEndsAtItsDeadline() async throws {
        let (s, raw) = try await floodToAReaderThatStopped(timeoutNanos: 300_000_000)
        let waited = try await floodEnded(s)
        #expect(s.slow.floodsEnded.load(ordering: .relaxed) == 1, "the handler still waits \(waited) ms after its 300 ms deadline")
        await raw.close()
        await s.stop()
    }

    /// The same when a bad frame ends the stream (here a data frame on a server stream):
    /// the paused handler is released at once, not at the connection's close.
    @Test func aStreamingHandlerBlockedOnAReaderThatStoppedEndsWithItsStream() async throws {
        let (s, raw) = try await floodToAReaderThatStopped(timeoutNanos: 0)
        try await Task.sleep(for: .milliseconds(300))  // the handler has filled the buffers and waits
        #expect(s.slow.floodsEnded.load(ordering: .relaxed) == 0)
        try await raw.sendFrame(id: 1, type: 3, data: ByteBuffer(bytes: [1]))  // "stream 1 does not accept data frames"
        let waited = try await floodEnded(s)
        #expect(s.slow.floodsEnded.load(ordering: .relaxed) == 1, "the handler still waits \(waited) ms after its stream ended")
        await raw.close()
        await s.stop()
    }

    @Test func clientSideDeadline() async throws {
        let s = try await TestServer.start()
        let c = try await s.client()
        #expect(await statusCode { _ = try await c.slow("Sleep", millis: 3000, timeout: .milliseconds(100)) } == .deadlineExceeded)
        await c.close()
        await s.stop()
    }
}

@Suite struct DrainTests {
    /// What was written before a close goes out before the socket closes: a drain that
    /// closes a connection whose answers still wait in the server's channel (the client
    /// reads slowly) sends them, then its close_notify.
    @Test(.timeLimit(.minutes(3))) func aCloseSendsWhatWasWrittenFirst() async throws {
        let s = try await TestServer.start { $0.drainTimeout = .seconds(600) }
        let raw = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        try await raw.stopReading()
        let size = 4_000_000  // four of these are more than loopback's socket buffers hold
        // In one write, so that the server reads all four before its answers fill the socket.
        var requests = ByteBuffer()
        for id in stride(from: UInt32(1), through: 7, by: 2) {
            let data = TTRPCRequest(service: "test.Slow", method: "Big", payload: EchoMessage(bytes: Array("\(size)".utf8)).encoded()).encoded()
            requests.writeFrame(streamID: id, type: .request) { $0.writeImmutableBuffer(data) }
        }
        try await raw.send(requests)
        try await Task.sleep(for: .milliseconds(500))  // answered: most of it waits in the server's channel
        let stopped = Task { await s.stop() }  // every call answered: the drain closes the connection
        try await Task.sleep(for: .milliseconds(300))
        try await raw.resumeReading()
        for id in stride(from: UInt32(1), through: 7, by: 2) {
            let r = try #require(try await raw.nextResponse(), "answer \(id) was dropped by the close")
            #expect(r.0 == id && r.1.status.isOK)
            #expect(try EchoMessage(protobuf: r.1.payload).payload.readableBytes == size)
        }
        #expect(try await raw.waitClosed())
        #expect(raw.receivedCloseNotify)
        await stopped.value
    }

    /// TLS closes one direction at a time: calls made before a client's close_notify are
    /// answered, then the server closes.
    @Test(.timeLimit(.minutes(3))) func callsMadeBeforeACloseNotifyAreAnswered() async throws {
        let s = try await TestServer.start()
        let raw = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        try await raw.sendRequest(id: 1, service: "test.Slow", method: "Sleep", payload: EchoMessage(bytes: Array("300".utf8)).encoded())
        try await raw.sendRequest(id: 3, service: "test.Slow", method: "Later", payload: EchoMessage(bytes: Array("200".utf8)).encoded())
        // And a client stream left open: after the close_notify it can bring nothing more.
        try await raw.sendFrame(id: 5, type: 1, flags: 0x02, data: TTRPCRequest(service: "test.Slow", method: "Count", payload: ByteBuffer()).encoded())
        try await s.slow.waitStarted(1)
        try await raw.closeWrite()
        var answered: [UInt32: RPCStatus] = [:]
        for _ in 0..<3 {
            let r = try #require(try await raw.nextResponse())
            answered[r.0] = r.1.status
        }
        #expect(answered[1]?.isOK == true && answered[3]?.isOK == true, "\(answered)")
        #expect(answered[5]?.code == .cancelled && answered[5]?.message == "the client closed its side of the connection before the stream's end")
        #expect(try await raw.waitClosed())
        #expect(s.slow.cancelled.load(ordering: .relaxed) == 0)
        await s.stop()
    }

    /// Shutdown stops accepting, lets calls in flight finish, then closes — when the last
    /// call ends, not when the drain timeout fires: the timeout here is ten minutes, so a
    /// drain that finishes at all finished by itself. (A wall-clock bound flaked: under a
    /// loaded suite the 2 s call itself took over 9 s to be answered.)
    @Test(.timeLimit(.minutes(3))) func gracefulDrainFinishesCallsInFlight() async throws {
        let s = try await TestServer.start { $0.drainTimeout = .seconds(600) }
        let c = try await s.client()
        async let inFlight = c.slow("Sleep", millis: 2000)
        try await s.slow.waitStarted(1)
        let drained = Task { await s.stop() }
        // A new call on the draining connection is refused with UNAVAILABLE, once the
        // shutdown has reached the connection (a slow machine may answer a call or two first).
        var late: StatusCode? = nil
        for _ in 0..<400 {
            late = await statusCode { _ = try await c.echo("late") }
            if late != nil { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        #expect(late == .unavailable)
        // New connections are refused once shutdown began.
        await #expect(throws: (any Error).self) { _ = try await s.client() }
        #expect(try await inFlight == "2000")
        // The call answered, the connection closes and the drain ends: give it a minute
        // (rather than the ten the timeout would take).
        var waited = 0
        while s.server.openConnections > 0 && waited < 600 {
            try await Task.sleep(for: .milliseconds(100))
            waited += 1
        }
        #expect(s.server.openConnections == 0, "a connection was still open a minute after its last call was answered")
        if s.server.openConnections == 0 { await drained.value }
    }

    /// A call still running when the drain timeout fires is cut off (UNAVAILABLE): the call
    /// would take ten minutes, so a stop that returns at all was the timeout's doing.
    @Test(.timeLimit(.minutes(3))) func drainTimeoutClosesStragglers() async throws {
        let s = try await TestServer.start { $0.drainTimeout = .milliseconds(300) }
        let c = try await s.client()
        async let inFlight = statusCode { _ = try await c.slow("Sleep", millis: 600_000) }
        try await s.slow.waitStarted(1)
        await s.stop()
        #expect(await inFlight == .unavailable)
        #expect(s.server.openConnections == 0)
    }
}
