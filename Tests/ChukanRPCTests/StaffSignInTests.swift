import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanService
import ChukanStore
import Foundation
import Testing

/// Staff sign-in on terminals, end to end over TLS, with a clock the test moves: a terminal
/// does nothing until a member signs in, then works with the member's grants; lockout,
/// reset, password expiry, the yearly lapse, disabling, session expiry and logout.
@Suite(.serialized) struct StaffSignInTests {
    static let pki = try! TestPKI.make(clients: ["tenant-admin", "terminal-1", "terminal-2", "stranger"])
    static let tenant = "012041"
    static let people: [Resident] = currentResidents(5, seed: 41)
    static let policy = Policy(principals: [
        policyPrincipal("tenant-admin", tenant: tenant, [.tenantAdmin]),
        policyPrincipal("terminal-1", .terminal, tenant: tenant, []),
        policyPrincipal("terminal-2", .terminal, tenant: tenant, []),
    ])

    func staff(_ c: RPCClient, _ method: String, _ id: String, password: String = "", roles: [String] = []) async throws -> StaffView {
        var r = StaffRequest()
        r.tenant = Self.tenant
        r.staffId = id
        r.password = password
        r.roles = roles
        return try await c.unary(service: "chukan.v1.Staff", method: method, request: r, as: StaffView.self)
    }

    func login(_ c: RPCClient, _ id: String, _ password: String) async throws -> LoginResponse {
        var r = LoginRequest()
        r.tenant = Self.tenant
        r.staffId = id
        r.password = password
        return try await c.unary(service: "chukan.v1.Staff", method: "Login", request: r, as: LoginResponse.self)
    }

    func lookup(_ c: RPCClient, token: String?, by kind: LookupRequestKeyKind = .atenaNumber, _ key: String = people[0].atenaNumber) async throws -> PersonView {
        var r = LookupRequest()
        r.tenant = Self.tenant
        r.keyKind = kind
        r.key = key
        let m: Metadata = token.map { ["authorization": "Bearer \($0)"] } ?? [:]
        return try await c.unary(service: "chukan.v1.Inquiry", method: "Lookup", request: r, as: LookupResponse.self, metadata: m).person!
    }

    func changePassword(_ c: RPCClient, token: String, from old: String, to new: String) async throws {
        var r = ChangePasswordRequest()
        r.tenant = Self.tenant
        r.oldPassword = old
        r.newPassword = new
        _ = try await c.unary(service: "chukan.v1.Staff", method: "ChangePassword", request: r, as: ChangePasswordResponse.self, metadata: ["authorization": "Bearer \(token)"])
    }

