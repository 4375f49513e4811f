import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanStore
import Foundation

/// chukan.v1.Admin: tenants and snapshots of the running server.
///
/// Interim authorization, until Services I brings roles: the caller's verified
/// certificate CN must be one of `principals` (the configuration's admin.principals).
public struct AdminService: RPCService {
    public static let name = "chukan.v1.Admin"
    public let serviceName = AdminService.name
    let tenants: TenantManager
    let principals: Set<String>

    public init(tenants: TenantManager, principals: Set<String>) {
        self.tenants = tenants
        self.principals = principals
    }

    func authorize(_ context: ServerCallContext) throws {
        guard let cn = context.peer?.commonName else { throw RPCError.unauthenticated("Admin calls need a client certificate") }
        guard principals.contains(cn) else {
            context.logger.notice("admin call denied", metadata: ["principal": "\(cn)"])
            throw RPCError.permissionDenied("principal \(cn) may not call chukan.v1.Admin")
        }
    }

    public var methods: [String: MethodHandler] {
        [
            // These scan registers and touch the disk: never on the event loop.
            "ListTenants": .unaryAsync(ListTenantsRequest.self) { _, context in
                try authorize(context)
                return try await Self.offLoop {
                    var r = ListTenantsResponse()
                    r.tenants = tenants.tenants.compactMap { tenants.status($0) }
                    return r
                }
            },
            "AddTenant": .unaryAsync(TenantRequest.self) { request, context in
                try authorize(context)
                return try await Self.offLoop {
                    try tenants.add(request.tenant)
                    return tenants.status(request.tenant) ?? TenantStatus()
                }
            },
            "RemoveTenant": .unaryAsync(TenantRequest.self) { request, context in
                try authorize(context)
                var s = tenants.status(request.tenant) ?? TenantStatus()
                _ = try await Self.offLoop { try tenants.remove(request.tenant, force: request.force) }
                s.detail = "removed"
                return s
            },
            "CreateSnapshot": .unaryAsync(TenantRequest.self) { request, context in
                try authorize(context)
                let db = try tenants.database(request.tenant)
                let started = Date()
                // Written from a held version on its own thread: calls and writes go on.
                let info = try await Self.offLoop { try db.snapshot() }
                var r = SnapshotResponse()
                r.path = info.path
                r.sequence = info.header.sequence
                r.records = info.header.recordCount
                r.bytes = UInt64(info.size)
                r.seconds = Date().timeIntervalSince(started)
                context.logger.notice("snapshot written", metadata: ["tenant": "\(request.tenant)", "sequence": "\(info.header.sequence)"])
                return r
            },
        ]
    }

    /// Runs blocking disk work on a thread of its own.
    static func offLoop<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }
}
