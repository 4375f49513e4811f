import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanStore
import Foundation
import NIOCore
import Synchronization

/// Who is calling, as the policy resolved it.
public struct Caller: Sendable, Equatable {
    public var principal: String
    public var kind: Policy.Kind
    /// nil only for the platform operator.
    public var tenant: String?
    public var roles: Set<Role>
    /// The certificate's CN, or its fingerprint when it has none.
    public var certificate: String
    /// Staff id, once staff sign in (terminals).
    public var staff: String?

    public var isPlatformOperator: Bool { roles.contains(.platformOperator) }
}

/// What a call learns as it runs and its record must hold (情報提供等記録: the inquirer,
/// the permit, the person found), filled by the body and copied into the record whatever
/// the outcome.
public final class AuditNotes: Sendable {
    private let notes = Mutex(AuditRecord())

    public init() {}

    public func note(_ change: (inout AuditRecord) -> Void) { notes.withLock { change(&$0) } }

    func apply(to record: inout AuditRecord) {
        let n = notes.withLock { $0 }
        if !n.subject.isEmpty { record.subject = String(n.subject.prefix(128)) }
        if !n.legalRow.isEmpty { record.legalRow = n.legalRow }
        record.inquirer = String(n.inquirer.prefix(16))
        record.itemGroup = n.itemGroup
        record.permitId = n.permitId
        record.permitExpiresUnixMs = n.permitExpiresUnixMs
        record.pendingId = n.pendingId
        record.route = String(n.route.utf8.prefix(512)) ?? ""
        // What the call adds about a success (a failure's status message replaces it).
        if !n.outcomeDetail.isEmpty { record.outcomeDetail = AccessControl.detail(n.outcomeDetail) }
    }
}

/// Checks every call against the policy before the call does anything: a certificate
/// the policy names, the tenant the principal belongs to, one of the roles the call
/// needs. Every denial and every outcome is recorded in the audit trail, durably,
/// before the answer leaves (see `perform`).
public final class AccessControl: Sendable {
    private let policy: Mutex<Policy>
    /// Where `reload` reads the policy from; nil for a policy given in code (tests).
    public let policyPath: String?
    public let audit: AuditTrail
    public let rules: StaffRules
    /// The clock (tests move it to check expiry, lockout and the yearly lapse).
    let now: @Sendable () -> Date
    let sessions = SessionStore()
    let passwordChecks: PasswordChecks
    /// A hash no password matches, checked for unknown staff ids (see `StaffService.login`).
    let decoyHash: String

    public let limiter: TenantLimiter
    public let statistics = TenantStatistics()

    public init(
        policy: Policy, policyPath: String?, audit: AuditTrail, rules: StaffRules = StaffRules(),
        limits: TenantLimiter.Limits = .init(), now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.limiter = TenantLimiter(limits)
        self.policy = Mutex(policy)
        self.policyPath = policyPath
        self.audit = audit
        self.rules = rules
        self.now = now
        decoyHash = PasswordHash.make(secureRandomHex(16), iterations: rules.passwordIterations)
        passwordChecks = PasswordChecks(limit: rules.maxWaitingPasswordChecks)
    }

    var tenants: TenantManager { audit.tenants }

    public var current: Policy { policy.withLock { $0 } }

    /// Reads the policy file again; a file that does not validate is refused whole and the
    /// policy in force stays.
    @discardableResult
    public func reload() throws -> Policy {
        guard let policyPath else { throw RPCError(.failedPrecondition, "this server was started without a policy file") }
        let fresh: Policy
        do { fresh = try Policy.load(path: policyPath) } catch {
            throw RPCError(.failedPrecondition, "policy not reloaded: \(error)")
        }
        policy.withLock { $0 = fresh }
        return fresh
    }

