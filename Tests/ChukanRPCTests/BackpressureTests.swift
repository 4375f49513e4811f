import ChukanProto
import ChukanRPC
import ChukanWire
import NIOCore
import Synchronization
import Testing

@Suite struct BackpressureTests {
    /// A client that sends a flood of requests and never reads the answers cannot make
    /// the server buffer them: the server stops reading from it, so most of what the
    /// client tried to send never leaves the client. Other clients are still served.
    /// Calls that arrive together are run until a client that reads none of the answers
    /// has 16 MiB of them waiting unsent; later calls are refused with RESOURCE_EXHAUSTED
    /// before they run (an answer to a call that ran is never dropped).
    @Test func answersToAClientThatDoesNotReadAreBounded() async throws {
        let s = try await TestServer.start()
        let raw = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        try await raw.stopReading()
        let count = 40, size = 1_000_000
        var requests = ByteBuffer()  // in one write: the server reads them in one go
        for i in 0..<count {
            let data = TTRPCRequest(service: "test.Slow", method: "Big", payload: EchoMessage(bytes: Array("\(size)".utf8)).encoded()).encoded()
            requests.writeFrame(streamID: UInt32(2 * i + 1), type: .request) { $0.writeImmutableBuffer(data) }
        }
        try await raw.send(requests)
        try await Task.sleep(for: .seconds(1))
        try await raw.resumeReading()
        var ok = 0, refused = 0
        for _ in 0..<count {
            let r = try #require(try await raw.nextResponse())
            if r.1.status.isOK {
                ok += 1
            } else {
                #expect(r.1.status.code == .resourceExhausted && r.1.status.message.hasPrefix("the client is not reading its answers"), "\(r.1.status)")
                refused += 1
            }
        }
        // 16 MiB wait in the server, and as much again may have reached the kernel's socket
        // buffers (how much depends on the host): most, not all, are answered.
        #expect(ok >= (16 << 20) / (size + 64) && refused > 0, "\(ok) answered, \(refused) refused")
        // The connection serves on.
        try await raw.sendRequest(id: 101, service: "chukan.v1.Echo", method: "Echo", payload: EchoMessage(bytes: [7]).encoded())
        let echo = try #require(try await raw.nextResponse())
        #expect(echo.0 == 101 && echo.1.status.isOK)
        await raw.close()
        await s.stop()
    }

    @Test func clientThatNeverReadsIsNotBufferedWithoutBound() async throws {
        let s = try await TestServer.start()
        let raw = try await RawConnection.connect(port: s.port, tls: s.pki.clientTLS("admin"))
        try await raw.channel.setOption(.autoRead, value: false).get()

        let payload = EchoMessage(payload: ByteBuffer(repeating: 0x5A, count: 256 * 1024)).encoded()
        let requests = 400  // 100 MiB of requests, and as much in answers
        let flushed = Atomic<Int>(0)
        try await raw.channel.eventLoop.submit {
            for i in 0..<requests {
                var frame = ByteBuffer()
                frame.writeFrame(streamID: UInt32(2 * i + 1), type: .request) {
                    TTRPCRequest(service: "chukan.v1.Echo", method: "Echo", payload: payload).encode(into: &$0)
                }
                raw.channel.write(frame).whenSuccess { flushed.add(1, ordering: .relaxed) }
            }
            raw.channel.flush()
        }.get()
        try await Task.sleep(for: .seconds(2))
        let sent = flushed.load(ordering: .relaxed)
        // Kernel socket buffers on both sides hold a few MiB; the server's own watermark
        // 512 KiB. Without backpressure all 400 would be accepted and answered into memory.
        #expect(sent < requests / 2, "the server kept reading: \(sent) of \(requests) requests left the client")

        // Meanwhile a well-behaved client is served.
        let c = try await s.client()
        #expect(try await c.echo("not starved") == "not starved")
        await c.close()

        // Once the client reads again, everything completes.
        try await raw.channel.setOption(.autoRead, value: true).get()
        var answered = 0
        while answered < requests, let r = try await raw.nextResponse(timeout: .seconds(20)) {
            #expect(r.1.status.isOK)
            answered += 1
        }
        #expect(answered == requests)
        await raw.close()
        await s.stop()
    }
}
