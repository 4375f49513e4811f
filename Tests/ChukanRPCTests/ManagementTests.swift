import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanService
import ChukanStore
import Foundation
import Testing

/// System management: per-tenant limits, statistics, and writes stopped by the disk watch.
@Suite(.serialized) struct ManagementTests {
    static let pki = try! TestPKI.make(clients: ["clerk-a", "clerk-b", "admin-a"])
    static let a = "012041", b = "131016"
    static let people: [Resident] = currentResidents(5, seed: 51)

    @Test func limiterCountsCallsInFlightAndPerSecond() throws {
        let limiter = TenantLimiter(.init(inFlight: 2, perSecond: 3))
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        try limiter.acquire(Self.a, now: t0)
        try limiter.acquire(Self.a, now: t0)
        #expect(throws: RPCError.resourceExhausted("tenant 012041 has 2 calls running, its limit; retry shortly")) { try limiter.acquire(Self.a, now: t0) }
        try limiter.acquire(Self.b, now: t0)  // another tenant is not affected
        limiter.release(Self.a)
        try limiter.acquire(Self.a, now: t0)  // the third token of the second
        limiter.release(Self.a)
        #expect(throws: RPCError.self) { try limiter.acquire(Self.a, now: t0) }  // no token left
        try limiter.acquire(Self.a, now: t0.addingTimeInterval(0.5))  // half a second refills 1.5
    }

    /// Every call gives its place back, answered or refused: with one call allowed at a
    /// time, calls one after another never find the place taken.
    @Test func everyCallGivesItsPlaceBack() async throws {
        let policy = Policy(principals: [policyPrincipal("clerk-a", tenant: Self.a, [.clerk]), policyPrincipal("admin-a", tenant: Self.a, [.codeManager])])
        let f = try await ServiceFixture.start(
            pki: Self.pki, policy: policy, tenants: [Self.a], residents: [Self.a: Self.people], limits: .init(inFlight: 1, perSecond: 0))
        let clerk = try await f.client("clerk-a"), codes = try await f.client("admin-a")
        func lookup(_ key: String) async -> StatusCode? {
            await statusCode {
                var r = LookupRequest()
                r.tenant = Self.a
                r.keyKind = .atenaNumber
                r.key = key
                _ = try await clerk.unary(service: "chukan.v1.Inquiry", method: "Lookup", request: r, as: LookupResponse.self)
            }
        }
        for _ in 0..<3 {
            #expect(await lookup(Self.people[0].atenaNumber) == nil)
            #expect(await lookup("NOSUCH1") == .notFound)
            #expect(await lookup("not valid!") == .invalidArgument)
            #expect(await statusCode {
                var r = AcquireCodeRequest()
                r.tenant = Self.a
                r.integratedAtenaNumber = Self.people[1].integratedAtenaNumber
                _ = try await codes.unary(service: "chukan.v1.Codes", method: "AcquireCode", request: r, as: CodeResponse.self)
            } == nil)
        }
        for c in [clerk, codes] { await c.close() }
        await f.stop()
    }

    @Test func overItsLimitATenantGetsResourceExhaustedAndTheOthersGoOn() async throws {
        let frozen = Date()
        let policy = Policy(principals: [
            policyPrincipal("clerk-a", tenant: Self.a, [.clerk]), policyPrincipal("clerk-b", tenant: Self.b, [.clerk]),
            policyPrincipal("admin-a", tenant: Self.a, [.tenantAdmin]),
        ])
        let f = try await ServiceFixture.start(
            pki: Self.pki, policy: policy, tenants: [Self.a, Self.b], residents: [Self.a: Self.people, Self.b: Self.people],
            limits: .init(inFlight: 100, perSecond: 3), now: { frozen })
        let clerkA = try await f.client("clerk-a"), clerkB = try await f.client("clerk-b"), admin = try await f.client("admin-a")
        func lookup(_ c: RPCClient, _ tenant: String) async -> StatusCode? {
            await statusCode {
                var r = LookupRequest()
                r.tenant = tenant
                r.keyKind = .atenaNumber
                r.key = Self.people[0].atenaNumber
                _ = try await c.unary(service: "chukan.v1.Inquiry", method: "Lookup", request: r, as: LookupResponse.self)
            }
        }
        for _ in 0..<3 { #expect(await lookup(clerkA, Self.a) == nil) }
        #expect(await lookup(clerkA, Self.a) == .resourceExhausted)
        #expect(await lookup(clerkB, Self.b) == nil, "another tenant keeps its own budget")
        // The statistics count what happened, per day; the refusal is among them.
        var req = TenantStatsRequest()
        req.tenant = Self.a
        // The clock is frozen: the administrator's own call is over the limit too.
        #expect(await statusCode { _ = try await admin.unary(service: "chukan.v1.Admin", method: "TenantStats", request: req, as: TenantStatsResponse.self) } == .resourceExhausted)
        await f.stop()
        let g = try await ServiceFixture.start(pki: Self.pki, policy: policy, tenants: [Self.a, Self.b], reusing: f.root)
        let admin2 = try await g.client("admin-a"), clerk2 = try await g.client("clerk-a")
        #expect(await lookup(clerk2, Self.a) == nil)
        #expect(await statusCode {
            var r = LookupRequest()
            r.tenant = Self.a
            r.keyKind = .atenaNumber
            r.key = "NOSUCH1"
            _ = try await clerk2.unary(service: "chukan.v1.Inquiry", method: "Lookup", request: r, as: LookupResponse.self)
        } == .notFound)
        let stats = try await admin2.unary(service: "chukan.v1.Admin", method: "TenantStats", request: req, as: TenantStatsResponse.self)
        #expect(stats.status?.records == 5 && stats.callsPerSecondLimit == 0)
        let today = try #require(stats.days.last)
        #expect(today.inquiries == 1 && today.refusals == 1, "\(stats.days)")
        for c in [clerkA, clerkB, admin, admin2, clerk2] { await c.close() }
        await g.stop()
    }

    @Test func theWriteGateStopsRegisterWritesWithUnavailable() async throws {
        let fixture = try DiskGateFixture()
        var options = TenantDatabase.Options()
        options.writeGate = { "the data disk has 1.0% free, below the 2.0% at which writes stop; free space first" }
        let db = try TenantDatabase.open(directory: fixture.dir, keyRing: fixture.keys, options: options)
        var e = RegisterEvent()
        e.kind = .record
        e.reason = .tennyu
        e.resident = Self.people[0]
        do {
            try await db.apply(e)
            Issue.record("a write went through the closed gate")
        } catch let error as RPCError {
            #expect(error.code == .unavailable && error.message.contains("free space"))
        }
        #expect(db.current.count == 0)
        db.close()
        // The watch itself: a threshold above the disk's free space refuses; a low one does not.
        #expect(DiskWatch(directory: fixture.dir, warnPercent: 100, refusePercent: 100).refusal != nil)
        #expect(DiskWatch(directory: fixture.dir, warnPercent: 0, refusePercent: 0).refusal == nil)
    }
}

