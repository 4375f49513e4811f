import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanStore
import Foundation

/// chukan.v1.Staff: staff sign-in on terminals, and the tenant administrator's management
/// of staff accounts. Accounts change through register events (STAFF_ADD, STAFF_UPDATE),
/// so they are in the tenant's WAL and snapshots like its residents.
public struct StaffService: RPCService {
    public static let name = "chukan.v1.Staff"
    public let serviceName = StaffService.name
    let tenants: TenantManager
    let access: AccessControl
    /// A change reads an account, changes it and logs it: one at a time per account, or two
    /// at once would lose one.
    let locks = KeyedLocks()

    /// Roles a staff member may hold: those of the tenant's own work.
    static let staffRoles: Set<Role> = [.registrar, .codeManager, .clerk, .numberClerk, .approver, .auditor, .tenantAdmin]

    public init(tenants: TenantManager, access: AccessControl) {
        self.tenants = tenants
        self.access = access
    }

    public var methods: [String: MethodHandler] {
        [
            "Login": .unaryAsync(LoginRequest.self) { request, context in try await login(request, context) },
            "Logout": .unaryAsync(LogoutRequest.self) { _, context in
                try await access.perform(context, tenant: nil, roles: [], allowStale: true) { caller in
                    guard caller.staff != nil, let token = AccessControl.bearerToken(context.metadata) else {
                        throw RPCError(.failedPrecondition, "no staff member is signed in on this call")
                    }
                    access.sessions.close(token)
                    return LogoutResponse()
                }
            },
            "ChangePassword": .unaryAsync(ChangePasswordRequest.self) { request, context in
                try await access.perform(context, tenant: request.tenant, roles: [], allowStale: true) { caller in
                    guard let staff = caller.staff else { throw RPCError(.failedPrecondition, "sign in on a terminal to change a password") }
                    let db = try tenants.database(request.tenant)
                    let key = "\(request.tenant)/\(staff)"
                    // A wrong old password counts towards the lock, as a failed sign-in does.
                    try await locks.serialized(key) {
                        guard !isLocked(key, db.version.state.staff[staff], now: access.now()) else { throw Self.lockedError }
                        let current = db.version.state.staff[staff]
                        let matches = try await access.passwordChecks.verify(request.oldPassword, against: current?.passwordHash ?? access.decoyHash, tenant: request.tenant)
                        // Checked again after the password check: a failed sign-in (counted outside
                        // this turn) may have locked the account meanwhile.
                        guard !isLocked(key, db.version.state.staff[staff], now: access.now()) else { throw Self.lockedError }
                        guard var account = current, matches else {
                            if let until = access.sessions.failed(key, now: access.now(), rules: access.rules) {
                                await writeLock(until, staffID: staff, db)  // already serialized on this account
                            }
                            throw RPCError.unauthenticated("the old password is wrong")
                        }
                        if let p = access.rules.passwordProblem(request.newPassword) { throw RPCError.invalidArgument("new_password: \(p)") }
                        guard request.newPassword != request.oldPassword else { throw RPCError.invalidArgument("new_password: must differ from the old one") }
                        account.passwordHash = PasswordHash.make(request.newPassword, iterations: access.rules.passwordIterations)
                        account.passwordChangedUnixMs = Int64(access.now().timeIntervalSince1970 * 1000)
                        account.mustChangePassword = false
                        try await Self.save(account, kind: .staffUpdate, db)
                        access.sessions.closeAll(tenant: request.tenant, staff: staff, keeping: AccessControl.bearerToken(context.metadata))
                    }
                    return ChangePasswordResponse()
                }
            },
            "AddStaff": manage { request, _, now in
                (try Self.newAccount(request.staffId, password: request.password, roles: request.roles, rules: access.rules, now: now), .staffAdd)
            },
            "DisableStaff": manage { request, db, _ in
                var a = try Self.account(request, db)
                a.disabled = true
                return (a, .staffUpdate)
            },
            "GrantRoles": manage { request, db, _ in
                var a = try Self.account(request, db)
                a.roles = try Self.roles(request.roles)
                return (a, .staffUpdate)
            },
            "RenewGrants": manage { request, db, now in
                var a = try Self.account(request, db)
                a.grantsRenewedOn = StaffRules.tokyoDate(now)
                return (a, .staffUpdate)
            },
            "ResetPassword": manage { request, db, now in
                var a = try Self.account(request, db)
                if let p = access.rules.passwordProblem(request.password) { throw RPCError.invalidArgument("password: \(p)") }
                a.passwordHash = PasswordHash.make(request.password, iterations: access.rules.passwordIterations)
                a.passwordChangedUnixMs = Int64(now.timeIntervalSince1970 * 1000)
                a.mustChangePassword = true
                a.disabled = false
                a.lockedUntilUnixMs = 0
                access.sessions.succeeded("\(request.tenant)/\(request.staffId)")  // a reset lifts a lock
                return (a, .staffUpdate)
            },
            "ListStaff": .unaryAsync(ListStaffRequest.self) { request, context in
                try await access.perform(context, tenant: request.tenant, roles: [.tenantAdmin, .auditor]) { _ in
                    var r = ListStaffResponse()
                    r.staff = try tenants.database(request.tenant).version.state.staff.values.sorted { $0.staffId < $1.staffId }.map { view($0) }
                    return r
                }
            },
        ]
    }

