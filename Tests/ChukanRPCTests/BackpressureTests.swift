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
