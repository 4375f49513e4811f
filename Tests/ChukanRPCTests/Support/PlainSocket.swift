import NIOCore
import NIOPosix

/// A plain TCP connection (no TLS), for talking nonsense to the server.
final class PlainSocket: Sendable {
    let channel: any Channel

    private init(channel: any Channel) { self.channel = channel }

    static func connect(port: Int) async throws -> PlainSocket {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        return PlainSocket(channel: channel)
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    func waitClosed(timeout: Duration = .seconds(30)) async throws -> Bool {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if !channel.isActive { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }
}