struct DiskGateFixture {
    let dir = NSTemporaryDirectory() + "chukan-gate-\(UUID().uuidString)"
    let keys: TenantKeyRing
    init() throws {
        try TenantKeyRing.addVersion(tenant: "012041", directory: dir + "-keys")
        keys = try TenantKeyRing.load(tenant: "012041", directory: dir + "-keys")
    }
}

/// The audit retention job does not trust one reading of the wall clock.
@Suite struct AuditRetentionClockTests {
    @Test func theCutoffNeedsTwoRunsAndMovesAtMostTwoDaysARun() {
        let day: Int64 = 86_400_000
        let now: Int64 = 1_796_000_400_000
        // The first run after a start purges nothing.
        #expect(AuditTrail.agreedCutoff(clock: now, previous: nil) == nil)
        // A day later, the runs agree: the clock's line.
        #expect(AuditTrail.agreedCutoff(clock: now + day, previous: now) == now + day)
        // The clock jumps years ahead: the line moves two days, no more.
        #expect(AuditTrail.agreedCutoff(clock: now + 3_650 * day, previous: now) == now + 2 * day)
        // And it keeps to that: held lines, not clock readings, are what the next run
        // compares with (the job remembers what it held to).
        #expect(AuditTrail.agreedCutoff(clock: now + 3_651 * day, previous: now + 2 * day) == now + 4 * day)
        // Behind the last run (the clock corrected back): the clock's line.
        #expect(AuditTrail.agreedCutoff(clock: now - 3_650 * day, previous: now) == now - 3_650 * day)
    }

    /// The job itself remembers the line it held to, so a clock that jumps and stays ahead
    /// moves the line two days a run, not all the way at the second run.
    @Test func theJobRemembersTheLineItHeldTo() async throws {
        let f = try await ServiceFixture.start(pki: TestPKI.shared, policy: Policy(principals: []), tenants: ["012041"])
        let day: TimeInterval = 86_400
        let start = Date(timeIntervalSince1970: 1_796_000_400)
        _ = await f.access.audit.purgeExpired(now: start)
        let first = try #require(f.access.audit.retentionLineMs)
        _ = await f.access.audit.purgeExpired(now: start.addingTimeInterval(3_650 * day))
        #expect(f.access.audit.retentionLineMs == first + 2 * 86_400_000)
        _ = await f.access.audit.purgeExpired(now: start.addingTimeInterval(3_651 * day))
        #expect(f.access.audit.retentionLineMs == first + 4 * 86_400_000)
        // A clock set a year back for one run purges by it, but does not pull the line back.
        _ = await f.access.audit.purgeExpired(now: start.addingTimeInterval(-365 * day))
        #expect(f.access.audit.retentionLineMs == first + 4 * 86_400_000)
        await f.stop()
    }

    @Test func behindTheLastRunTheClockIsTaken() {
        let day: Int64 = 86_400_000
        let now: Int64 = 1_796_000_400_000
        #expect(AuditTrail.agreedCutoff(clock: now - 3_650 * day, previous: now) == now - 3_650 * day)
    }
}