    @Test func aTerminalWorksOnlyThroughASignedInMember() async throws {
        // 2026-11-30 10:00 in Tokyo.
        let clock = TestClock(Date(timeIntervalSince1970: 1_796_000_400))
        let f = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant], residents: [Self.tenant: Self.people], now: { clock.now })
        let admin = try await f.client("tenant-admin"), t1 = try await f.client("terminal-1"), t2 = try await f.client("terminal-2")
        let initial = "initial-password-1", mine = "my-own-password-2"
        #expect(await statusCode { _ = try await staff(admin, "AddStaff", "s001", password: "short", roles: ["clerk"]) } == .invalidArgument)
        #expect(await statusCode { _ = try await staff(admin, "AddStaff", "s001", password: initial, roles: ["platform-operator"]) } == .invalidArgument)
        let added = try await staff(admin, "AddStaff", "s001", password: initial, roles: ["clerk"])
        #expect(added.mustChangePassword && added.roles == ["clerk"])
        #expect(await statusCode { _ = try await staff(admin, "AddStaff", "s001", password: initial, roles: ["clerk"]) } == .alreadyExists)

        // Nothing without a member; a certificate outside the policy cannot sign anyone in.
        #expect(await statusCode { _ = try await lookup(t1, token: nil) } == .permissionDenied)
        let stranger = try await f.client("stranger")
        #expect(await statusCode { _ = try await login(stranger, "s001", initial) } == .unauthenticated)
        #expect(await statusCode { _ = try await login(admin, "s001", initial) } == .permissionDenied, "a system principal is not a terminal")

        // Signed in with the administrator's password: only a password change works.
        var session = try await login(t1, "s001", initial)
        #expect(session.mustChangePassword)
        #expect(await statusCode { _ = try await lookup(t1, token: session.token) } == .permissionDenied)
        #expect(await statusCode { try await changePassword(t1, token: session.token, from: "wrong-password-x", to: mine) } == .unauthenticated)
        try await changePassword(t1, token: session.token, from: initial, to: mine)
        let seen = try await lookup(t1, token: session.token)
        #expect(seen.integratedAtenaNumber == Self.people[0].integratedAtenaNumber && seen.resident?.kojinBango == "")
        // A clerk's grants: no inquiry by 個人番号 — until the administrator grants it.
        #expect(await statusCode { _ = try await lookup(t1, token: session.token, by: .kojinBango, Self.people[0].kojinBango) } == .permissionDenied)
        _ = try await staff(admin, "GrantRoles", "s001", roles: ["number-clerk"])
        #expect(try await lookup(t1, token: session.token, by: .kojinBango, Self.people[0].kojinBango).resident?.kojinBango == Self.people[0].kojinBango)
        // The token is bound to the terminal it was issued on.
        #expect(await statusCode { _ = try await lookup(t2, token: session.token) } == .unauthenticated)
        #expect(await statusCode { _ = try await lookup(t1, token: "0123456789abcdef") } == .unauthenticated)

        // Lockout: five wrong passwords lock the account, even against the right one, for a while.
        for _ in 0..<5 { #expect(await statusCode { _ = try await login(t2, "s001", "not-my-password") } == .unauthenticated) }
        #expect(await statusCode { _ = try await login(t2, "s001", mine) } == .unauthenticated)
        clock.advance(16 * 60)
        session = try await login(t2, "s001", mine)
        #expect(!session.mustChangePassword)

        // The yearly lapse (1 April): grants stop until renewed.
        clock.advance(122 * 86_400)  // 2027-04-01
        #expect(await statusCode { _ = try await lookup(t2, token: session.token) } == .unauthenticated, "the 8-hour sign-in has expired")
        session = try await login(t2, "s001", mine)
        #expect(await statusCode { _ = try await lookup(t2, token: session.token) } == .permissionDenied)
        #expect(try await staff(admin, "RenewGrants", "s001").grantsLapsed == false)
        _ = try await lookup(t2, token: session.token)

        // A password older than 180 days blocks work until it is changed.
        clock.advance(181 * 86_400 - 9 * 3600)
        session = try await login(t2, "s001", mine)
        #expect(session.mustChangePassword)
        #expect(await statusCode { _ = try await lookup(t2, token: session.token) } == .permissionDenied)
        let elsewhere = try await login(t1, "s001", mine)
        try await changePassword(t2, token: session.token, from: mine, to: "another-password-3")
        _ = try await lookup(t2, token: session.token)
        // A sign-in made with the old password ends with it; the one that changed it goes on.
        #expect(await statusCode { _ = try await lookup(t1, token: elsewhere.token) } == .unauthenticated)
        // An id is checked before an error quotes it; an unknown role is named by its place.
        #expect(await statusCode { _ = try await staff(admin, "DisableStaff", "\u{1B}[2K") } == .invalidArgument)
        #expect(await statusCode { _ = try await staff(admin, "GrantRoles", "s001", roles: ["clerk", "\u{1B}[1A"]) } == .invalidArgument)

        // Logout ends the sign-in; disabling ends every sign-in of the member.
        _ = try await t2.unary(service: "chukan.v1.Staff", method: "Logout", request: LogoutRequest(), as: LogoutResponse.self, metadata: ["authorization": "Bearer \(session.token)"])
        #expect(await statusCode { _ = try await lookup(t2, token: session.token) } == .unauthenticated)
        session = try await login(t1, "s001", "another-password-3")
        _ = try await staff(admin, "DisableStaff", "s001")
        #expect(await statusCode { _ = try await lookup(t1, token: session.token) } == .unauthenticated)
        #expect(await statusCode { _ = try await login(t1, "s001", "another-password-3") } == .unauthenticated)
        for c in [admin, t1, t2, stranger] { await c.close() }
        await f.stop()

        // The account and its state are durable; every attempt is in the trail.
        let again = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant], reusing: f.root, now: { clock.now })
        let account = try #require(try again.tenants.database(Self.tenant).current.staff["s001"])
        #expect(account.disabled && account.roles == ["number-clerk"])
        await again.stop()
        let records = try f.auditRecords(Self.tenant)
        let logins = records.filter { $0.operation == "chukan.v1.Staff/Login" }
        #expect(logins.filter { $0.outcomeCode == UInt32(StatusCode.unauthenticated.rawValue) && $0.staff == "s001" }.count >= 7)
        #expect(records.contains { $0.operation == "chukan.v1.Inquiry/Lookup" && $0.staff == "s001" && $0.terminal == "terminal-1" && $0.outcomeCode == 0 })
        #expect(!records.contains { [$0.outcomeDetail, $0.subject].contains { $0.contains("password-") } }, "no password in the trail")
        #expect(!records.contains { [$0.outcomeDetail, $0.subject].contains { $0.contains("\u{1B}") } }, "no caller's control characters in the trail")
        // A certificate the policy does not name signs in nowhere, and its attempt is in the
        // platform stream, not this tenant's.
        #expect(!records.contains { $0.certificate == "stranger" })
        #expect(try f.platformRecords().contains { $0.certificate == "stranger" && $0.operation == "chukan.v1.Staff/Login" && $0.tenant == Self.tenant })
    }

    /// A lock outlives a restart: the failure that locks an account also writes the lock into
    /// it, so a restarted server (which has counted nothing) still refuses the right password
    /// until the lock time has passed. A password reset lifts a lock.
    /// Once the server no longer holds the tenant, its terminals' calls and sign-ins get
    /// NOT_FOUND, not a retryable UNAVAILABLE.
    @Test func aRemovedTenantIsNotFoundForItsTerminals() async throws {
        let f = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant])
        let admin = try await f.client("tenant-admin"), t1 = try await f.client("terminal-1")
        let password = "initial-password-9"
        _ = try await staff(admin, "AddStaff", "s009", password: password, roles: ["clerk"])
        let session = try await login(t1, "s009", password)
        _ = try f.tenants.remove(Self.tenant, force: true)
        #expect(await statusCode { _ = try await lookup(t1, token: session.token) } == .notFound)
        #expect(await statusCode { _ = try await login(t1, "s009", password) } == .notFound)
        for c in [admin, t1] { await c.close() }
        await f.stop()
    }

    @Test func aLockOutlivesARestart() async throws {
        let clock = TestClock(Date(timeIntervalSince1970: 1_796_000_400))
        let f = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant], now: { clock.now })
        let admin = try await f.client("tenant-admin"), t1 = try await f.client("terminal-1")
        let password = "initial-password-1"
        _ = try await staff(admin, "AddStaff", "s002", password: password, roles: ["clerk"])
        for _ in 0..<5 { #expect(await statusCode { _ = try await login(t1, "s002", "not-my-password") } == .unauthenticated) }
        for c in [admin, t1] { await c.close() }
        await f.stop()

        let again = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant], reusing: f.root, now: { clock.now })
        let admin2 = try await again.client("tenant-admin"), t2 = try await again.client("terminal-2")
        #expect(await statusCode { _ = try await login(t2, "s002", password) } == .unauthenticated, "the lock was lifted by the restart")
        clock.advance(16 * 60)
        _ = try await login(t2, "s002", password)
        for _ in 0..<5 { _ = await statusCode { _ = try await login(t2, "s002", "not-my-password") } }
        #expect(await statusCode { _ = try await login(t2, "s002", password) } == .unauthenticated)
        _ = try await staff(admin2, "ResetPassword", "s002", password: "reset-password-4")
        _ = try await login(t2, "s002", "reset-password-4")
        for c in [admin2, t2] { await c.close() }
        await again.stop()
    }

    /// Password checks are rationed: with room for two, twenty sign-ins at once get two
    /// answers of the password check and RESOURCE_EXHAUSTED for the rest — each recorded —
    /// and the server goes on serving other calls.
    @Test func passwordChecksAreRationed() async throws {
        var rules = ServiceFixture.fastRules
        rules.passwordIterations = 200_000  // checks that take a while, as in production
        rules.maxWaitingPasswordChecks = 2
        let f = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant], rules: rules)
        let admin = try await f.client("tenant-admin"), t1 = try await f.client("terminal-1")
        let codes = await withTaskGroup(of: StatusCode?.self) { group in
            for i in 0..<20 { group.addTask { await statusCode { _ = try await login(t1, "ghost\(i)", "not-a-password") } } }
            return await group.reduce(into: [StatusCode?]()) { $0.append($1) }
        }
        #expect(codes.count == 20 && codes.allSatisfy { $0 == .unauthenticated || $0 == .resourceExhausted }, "\(codes)")
        #expect(codes.contains(.resourceExhausted) && codes.contains(.unauthenticated), "\(codes)")
        var list = ListStaffRequest()
        list.tenant = Self.tenant
        _ = try await admin.unary(service: "chukan.v1.Staff", method: "ListStaff", request: list, as: ListStaffResponse.self)
        let refused = try f.auditRecords(Self.tenant).filter { $0.operation == "chukan.v1.Staff/Login" && $0.outcomeCode == UInt32(StatusCode.resourceExhausted.rawValue) }
        #expect(refused.count == codes.filter { $0 == .resourceExhausted }.count)
        for c in [admin, t1] { await c.close() }
        await f.stop()
    }

    /// Changes of one account at the same moment are applied one after the other: a
    /// DisableStaff among many GrantRoles is never undone by one of them.
    @Test func concurrentChangesOfAnAccountAreNotLost() async throws {
        let f = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant])
        let admin = try await f.client("tenant-admin")
        _ = try await staff(admin, "AddStaff", "s002", password: "initial-password-1", roles: ["clerk"])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<24 {
                group.addTask {
                    if i == 12 {
                        _ = try await staff(admin, "DisableStaff", "s002")
                    } else {
                        _ = try await staff(admin, "GrantRoles", "s002", roles: [i % 2 == 0 ? "clerk" : "auditor"])
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try f.tenants.database(Self.tenant).current.staff["s002"]?.disabled == true)
        await admin.close()
        await f.stop()
    }
}
