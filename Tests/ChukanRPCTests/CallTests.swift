import ChukanCore
import ChukanProto
import ChukanRPC
import NIOCore
import Testing

@Suite struct CallTests {
    @Test func unaryEchoAndHealth() async throws {
        let s = try await TestServer.start()
        let c = try await s.client()
        #expect(c.handshake.protocolVersion == "TLSv1.3")
        #expect(c.handshake.applicationProtocol == "ttrpc")
        #expect(try await c.echo("こんにちは") == "こんにちは")
        #expect(try await c.echo("") == "")
        #expect(try await c.health() == .serving)
        let big = String(repeating: "x", count: 1 << 20)
        #expect(try await c.echo(big) == big)
        await c.close()
        await s.stop()
    }

    /// Many calls in flight on one connection, answered as they finish, not in order.
    @Test func callsAreMultiplexedAndAnsweredOutOfOrder() async throws {
        let s = try await TestServer.start()
        let c = try await s.client()
        let finished = try await withThrowingTaskGroup(of: Int.self) { group in
            for ms in [1200, 900, 600, 300] {
                group.addTask { _ = try await c.slow("Sleep", millis: ms); return ms }
            }
            var order: [Int] = []
            for try await ms in group { order.append(ms) }
            return order
        }
        #expect(finished == [300, 600, 900, 1200])
        // And many concurrent echoes with distinct payloads.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<500 {
                group.addTask { let back = try await c.echo("call \(i)"); #expect(back == "call \(i)") }
            }
            try await group.waitForAll()
        }
        await c.close()
        await s.stop()
    }

    @Test func futureBasedHandlersAndHandlerErrors() async throws {
        let s = try await TestServer.start()
        let c = try await s.client()
        #expect(try await c.slow("Later", millis: 20) == "20")
        #expect(await statusCode { _ = try await c.slow("Fail", millis: 0) } == .failedPrecondition)
        await c.close()
        await s.stop()
    }

    /// A consumer slower than the network is not buffered without bound: the client stops
    /// reading the connection while 64 messages wait unconsumed, and the server then waits
    /// to write. Without it the client would read the endless `Flood` at network speed.
    @Test func aSlowConsumerOfAServerStreamPausesTheConnection() async throws {
        let s = try await TestServer.start()
        let c = try await s.client()
        var iterator = c.serverStreaming(service: "test.Slow", method: "Flood", request: EchoMessage(bytes: []), as: EchoMessage.self).makeAsyncIterator()
        #expect(try await iterator.next()?.payload.readableBytes == 64 << 10)
        try await Task.sleep(for: .seconds(2))  // the consumer dawdles
        let written = s.slow.floodWrites.load(ordering: .relaxed)
        // 64 waiting in the client, what the sockets hold (a few MiB) and 512 KiB in the server.
        #expect(written < 1000, "the server wrote \(written) messages of 64 KiB to a consumer that took one")
        // It reads on once the consumer takes them.
        for _ in 0..<200 { _ = try await iterator.next() }
        #expect(s.slow.floodWrites.load(ordering: .relaxed) > written)
        await c.close()
        await s.stop()
    }

    @Test func serverStreaming() async throws {
        let s = try await TestServer.start()
        let c = try await s.client()
        var count = 0
        for try await m in c.serverStreaming(
            service: "chukan.v1.Echo", method: "Expand", request: ExpandRequest(payload: ByteBuffer(string: "abc"), count: 1000),
            as: EchoMessage.self)
        {
            #expect(String(buffer: m.payload) == "abc")
            count += 1
        }
        #expect(count == 1000)
        // An error status ends the stream.
        await #expect(throws: RPCError.invalidArgument("count must be at most 100000")) {
            for try await _ in c.serverStreaming(
                service: "chukan.v1.Echo", method: "Expand", request: ExpandRequest(payload: ByteBuffer(), count: 200_000),
                as: EchoMessage.self) {}
        }
        // Unary calls still work on the same connection afterwards.
        #expect(try await c.echo("after") == "after")
        await c.close()
        await s.stop()
    }

    @Test func unknownServiceAndMethodAreUnimplemented() async throws {
        let s = try await TestServer.start()
        let c = try await s.client()
        await #expect(throws: RPCError.unimplemented("unknown service chukan.v1.Nope")) {
            _ = try await c.unary(service: "chukan.v1.Nope", method: "X", request: HealthCheckRequest(), as: HealthCheckResponse.self)
        }
        await #expect(throws: RPCError.unimplemented("unknown method Nope of service chukan.v1.Echo")) {
            _ = try await c.unary(service: "chukan.v1.Echo", method: "Nope", request: HealthCheckRequest(), as: HealthCheckResponse.self)
        }
        // A name that would rewrite the log line it lands in (a bidi override, a C1 control,
        // a zero-width joiner, a line separator) is shown with those as "?".
        await #expect(throws: RPCError.unimplemented("unknown service a?b?c?d?e?f")) {
            _ = try await c.unary(service: "a\u{202E}b\u{85}c\u{200D}d\u{2028}e f", method: "X", request: HealthCheckRequest(), as: HealthCheckResponse.self)
        }
        #expect(try await c.echo("still here") == "still here")
        await c.close()
        await s.stop()
    }

    /// An answer too big for one ttrpc frame becomes RESOURCE_EXHAUSTED, not a frame
    /// that clients would take for garbage.
    @Test func oversizedResponseIsRefused() async throws {
        let s = try await TestServer.start()
        let c = try await s.client()
        #expect(await statusCode { _ = try await c.slow("Big", millis: 4 << 20) } == .resourceExhausted)
        #expect(try await c.slow("Big", millis: (4 << 20) - 16).count == (4 << 20) - 16)
        await c.close()
        await s.stop()
    }

    @Test func concurrentStreamLimit() async throws {
        let s = try await TestServer.start { $0.maxConcurrentStreams = 2 }
        let c = try await s.client()
        async let a = c.slow("Sleep", millis: 5000)
        async let b = c.slow("Sleep", millis: 5000)
        // Once both run (not after a fixed wait: a sanitizer-loaded machine starts them late).
        try await s.slow.waitStarted(2)
        #expect(await statusCode { _ = try await c.echo("third") } == .resourceExhausted)
        #expect(try await a == "5000")
        #expect(try await b == "5000")
        #expect(try await c.echo("now fine") == "now fine")
        await c.close()
        await s.stop()
    }
}
