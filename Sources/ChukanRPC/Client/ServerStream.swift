import NIOCore
import Synchronization

/// The messages of a server-streaming call as they arrive (`RPCClient.serverStreaming`).
///
/// A consumer slower than the network (an export written to a slow disk) is not buffered
/// without bound: once `highWater` messages wait unconsumed, the connection stops reading,
/// TCP pushes back, and the server waits to write (its own back-pressure); below
/// `lowWater` it reads again. Other calls on the same connection wait with it.
public struct ServerStream<Message: Sendable>: AsyncSequence, Sendable {
    public typealias Element = Message
    let messages: AsyncThrowingStream<Message, Error>
    let flow: ServerStreamFlow

    public struct AsyncIterator: AsyncIteratorProtocol {
        var messages: AsyncThrowingStream<Message, Error>.AsyncIterator
        let flow: ServerStreamFlow

        public mutating func next() async throws -> Message? {
            let message = try await messages.next()
            if message != nil { flow.took() }
            return message
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(messages: messages.makeAsyncIterator(), flow: flow) }
}

/// Counts a server stream's messages not yet consumed and pauses the connection's reads
/// while there are too many.
final class ServerStreamFlow: Sendable {
    static let highWater = 64
    static let lowWater = 16
    private struct State {
        var waiting = 0
        var paused = false
    }

    private let state = Mutex(State())
    private let channel: any Channel

    init(channel: any Channel) { self.channel = channel }

    /// A message was handed to the stream (on the event loop).
    func arrived() {
        let pause = state.withLock { s -> Bool in
            s.waiting += 1
            guard s.waiting > Self.highWater, !s.paused else { return false }
            s.paused = true
            return true
        }
        if pause { channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in } }
    }

    /// The consumer took a message.
    func took() {
        let resume = state.withLock { s -> Bool in
            s.waiting -= 1
            guard s.waiting < Self.lowWater, s.paused else { return false }
            s.paused = false
            return true
        }
        if resume { self.resume() }
    }

    /// The stream ended, or its consumer left: what it holds no longer stops the connection.
    func ended() {
        let resume = state.withLock { s -> Bool in
            defer { s.paused = false }
            return s.paused
        }
        if resume { self.resume() }
    }

    private func resume() {
        channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in self.channel.read() }
    }
}