    /// Runs `body` for a caller the policy allows: `tenant` is the tenant the request names
    /// (nil for calls that name none), `roles` the roles of which the caller needs one.
    /// A denial is recorded and thrown (UNAUTHENTICATED or PERMISSION_DENIED); otherwise
    /// the outcome of `body` is recorded — in the tenant's stream, or the platform's for
    /// the platform operator — before it is returned or thrown.
    /// `subjectOf` names the subject from the answer when the request alone does not
    /// (an inquiry by 宛名番号 is recorded under the 団体内統合宛名番号 it found).
    public func perform<T: Sendable>(
        _ context: ServerCallContext, tenant: String?, roles: Set<Role>, subject: String = "", legalRow: String = "", allowStale: Bool = false,
        subjectOf: (@Sendable (T) -> String)? = nil, notes: AuditNotes? = nil, _ body: @Sendable (Caller) async throws -> T
    ) async throws -> T {
        let caller = try await authorize(context, tenant: tenant, roles: roles, subject: subject, allowStale: allowStale)
        // Limits hold per tenant; the platform operator's few calls are not counted.
        let limited = caller.isPlatformOperator ? nil : caller.tenant ?? tenant
        let outcome: Result<T, Error>
        do {
            if let limited { try limiter.acquire(limited, now: now()) }
            defer { if let limited { limiter.release(limited) } }
            outcome = .success(try await body(caller))
        } catch {
            outcome = .failure(error)
        }
        let record = outcomeRecord(context, caller: caller, subject: subject, legalRow: legalRow, outcome: outcome, subjectOf: subjectOf, notes: notes)
        if caller.isPlatformOperator {
            try await audit.recordPlatform(record, tenant: tenant)
        } else {
            try await audit.record(record, tenant: caller.tenant)
        }
        countOutcome(record, caller: caller, tenant: tenant)
        return try outcome.get()
    }

    /// `perform` for a body that is done at once (reads of the in-memory register): it
    /// runs on the calling thread — the connection's event loop — and the answer comes on
    /// a future of that loop once the record is durable. No task is started: the only
    /// other thread a call visits is the log's writer, which completes many calls' futures
    /// per group commit. Same checks, limits, record and outcome as `perform`.
    public func performNow<T: Sendable>(
        _ context: ServerCallContext, tenant: String?, roles: Set<Role>, subject: String = "", legalRow: String = "",
        subjectOf: (@Sendable (T) -> String)? = nil, _ body: (Caller) throws -> T
    ) -> EventLoopFuture<T> {
        performFuture(context, tenant: tenant, roles: roles, subject: subject, legalRow: legalRow, subjectOf: subjectOf) { caller in
            context.eventLoop.makeSucceededFuture(try body(caller))
        }
    }

    /// `performNow` for a body that is done at once on its usual path and hands the rare
    /// slow one (a durable register write) to a future: `body` runs on the event loop, and
    /// the call's record is made when its future completes (the tenant's limit is held
    /// until then), then the answer comes once the record is durable.
    public func performFuture<T: Sendable>(
        _ context: ServerCallContext, tenant: String?, roles: Set<Role>, subject: String = "", legalRow: String = "",
        subjectOf: (@Sendable (T) -> String)? = nil, notes: AuditNotes? = nil, _ body: (Caller) throws -> EventLoopFuture<T>
    ) -> EventLoopFuture<T> {
        let promise = context.eventLoop.makePromise(of: T.self)
        let (decided, denial) = decide(context, tenant: tenant, roles: roles)
        if let denial {
            recordDenial(denial, context: context, caller: decided, tenant: tenant, subject: subject) { recorded in
                if case let .failure(error) = recorded { promise.fail(error) } else { promise.fail(denial) }
            }
            return promise.futureResult
        }
        let caller = decided!
        // Limits hold per tenant; the platform operator's few calls are not counted.
        let limited = caller.isPlatformOperator ? nil : caller.tenant ?? tenant
        let running: EventLoopFuture<T>
        var admitted = false
        do {
            if let limited { try limiter.acquire(limited, now: now()) }
            admitted = true
            running = try body(caller)
        } catch {
            running = context.eventLoop.makeFailedFuture(error)
        }
        running.whenComplete { [self, admitted] outcome in
            if admitted, let limited { limiter.release(limited) }
            let record = outcomeRecord(context, caller: caller, subject: subject, legalRow: legalRow, outcome: outcome, subjectOf: subjectOf, notes: notes)
            // Runs on the log's writer thread: the rest goes back to the loop (as completing
            // the promise from there would), to keep the writer's group commit short.
            let loop = context.eventLoop
            let done: @Sendable (Result<Void, Error>) -> Void = { [self] recorded in
                loop.execute { [self] in
                    switch recorded {
                    case let .failure(error): promise.fail(error)
                    case .success:
                        countOutcome(record, caller: caller, tenant: tenant)
                        promise.completeWith(outcome)
                    }
                }
            }
            if caller.isPlatformOperator {
                audit.recordPlatform(record, tenant: tenant, done: done)
            } else {
                audit.record(record, tenant: caller.tenant, done: done)
            }
        }
        return promise.futureResult
    }

