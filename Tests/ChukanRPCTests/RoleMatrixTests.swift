import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanService
import Foundation
import Testing

/// The role × call matrix over every service: each principal (one per role, the platform
/// operator, a principal of another tenant holding every role, a stranger) calls one method
/// of each kind; a call is allowed exactly when the method names one of the caller's roles
/// and the caller belongs to the tenant. "Allowed" means not PERMISSION_DENIED or
/// UNAUTHENTICATED: an allowed call may still fail on its merits (NOT_FOUND …).
@Suite(.serialized) struct RoleMatrixTests {
    static let tenantRoles: [Role] = [.registrar, .codeManager, .networkGateway, .clerk, .numberClerk, .approver, .auditor, .tenantAdmin]
    static let names = tenantRoles.map { "p-\($0.rawValue)" } + ["operator", "other-tenant", "stranger"]
    static let pki = try! TestPKI.make(clients: names)
    static let a = "012041", b = "131016"

    struct Call {
        let name: String
        let roles: Set<Role>
        let run: @Sendable (RPCClient) async throws -> Void
    }

    static func req<M: ProtoMessage>(_ m: M, _ f: (inout M) -> Void) -> M {
        var x = m
        f(&x)
        return x
    }

    static func calls() -> [Call] {
        [
            Call(name: "Inquiry/Lookup", roles: [.clerk, .numberClerk]) { c in
                _ = try await c.unary(service: "chukan.v1.Inquiry", method: "Lookup", request: Self.req(LookupRequest()) { $0.tenant = a; $0.keyKind = .atenaNumber; $0.key = "A1" }, as: LookupResponse.self)
            },
            Call(name: "Inquiry/Search", roles: [.clerk, .numberClerk]) { c in
                _ = try await c.unary(service: "chukan.v1.Inquiry", method: "Search", request: Self.req(SearchRequest()) { $0.tenant = a; $0.kana = "ヤマダ"; $0.address = "旭川" }, as: PersonPage.self)
            },
            Call(name: "Codes/AcquireCode", roles: [.codeManager]) { c in
                _ = try await c.unary(service: "chukan.v1.Codes", method: "AcquireCode", request: Self.req(AcquireCodeRequest()) { $0.tenant = a; $0.integratedAtenaNumber = "T1" }, as: CodeResponse.self)
            },
            Call(name: "Codes/LookupCode", roles: [.codeManager]) { c in
                _ = try await c.unary(service: "chukan.v1.Codes", method: "LookupCode", request: Self.req(LookupCodeRequest()) { $0.tenant = a; $0.fugo = String(repeating: "0", count: 32) }, as: CodeResponse.self)
            },
            Call(name: "Register/Remove", roles: [.registrar]) { c in
                _ = try await c.unary(service: "chukan.v1.Register", method: "Remove", request: Self.req(WriteRequest()) { $0.tenant = a; $0.event = Self.req(RegisterEvent()) { $0.person = "T1"; $0.reason = .shibou } }, as: WriteResponse.self)
            },
            Call(name: "Register/ApproveExport", roles: [.approver]) { c in
                _ = try await c.unary(service: "chukan.v1.Register", method: "ApproveExport", request: Self.req(ExportRequest()) { $0.tenant = a; $0.exportId = "EXPNONE" }, as: ExportTicket.self)
            },
            Call(name: "Staff/DisableStaff", roles: [.tenantAdmin]) { c in
                _ = try await c.unary(service: "chukan.v1.Staff", method: "DisableStaff", request: Self.req(StaffRequest()) { $0.tenant = a; $0.staffId = "nobody" }, as: StaffView.self)
            },
            Call(name: "Staff/ListStaff", roles: [.tenantAdmin, .auditor]) { c in
                _ = try await c.unary(service: "chukan.v1.Staff", method: "ListStaff", request: Self.req(ListStaffRequest()) { $0.tenant = a }, as: ListStaffResponse.self)
            },
            Call(name: "Admin/TenantStats", roles: [.platformOperator, .tenantAdmin]) { c in
                _ = try await c.unary(service: "chukan.v1.Admin", method: "TenantStats", request: Self.req(TenantStatsRequest()) { $0.tenant = a }, as: TenantStatsResponse.self)
            },
            Call(name: "Provision/Provide", roles: [.networkGateway]) { c in
                _ = try await c.unary(service: "chukan.v1.Provision", method: "Provide", request: Self.req(ProvideRequest()) { $0.tenant = a; $0.inquirer = "MHLW0001" }, as: ProvideResponse.self)
            },
            Call(name: "Provision/FetchHeld", roles: [.networkGateway]) { c in
                _ = try await c.unary(service: "chukan.v1.Provision", method: "FetchHeld", request: Self.req(HeldRequest()) { $0.tenant = a; $0.pendingId = "PNONE" }, as: ProvideResponse.self)
            },
            Call(name: "Provision/DecideHeld", roles: [.approver]) { c in
                _ = try await c.unary(service: "chukan.v1.Provision", method: "DecideHeld", request: Self.req(HeldRequest()) { $0.tenant = a; $0.pendingId = "PNONE" }, as: PendingProvision.self)
            },
            Call(name: "Provision/Disclose", roles: [.auditor]) { c in
                _ = try await c.unary(service: "chukan.v1.Provision", method: "Disclose", request: Self.req(DiscloseRequest()) { $0.tenant = a; $0.keyKind = .atenaNumber; $0.key = "A1" }, as: Disclosure.self)
            },
            Call(name: "Provision/ReloadRules", roles: [.platformOperator]) { c in
                _ = try await c.unary(service: "chukan.v1.Provision", method: "ReloadRules", request: RulesRequest(), as: RulesSummary.self)
            },
            Call(name: "Admin/AddTenant", roles: [.platformOperator]) { c in
                _ = try await c.unary(service: "chukan.v1.Admin", method: "AddTenant", request: Self.req(TenantRequest()) { $0.tenant = "012040" }, as: TenantStatus.self)
            },
        ]
    }

    @Test func everyRoleAgainstEveryKindOfCall() async throws {
        var principals = Self.tenantRoles.map { policyPrincipal("p-\($0.rawValue)", tenant: Self.a, [$0]) }
        principals.append(policyPrincipal("operator", tenant: nil, [.platformOperator]))
        principals.append(policyPrincipal("other-tenant", tenant: Self.b, Set(Self.tenantRoles)))
        let f = try await ServiceFixture.start(pki: Self.pki, policy: Policy(principals: principals), tenants: [Self.a, Self.b])
        var checked = 0
        for name in Self.names {
            let client = try await f.client(name)
            let roles: Set<Role> = switch name {
            case "operator": [.platformOperator]
            case "other-tenant", "stranger": []  // nothing in tenant A
            default: [Role(rawValue: String(name.dropFirst(2)))!]
            }
            for call in Self.calls() {
                let code = await statusCode { try await call.run(client) }
                let allowed = code != .permissionDenied && code != .unauthenticated
                #expect(allowed == !call.roles.isDisjoint(with: roles), "\(name) → \(call.name): \(String(describing: code))")
                if name == "stranger" { #expect(code == .unauthenticated, "\(name) → \(call.name)") }
                checked += 1
            }
            await client.close()
        }
        #expect(checked == Self.names.count * Self.calls().count)
        await f.stop()
        // Every one of those calls is in a trail, allowed or not.
        let trailed = try f.auditRecords(Self.a).count + f.auditRecords(Self.b).count
        #expect(trailed > 0)
    }
}
