import ChukanCore
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
    private let tenants: TenantManager?

    public init(serving: Bool = true, tenants: TenantManager? = nil) {
        self.serving.store(serving, ordering: .relaxed)
        self.tenants = tenants
    }

    public func setServing(_ value: Bool) { serving.store(value, ordering: .relaxed) }

    public var methods: [String: MethodHandler] {
        [
            "Check": .unary(HealthCheckRequest.self) { [self] request, _ in
                let up = self.serving.load(ordering: .relaxed)
                guard !request.tenant.isEmpty else { return HealthCheckResponse(status: up ? .serving : .notServing) }
                // A tenant is SERVING once recovered; NOT_SERVING while it recovers or failed.
                guard let state = tenants?.state(request.tenant) else {
                    throw RPCError(.notFound, "no tenant \(RPCRouter.printable(request.tenant)) on this server")
                }
                return HealthCheckResponse(status: up && state == .serving ? .serving : .notServing)
            },
        ]
    }
}
