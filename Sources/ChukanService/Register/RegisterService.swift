import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanStore
import Foundation

/// chukan.v1.Register: the resident system's writes into the replica (副本), one method per
/// operation, for the registrar role. Idempotency keys make retries safe: the key, the
/// time and a digest of the request travel in the WAL record, so a retry is recognised
/// after a restart too (`TenantDatabase.write`).
public struct RegisterService: RPCService {
    public static let name = "chukan.v1.Register"
    public let serviceName = RegisterService.name
    let tenants: TenantManager
    let access: AccessControl

    static let operations: [(method: String, kind: RegisterEventKind)] = [
        ("Record", .record), ("Correct", .correct), ("MoveWithin", .moveWithin), ("PlanMoveOut", .planMoveOut),
        ("ConfirmMoveOut", .confirmMoveOut), ("Remove", .remove), ("ChangeKojinBango", .changeKojinBango),
        ("ChangeHousehold", .changeHousehold),
    ]

    public init(tenants: TenantManager, access: AccessControl) {
        self.tenants = tenants
        self.access = access
    }

    public var methods: [String: MethodHandler] {
        var m: [String: MethodHandler] = [:]
        for (method, kind) in Self.operations {
            m[method] = .unaryAsync(WriteRequest.self) { request, context in
                try await access.perform(context, tenant: request.tenant, roles: [.registrar], subjectOf: { $0.person }) { _ in
                    let event = try Self.event(request, kind: kind)
                    let db = try tenants.database(request.tenant)
                    let result = try await db.write(event)
                    var r = WriteResponse()
                    r.sequence = result.sequence
                    r.person = result.person
                    r.replayed = result.replayed
                    return r
                }
            }
        }
        return m
    }

    /// The event to log: the method's kind, and the server's idempotency fields (whatever
    /// the client put there is replaced).
    static func event(_ request: WriteRequest, kind: RegisterEventKind, now: Date = Date()) throws -> RegisterEvent {
        guard var e = request.event else { throw RPCError.invalidArgument("event: is required") }
        if e.kind == .kindUnspecified { e.kind = kind }
        guard e.kind == kind else { throw RPCError.invalidArgument("event.kind: this method writes \(kind)") }
        let key = request.idempotencyKey
        guard key.utf8.count <= 128, key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw RPCError.invalidArgument("idempotency_key: at most 128 printable ASCII characters, no spaces")
        }
        e.idempotencyKey = ""
        e.acceptedUnixMs = 0
        e.requestDigest = []
        if !key.isEmpty {
            e.requestDigest = SHA256.hash(e.encodedBytes)
            e.idempotencyKey = key
            e.acceptedUnixMs = Int64(now.timeIntervalSince1970 * 1000)
        }
        return e
    }
}
