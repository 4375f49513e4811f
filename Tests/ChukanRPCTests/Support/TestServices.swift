import ChukanCore
import ChukanProto
import ChukanRPC
import NIOCore
import Synchronization

/// Services that exist for the tests: calls that take a while, on purpose.
/// The request is an EchoMessage whose payload is a number of milliseconds.
final class SlowService: RPCService {
    let serviceName = "test.Slow"
    /// How many handler tasks saw their cancellation.
    let cancelled = Atomic<Int>(0)
    let finished = Atomic<Int>(0)
    let started = Atomic<Int>(0)
    /// `Flood` handlers that have returned (by error: they never end otherwise).
    let floodsEnded = Atomic<Int>(0)
    /// Messages `Flood` handlers have written.
    let floodWrites = Atomic<Int>(0)
    /// `Gated` takes no message until this is set.
    let gateOpen = Atomic<Bool>(false)

    /// Waits until `n` Sleep calls have reached their handler.
    func waitStarted(_ n: Int) async throws {
        while started.load(ordering: .relaxed) < n { try await Task.sleep(for: .milliseconds(5)) }
    }

    static func millis(_ m: EchoMessage) -> Int64 { Int64(String(buffer: m.payload)) ?? 0 }

    var methods: [String: MethodHandler] {
        [
            // A Swift task that sleeps, then echoes.
            "Sleep": .unaryAsync(EchoMessage.self) { [self] request, _ in
                started.add(1, ordering: .relaxed)
                do {
                    try await Task.sleep(for: .milliseconds(Self.millis(request)))
                } catch {
                    cancelled.add(1, ordering: .relaxed)
                    throw error
                }
                finished.add(1, ordering: .relaxed)
                return request
            },
            // A future completed by an event-loop timer.
            "Later": .unaryFuture(EchoMessage.self) { request, context in
                context.eventLoop.scheduleTask(in: .milliseconds(Self.millis(request))) { request }.futureResult
            },
            // An answer of the requested number of bytes.
            "Big": .unary(EchoMessage.self) { request, _ in
                EchoMessage(payload: ByteBuffer(repeating: 1, count: Int(Self.millis(request))))
            },
            "Fail": .unary(EchoMessage.self) { (_, _) throws -> EchoMessage in throw RPCError(.failedPrecondition, "always fails") },
            // A client stream: answers with the number of messages and bytes it took
            // ("N/B"); a message "stop" makes it refuse the call at once.
            "Count": .clientStreaming(EchoMessage.self, EchoMessage.self) { messages, _ in
                var n = 0, bytes = 0
                for try await m in messages {
                    if String(buffer: m.payload) == "stop" { throw RPCError(.failedPrecondition, "stopped at message \(n + 1)") }
                    n += 1
                    bytes += m.payload.readableBytes
                }
                return EchoMessage(payload: ByteBuffer(string: "\(n)/\(bytes)"))
            },
            // 64 KiB messages without end, until writing one fails.
            "Flood": .serverStreaming(EchoMessage.self, EchoMessage.self) { [self] _, _, writer in
                defer { floodsEnded.add(1, ordering: .relaxed) }
                let chunk = EchoMessage(payload: ByteBuffer(repeating: 7, count: 64 << 10))
                while true {
                    try await writer.write(chunk)
                    floodWrites.add(1, ordering: .relaxed)
                }
            },
            // `Count`, once `gateOpen` is set: its messages wait until then.
            "Gated": .clientStreaming(EchoMessage.self, EchoMessage.self) { [self] messages, _ in
                while !gateOpen.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(10)) }
                var n = 0
                for try await _ in messages { n += 1 }
                return EchoMessage(payload: ByteBuffer(string: "\(n)"))
            },
        ]
    }
}
