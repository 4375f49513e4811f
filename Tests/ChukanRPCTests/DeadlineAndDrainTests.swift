import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanWire
import NIOCore
import Testing

@Suite struct DeadlineTests {
    /// The server answers DEADLINE_EXCEEDED itself and cancels the handler's task.
    @Test func serverEnforcesDeadlineAndDropsTheWork() async throws {
        let s = try await TestServer.start()
        let raw = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        try await raw.sendRequest(id: 1, service: "test.Slow", method: "Sleep", payload: EchoMessage(bytes: Array("30000".utf8)).encoded(), timeoutNanos: 100_000_000)
        let start = ContinuousClock.now
        let r = try #require(try await raw.nextResponse())
        #expect(r.0 == 1)
        #expect(r.1.status.code == .deadlineExceeded)
        // Far sooner than the 30 s the handler would take (generous: CI machines are busy).
        #expect(ContinuousClock.now - start < .seconds(10))
        try await Task.sleep(for: .milliseconds(100))
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

    @Test func clientSideDeadline() async throws {
        let s = try await TestServer.start()
        let c = try await s.client()
        #expect(await statusCode { _ = try await c.slow("Sleep", millis: 3000, timeout: .milliseconds(100)) } == .deadlineExceeded)
        await c.close()
        await s.stop()
    }
}

@Suite struct DrainTests {
    /// Shutdown stops accepting, lets calls in flight finish, then closes — when the last
    /// call ends, not when the drain timeout fires: the timeout here is ten minutes, so a
    /// drain that finishes at all finished by itself. (A wall-clock bound flaked: under a
    /// loaded suite the 2 s call itself took over 9 s to be answered.)
    @Test func gracefulDrainFinishesCallsInFlight() async throws {
        let s = try await TestServer.start { $0.drainTimeout = .seconds(600) }
        let c = try await s.client()
        async let inFlight = c.slow("Sleep", millis: 2000)
        try await s.slow.waitStarted(1)
        let drained = Task { await s.stop() }
        // A new call on the draining connection is refused with UNAVAILABLE, once the
        // shutdown has reached the connection (a slow machine may answer a call or two first).
        var late: StatusCode? = nil
        for _ in 0..<40 {
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
        for _ in 0..<600 where s.server.openConnections > 0 { try await Task.sleep(for: .milliseconds(100)) }
        #expect(s.server.openConnections == 0, "a connection was still open a minute after its last call was answered")
        if s.server.openConnections == 0 { await drained.value }
    }

    @Test func drainTimeoutClosesStragglers() async throws {
        let s = try await TestServer.start { $0.drainTimeout = .milliseconds(300) }
        let c = try await s.client()
        async let inFlight = statusCode { _ = try await c.slow("Sleep", millis: 30_000) }
        try await s.slow.waitStarted(1)
        let start = ContinuousClock.now
        await s.stop()
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(await inFlight == .unavailable)
    }
}
