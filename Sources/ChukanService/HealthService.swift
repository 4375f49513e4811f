import ChukanProto
import ChukanRPC
import Synchronization

/// chukan.v1.Health/Check: SERVING while the server takes calls, NOT_SERVING once a
/// shutdown has begun (visible only until the drain reaches the caller's connection,
/// which then answers UNAVAILABLE). Safe on a listener without client certificates:
/// it returns nothing about anyone.
public final class HealthService: RPCService {
    public static let name = "chukan.v1.Health"
    public let serviceName = HealthService.name
    private let serving = Atomic<Bool>(true)

    public init(serving: Bool = true) { self.serving.store(serving, ordering: .relaxed) }

    public func setServing(_ value: Bool) { serving.store(value, ordering: .relaxed) }

    public var methods: [String: MethodHandler] {
        [
            "Check": .unary(HealthCheckRequest.self) { [self] _, _ in
                HealthCheckResponse(status: self.serving.load(ordering: .relaxed) ? .serving : .notServing)
            },
        ]
    }
}
