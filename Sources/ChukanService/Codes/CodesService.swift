import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanStore
import Synchronization

/// Each tenant's code issuer, made from its code key on first use.
public final class CodeIssuers: Sendable {
    let keyDirectory: String
    private let issuers = Locked<[String: any CodeIssuer]>([:])  // read by every 符号 lookup

    public init(keyDirectory: String) { self.keyDirectory = keyDirectory }

    public func issuer(_ tenant: String) throws -> any CodeIssuer {
        if let i = issuers.withLock({ $0[tenant] }) { return i }
        let made: any CodeIssuer
        do { made = try LocalCodeIssuer(key: TenantKeyRing.codeKey(tenant: tenant, directory: keyDirectory)) } catch {
            throw RPCError.unavailable("the 符号 key of tenant \(tenant) cannot be used: \(error)")
        }
        return issuers.withLock { i in
            if let existing = i[tenant] { return existing }
            i[tenant] = made
            return made
        }
    }
}

/// chukan.v1.Codes: 符号取得 and 符号管理, for the code-manager role.
public struct CodesService: RPCService {
    public static let name = "chukan.v1.Codes"
    public let serviceName = CodesService.name
    let tenants: TenantManager
    let access: AccessControl
    let codes: CodeIssuers

    public init(tenants: TenantManager, access: AccessControl, codes: CodeIssuers) {
        self.tenants = tenants
        self.access = access
        self.codes = codes
    }

    // Both calls are done at once (a cipher and a register read): they run on the
    // connection's event loop, answered when their records are durable (`performNow`).
    public var methods: [String: MethodHandler] {
        [
            "AcquireCode": .unaryFuture(AcquireCodeRequest.self) { request, context in
                access.performNow(context, tenant: request.tenant, roles: [.codeManager], subjectOf: { $0.integratedAtenaNumber }) { _ in
                    guard let id = PackedID(request.integratedAtenaNumber) else {
                        throw RPCError.invalidArgument("integrated_atena_number: must be 1-16 ASCII letters or digits")
                    }
                    guard try tenants.database(request.tenant).version.person(id) != nil else {
                        throw RPCError(.notFound, "no person with that 団体内統合宛名番号")
                    }
                    var r = CodeResponse()
                    r.fugo = try codes.issuer(request.tenant).code(for: id)
                    r.integratedAtenaNumber = request.integratedAtenaNumber
                    return r
                }
            },
            "LookupCode": .unaryFuture(LookupCodeRequest.self) { request, context in
                access.performNow(context, tenant: request.tenant, roles: [.codeManager], subjectOf: { $0.integratedAtenaNumber }) { _ in
                    guard request.fugo.utf8.count == 32, request.fugo.utf8.allSatisfy({ (48...57).contains($0) || (65...70).contains($0) || (97...102).contains($0) }) else {
                        throw RPCError.invalidArgument("fugo: must be 32 hex digits")
                    }
                    guard let id = try codes.issuer(request.tenant).person(for: request.fugo),
                          try tenants.database(request.tenant).version.person(id) != nil
                    else { throw RPCError(.notFound, "not a 符号 of a person of this tenant") }
                    var r = CodeResponse()
                    r.fugo = request.fugo
                    r.integratedAtenaNumber = id.string
                    return r
                }
            },
        ]
    }
}