    /// A tenant administrator's change to one account, logged as a register event.
    private func manage(_ change: @escaping @Sendable (StaffRequest, TenantDatabase, Date) throws -> (StaffAccount, RegisterEventKind)) -> MethodHandler {
        .unaryAsync(StaffRequest.self) { request, context in
            try await access.perform(context, tenant: request.tenant, roles: [.tenantAdmin], subject: RegisterState.staffIDProblem(request.staffId) == nil ? request.staffId : "") { _ in
                let db = try tenants.database(request.tenant)
                let account = try await locks.serialized("\(request.tenant)/\(request.staffId)") {
                    let (account, kind) = try change(request, db, access.now())
                    try await Self.save(account, kind: kind, db)
                    return account
                }
                if account.disabled || account.mustChangePassword { access.sessions.closeAll(tenant: request.tenant, staff: account.staffId) }
                return view(account)
            }
        }
    }

    private func login(_ request: LoginRequest, _ context: ServerCallContext) async throws -> LoginResponse {
        // Only a terminal of this tenant may sign a member in; the decision and every
        // failure are recorded like any other call.
        let terminal = access.principal(context)
        var caller: Caller?
        if let terminal {
            caller = Caller(principal: terminal.name, kind: terminal.kind, tenant: terminal.tenant, roles: [], certificate: "", staff: nil)
        }
        let validID = RegisterState.staffIDProblem(request.staffId) == nil
        var record = AccessControl.record(context, caller: caller, subject: validID ? request.staffId : "")
        record.certificate = context.peer.map { $0.commonName ?? $0.fingerprintSHA256 } ?? ""
        record.staff = RegisterState.staffIDProblem(request.staffId) == nil ? request.staffId : ""
        let now = access.now()
        let key = "\(request.tenant)/\(request.staffId)"
        var lockedUntil: Date?  // set when this failure locks the account
        let database = Result { try tenants.database(request.tenant) }
        let outcome: Result<LoginResponse, RPCError> = await { () async -> Result<LoginResponse, RPCError> in
            guard let terminal else { return .failure(RPCError.unauthenticated("the client certificate is not in the server's policy")) }
            // A staff id that cannot exist is refused before it is counted or kept anywhere.
            if let p = RegisterState.staffIDProblem(request.staffId) { return .failure(RPCError.invalidArgument("staff_id: \(p)")) }
            guard terminal.kind == .terminal, terminal.tenant == request.tenant else {
                return .failure(RPCError.permissionDenied("staff sign in on a terminal of their tenant named in the policy"))
            }
            // UNAVAILABLE while it recovers or after it failed; NOT_FOUND once it is removed.
            let db: TenantDatabase
            switch database {
            case let .success(d): db = d
            case let .failure(error): return .failure(RPCError.from(error))
            }
            let account = db.version.state.staff[request.staffId]
            if isLocked(key, account, now: now) { return .failure(Self.lockedError) }
            // An unknown id costs the same hashing as a known one: the timing tells nothing.
            let matches: Bool
            do {
                matches = try await access.passwordChecks.verify(request.password, against: account?.passwordHash ?? access.decoyHash, tenant: request.tenant)
            } catch {
                return .failure(RPCError.from(error))  // too many waiting: not a failed sign-in
            }
            // Checks queued behind the one that locked the account must not count or sign in.
            if isLocked(key, db.version.state.staff[request.staffId], now: access.now()) { return .failure(Self.lockedError) }
            guard let account, !account.disabled, matches else {
                lockedUntil = access.sessions.failed(key, now: now, rules: access.rules)
                return .failure(RPCError.unauthenticated("staff id or password is wrong, or the account is disabled"))
            }
            // The check waited its turn: a password change, reset or disabling made meanwhile
            // (and the sign-ins it ended) must not be undone by a session opened now on the
            // account as it was.
            guard let latest = db.version.state.staff[request.staffId], latest.passwordHash == account.passwordHash, !latest.disabled else {
                return .failure(RPCError.unauthenticated("the account changed while the password was checked; sign in again"))
            }
            access.sessions.succeeded(key)
            var r = LoginResponse()
            let expires = now.addingTimeInterval(access.rules.sessionSeconds)
            r.token = access.sessions.open(.init(tenant: request.tenant, staff: latest.staffId, terminal: terminal.name, expires: expires))
            r.expiresUnixMs = Int64(expires.timeIntervalSince1970 * 1000)
            r.roles = latest.roles
            r.mustChangePassword = access.rules.passwordExpired(latest, now: now)
            return .success(r)
        }()
        if case let .failure(e) = outcome {
            record.outcomeCode = UInt32(e.code.rawValue)
            record.outcomeDetail = AccessControl.detail(e.message)
        }
        if let lockedUntil, case let .success(db) = database { await persistLock(request.staffId, until: lockedUntil, key: key, db) }
        let named = Identifiers.localGovernmentCodeProblem(request.tenant) == nil ? request.tenant : nil
        // A certificate the policy does not name has nothing to do with the tenant it names:
        // its attempts go to the platform stream, not into that tenant's trail.
        if terminal == nil {
            try await access.audit.recordPlatform(record, tenant: named)
        } else {
            try await access.audit.record(record, tenant: named)
        }
        return try outcome.get()
    }

