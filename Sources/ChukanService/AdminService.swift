import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanStore
import Foundation

/// chukan.v1.Admin: tenants, snapshots and the policy of the running server.
///
/// The platform operator may do all of it, for every tenant; a tenant administrator may
/// list and snapshot its own tenant. Every call, allowed or not, is in the audit trail.
public struct AdminService: RPCService {
    public static let name = "chukan.v1.Admin"
    public let serviceName = AdminService.name
    let tenants: TenantManager
    let access: AccessControl
    let disk: DiskWatch?

    public init(tenants: TenantManager, access: AccessControl, disk: DiskWatch? = nil) {
        self.tenants = tenants
        self.access = access
        self.disk = disk
    }

    public var methods: [String: MethodHandler] {
        [
            // These scan registers and touch the disk: never on the event loop.
            "ListTenants": .unaryAsync(ListTenantsRequest.self) { _, context in
                try await access.perform(context, tenant: nil, roles: [.platformOperator, .tenantAdmin]) { caller in
                    try await Self.offLoop {
                        var r = ListTenantsResponse()
                        // A tenant administrator sees its own tenant only.
                        r.tenants = tenants.tenants.filter { caller.tenant == nil || caller.tenant == $0 }.compactMap { tenants.status($0) }
                        return r
                    }
                }
            },
            "AddTenant": .unaryAsync(TenantRequest.self) { request, context in
                try await access.perform(context, tenant: request.tenant, roles: [.platformOperator], subject: AuditTrail.recordable(tenant: request.tenant)) { _ in
                    try await Self.offLoop {
                        try tenants.add(request.tenant)
                        return tenants.status(request.tenant) ?? TenantStatus()
                    }
                }
            },
            "RemoveTenant": .unaryAsync(TenantRequest.self) { request, context in
                try await access.perform(context, tenant: request.tenant, roles: [.platformOperator], subject: AuditTrail.recordable(tenant: request.tenant)) { _ in
                    var s = tenants.status(request.tenant) ?? TenantStatus()
                    _ = try await Self.offLoop { try Self.storage("the tenant was not removed") { try tenants.remove(request.tenant, force: request.force) } }
                    s.detail = "removed"
                    return s
                }
            },
            "CreateSnapshot": .unaryAsync(TenantRequest.self) { request, context in
                try await access.perform(context, tenant: request.tenant, roles: [.platformOperator, .tenantAdmin], subject: AuditTrail.recordable(tenant: request.tenant)) { _ in
                    let db = try tenants.database(request.tenant)
                    let started = Date()
                    // Written from a held version on its own thread: calls and writes go on.
                    let info = try await Self.offLoop { try Self.storage("the snapshot was not written") { try db.snapshot() } }
                    var r = SnapshotResponse()
                    r.path = info.path
                    r.sequence = info.header.sequence
                    r.records = info.header.recordCount
                    r.bytes = UInt64(info.size)
                    r.seconds = Date().timeIntervalSince(started)
                    context.logger.notice("snapshot written", metadata: ["tenant": "\(request.tenant)", "sequence": "\(info.header.sequence)"])
                    return r
                }
            },
            "TenantStats": .unaryAsync(TenantStatsRequest.self) { request, context in
                try await access.perform(context, tenant: request.tenant, roles: [.platformOperator, .tenantAdmin], subject: AuditTrail.recordable(tenant: request.tenant)) { _ in
                    try await Self.offLoop {
                        guard let status = tenants.status(request.tenant) else { throw TenantManager.notHeld(request.tenant) }
                        var r = TenantStatsResponse()
                        r.status = status
                        r.days = access.statistics.days(request.tenant).map { day, d in
                            var s = DayStats()
                            s.date = day
                            s.inquiries = UInt64(d.inquiries)
                            s.codesIssued = UInt64(d.codesIssued)
                            s.writes = UInt64(d.writes)
                            s.refusals = UInt64(d.refusals)
                            s.provisions = UInt64(d.provisions)
                            return s
                        }
                        let snapshots = Snapshots.list(directory: "\(tenants.configuration.dataDirectory)/\(request.tenant)/snapshots")
                        r.snapshotsKept = UInt64(snapshots.count)
                        if let newest = snapshots.first, let header = Snapshots.header(path: newest) {
                            r.lastSnapshot = String(newest.split(separator: "/").last ?? "")
                            r.lastSnapshotSequence = header.sequence
                            r.lastSnapshotUnix = Int64(header.createdAt)
                        }
                        r.diskFreeBytes = disk?.freeBytes ?? 0
                        r.writesRefused = disk?.refusal ?? ""
                        r.callsInFlightLimit = UInt32(access.limiter.limits.inFlight)
                        r.callsPerSecondLimit = access.limiter.limits.perSecond
                        return r
                    }
                }
            },
            "ReloadPolicy": .unaryAsync(ReloadPolicyRequest.self) { _, context in
                try await access.perform(context, tenant: nil, roles: [.platformOperator]) { _ in
                    let policy = try await Self.offLoop { try access.reload() }
                    context.logger.notice("policy reloaded", metadata: ["principals": "\(policy.principals.count)"])
                    var r = ReloadPolicyResponse()
                    r.principals = UInt32(policy.principals.count)
                    return r
                }
            },
        ]
    }

    /// Runs blocking disk work on a thread of its own.
    static func offLoop<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    /// Runs a storage operation; a failure of the disk or of a file (not a refusal of the
    /// call, which is already an `RPCError`) is UNAVAILABLE with what failed — storage
    /// errors name files and offsets, never data — rather than a bare INTERNAL.
    static func storage<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as RPCError { throw e } catch {
            throw RPCError.unavailable("\(what): \(error)")
        }
    }
}
