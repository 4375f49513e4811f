import ChukanCore
import ChukanProto
import ChukanRPC
import NIOCore

/// chukan.v1.Echo: answers with the bytes it was sent. For tests and benchmarks; it
/// touches no resident data.
public struct EchoService: RPCService {
    public static let name = "chukan.v1.Echo"
    /// The most messages one Expand call may ask for.
    public static let maxExpandCount: UInt32 = 100_000

    public let serviceName = EchoService.name

    public init() {}

    public var methods: [String: MethodHandler] {
        [
            "Echo": .unary(EchoMessage.self) { request, _ in request },
            "Expand": .serverStreaming(ExpandRequest.self, EchoMessage.self) { request, context, writer in
                guard request.count <= Self.maxExpandCount else {
                    throw RPCError.invalidArgument("count must be at most \(Self.maxExpandCount)")
                }
                for _ in 0..<request.count {
                    try Task.checkCancellation()
                    try await writer.write(EchoMessage(payload: request.payload))
                }
            },
        ]
    }
}