    /// Locked by failures counted since this server started, or by a lock written into the
    /// account (which a restart does not lift).
    private func isLocked(_ key: String, _ account: StaffAccount?, now: Date) -> Bool {
        if access.sessions.isLocked(key, now: now) { return true }
        guard let until = account?.lockedUntilUnixMs, until > 0 else { return false }
        return Double(until) > now.timeIntervalSince1970 * 1000
    }

    /// Writes a lock into the account (a register event, so it is in the log and the next
    /// snapshot). Only an existing account is written: a lock on an unknown id stays in memory.
    /// If the write fails, the lock in memory still holds until a restart.
    private func persistLock(_ staffID: String, until: Date, key: String, _ db: TenantDatabase) async {
        // Written even when the sign-in's call was cancelled meanwhile: the failure was counted.
        try? await locks.serialized(key, honoringCancellation: false) {
            // A reset that came in between lifted the lock (in memory too): do not write it back.
            guard access.sessions.isLocked(key, now: access.now()) else { return }
            await writeLock(until, staffID: staffID, db)
        }
    }

    /// The write itself; the caller holds the account's turn (`locks`).
    private func writeLock(_ until: Date, staffID: String, _ db: TenantDatabase) async {
        guard var a = db.version.state.staff[staffID] else { return }
        a.lockedUntilUnixMs = Int64(until.timeIntervalSince1970 * 1000)
        try? await Self.save(a, kind: .staffUpdate, db)
    }

    static let lockedError = RPCError.unauthenticated("too many failed sign-ins: the account is locked for a while")

    func view(_ a: StaffAccount) -> StaffView {
        var v = StaffView()
        v.staffId = a.staffId
        v.roles = a.roles
        v.disabled = a.disabled
        v.mustChangePassword = a.mustChangePassword
        v.passwordExpired = access.rules.passwordExpired(a, now: access.now())
        v.grantsLapsed = access.rules.grantsLapsed(a, today: StaffRules.tokyoDate(access.now()))
        v.grantsRenewedOn = a.grantsRenewedOn.map { String(format: "%04d-%02d-%02d", $0.year, $0.month, $0.day) } ?? ""
        return v
    }

    /// A new account, checked: its initial password must be changed at first sign-in.
    /// (Shared with `chukanctl staff add --offline`.)
    public static func newAccount(_ id: String, password: String, roles: [String], rules: StaffRules, now: Date) throws -> StaffAccount {
        if let p = RegisterState.staffIDProblem(id) { throw RPCError.invalidArgument("staff_id: \(p)") }
        if let p = rules.passwordProblem(password) { throw RPCError.invalidArgument("password: \(p)") }
        var a = StaffAccount()
        a.staffId = id
        a.roles = try Self.roles(roles)
        a.passwordHash = PasswordHash.make(password, iterations: rules.passwordIterations)
        a.passwordChangedUnixMs = Int64(now.timeIntervalSince1970 * 1000)
        a.mustChangePassword = true  // an initial password is the administrator's, not the member's
        a.grantsRenewedOn = StaffRules.tokyoDate(now)
        return a
    }

    static func account(_ request: StaffRequest, _ db: TenantDatabase) throws -> StaffAccount {
        // Checked before it is quoted: the id is the caller's text, and the message is recorded.
        if let p = RegisterState.staffIDProblem(request.staffId) { throw RPCError.invalidArgument("staff_id: \(p)") }
        guard let a = db.version.state.staff[request.staffId] else { throw RPCError(.notFound, "no staff account \(request.staffId)") }
        return a
    }

    static func roles(_ names: [String]) throws -> [String] {
        var out: Set<Role> = []
        for (i, n) in names.enumerated() {
            // An unknown name is named by its place, not quoted: it is the caller's text.
            guard let r = Role(rawValue: n) else { throw RPCError.invalidArgument("roles[\(i)]: not a known role") }
            guard staffRoles.contains(r) else { throw RPCError.invalidArgument("roles: \(n) is not a staff role") }
            out.insert(r)
        }
        return out.sorted().map(\.rawValue)
    }

    public static func save(_ account: StaffAccount, kind: RegisterEventKind, _ db: TenantDatabase) async throws {
        var e = RegisterEvent()
        e.kind = kind
        e.staff = account
        try await db.apply(e)
    }
}