    /// The record of a call the policy allowed, whatever its outcome.
    private func outcomeRecord<T>(
        _ context: ServerCallContext, caller: Caller, subject: String, legalRow: String, outcome: Result<T, Error>,
        subjectOf: ((T) -> String)?, notes: AuditNotes?
    ) -> AuditRecord {
        var record = Self.record(context, caller: caller, subject: subject)
        record.legalRow = String(legalRow.prefix(64))
        if case let .success(value) = outcome, let subjectOf { record.subject = subjectOf(value) }
        notes?.apply(to: &record)
        if case let .failure(error) = outcome {
            let status = RPCError.from(error)
            record.outcomeCode = UInt32(status.code.rawValue)
            record.outcomeDetail = Self.detail(status.message)
        }
        return record
    }

    private func countOutcome(_ record: AuditRecord, caller: Caller, tenant: String?) {
        if let t = caller.tenant ?? tenant {
            statistics.count(tenant: t, operation: record.operation, ok: record.outcomeCode == 0, on: StaffRules.tokyoDate(now()))
        }
    }

    /// The caller, when the policy allows this call; else records the denial and throws it.
    /// `allowStale`: the call works for a signed-in member whose password has expired or
    /// whose grants have lapsed (ChangePassword, Logout).
    public func authorize(_ context: ServerCallContext, tenant: String?, roles: Set<Role>, subject: String = "", allowStale: Bool = false) async throws -> Caller {
        let (caller, denial) = decide(context, tenant: tenant, roles: roles, allowStale: allowStale)
        if let denial {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                recordDenial(denial, context: context, caller: caller, tenant: tenant, subject: subject) { continuation.resume(with: $0) }
            }
            throw denial
        }
        return caller!
    }

    /// Records a denial: in the stream of the tenant the request names when that tenant is
    /// serving and the caller is a principal of the policy (its auditor should see attempts
    /// on it), else in the platform's.
    private func recordDenial(
        _ denial: RPCError, context: ServerCallContext, caller: Caller?, tenant: String?, subject: String,
        done: @escaping @Sendable (Result<Void, Error>) -> Void
    ) {
        var record = Self.record(context, caller: caller, subject: subject)
        record.certificate = context.peer.map { $0.commonName ?? $0.fingerprintSHA256 } ?? ""
        record.outcomeCode = UInt32(denial.code.rawValue)
        record.outcomeDetail = Self.detail(denial.message)
        let named = tenant.flatMap { Identifiers.localGovernmentCodeProblem($0) == nil ? $0 : nil }
        let logger = context.logger
        let recorded: @Sendable (Result<Void, Error>) -> Void = { [self, record] recorded in
            if case .success = recorded {
                if let named, caller != nil { statistics.count(tenant: named, operation: record.operation, ok: false, on: StaffRules.tokyoDate(now())) }
                logger.notice("call denied", metadata: ["principal": "\(record.principal)", "code": "\(denial.code)"])
            }
            done(recorded)
        }
        // A caller the policy does not name (no certificate, or one it does not list) has
        // nothing to do with the tenant it names: its refusals go to the platform stream, so
        // that any certificate of the CA cannot fill a tenant's trail.
        if caller == nil {
            audit.recordPlatform(record, tenant: named, done: recorded)
        } else {
            audit.record(record, tenant: named, done: recorded)
        }
    }

    /// The decision alone, without recording it (the rules in one place).
    func decide(_ context: ServerCallContext, tenant: String?, roles: Set<Role>, allowStale: Bool = false) -> (Caller?, RPCError?) {
        guard let peer = context.peer else {
            return (nil, RPCError.unauthenticated("this call needs a client certificate"))
        }
        guard let p = current.principal(commonName: peer.commonName, fingerprintSHA256: peer.fingerprintSHA256) else {
            return (nil, RPCError.unauthenticated("the client certificate is not in the server's policy"))
        }
        var caller = Caller(
            principal: p.name, kind: p.kind, tenant: p.tenant, roles: p.roles,
            certificate: peer.commonName ?? peer.fingerprintSHA256, staff: nil)
        if let own = p.tenant, let tenant, tenant != own {
            return (caller, RPCError.permissionDenied("principal \(p.name) may act only for its own tenant"))
        }
        if p.kind == .terminal {
            // A terminal acts through the member signed in on it, with the member's grants.
            guard let token = Self.bearerToken(context.metadata) else {
                return (caller, RPCError.permissionDenied("a terminal acts only through a signed-in staff member"))
            }
            let now = now()
            guard let session = sessions.session(token, now: now), session.terminal == p.name, session.tenant == p.tenant else {
                return (caller, RPCError.unauthenticated("the sign-in is unknown or has expired; sign in again"))
            }
            caller.staff = session.staff
            // UNAVAILABLE while it recovers or after it failed; NOT_FOUND once it is removed.
            let db: TenantDatabase
            do { db = try tenants.database(session.tenant) } catch { return (caller, RPCError.from(error)) }
            guard let account = db.version.state.staff[session.staff], !account.disabled else {
                return (caller, RPCError.unauthenticated("the staff account is disabled"))
            }
            caller.roles = Set(account.roles.compactMap(Role.init(rawValue:)))
            if !allowStale {
                if rules.passwordExpired(account, now: now) {
                    return (caller, RPCError.permissionDenied("the password has expired or was reset: change it first (ChangePassword)"))
                }
                if rules.grantsLapsed(account, today: StaffRules.tokyoDate(now)) {
                    return (caller, RPCError.permissionDenied("the staff member's grants lapsed on the yearly date; a tenant administrator must renew them"))
                }
            }
        }
        guard roles.isEmpty || !caller.roles.isDisjoint(with: roles) else {
            let needed = roles.sorted().map(\.rawValue).joined(separator: " or ")
            return (caller, RPCError.permissionDenied("\(context.service)/\(context.method) needs the role \(needed)"))
        }
        return (caller, nil)
    }

    /// The policy's principal for the call's verified certificate, if any.
    func principal(_ context: ServerCallContext) -> Policy.Principal? {
        context.peer.flatMap { current.principal(commonName: $0.commonName, fingerprintSHA256: $0.fingerprintSHA256) }
    }

    /// The session token of `authorization: Bearer <token>`.
    static func bearerToken(_ m: Metadata) -> String? {
        guard let v = m["authorization"], v.hasPrefix("Bearer ") else { return nil }
        let token = String(v.dropFirst(7))
        return token.isEmpty ? nil : token
    }

    /// A status message as the record keeps it: messages may quote what a caller sent, so
    /// they are bounded and printable before they are kept for years.
    static func detail(_ message: String) -> String { printableText(message, limit: 512, keepSpaces: true) }

    static func record(_ context: ServerCallContext, caller: Caller?, subject: String) -> AuditRecord {
        var r = AuditRecord()
        r.principal = caller?.principal ?? ""
        r.certificate = caller?.certificate ?? ""
        r.staff = caller?.staff ?? ""
        r.terminal = caller?.kind == .terminal ? caller?.principal ?? "" : ""
        r.operation = "\(context.service)/\(context.method)"
        r.subject = String(subject.prefix(128))  // a caller's string: bounded before it is kept for years
        return r
    }
}
