import ChukanCore
@testable import ChukanService
import ChukanStore
import Testing

/// Password checks are rationed per tenant and served in turn: a terminal that signs in
/// in a loop fills its own tenant's line, and another municipality's sign-in is admitted
/// and served within one turn.
@Suite struct PasswordChecksTests {
    /// The status of one check of `tenant` (nil: it ran), noting when it finished.
    static func check(_ checks: PasswordChecks, _ hash: String, _ tenant: String, _ n: Int, _ finished: Locked<[String]>) async -> StatusCode? {
        do {
            _ = try await checks.verify("not-it", against: hash, tenant: tenant)
            finished.withLock { $0.append("\(tenant)\(n)") }
            return nil
        } catch {
            return RPCError.from(error).code
        }
    }

    @Test func eachTenantHasItsOwnLine() async throws {
        let checks = PasswordChecks(limit: 2)
        let hash = PasswordHash.make("a-password-1", iterations: 1_000_000)  // some 0.5 s a check
        let finished = Locked<[String]>([])
        let flood = Task {
            await withTaskGroup(of: StatusCode?.self) { group in
                for i in 0..<6 { group.addTask { await Self.check(checks, hash, "A", i, finished) } }
                return await group.reduce(into: [StatusCode?]()) { $0.append($1) }
            }
        }
        // Once A's line is full (one check running, two waiting, the rest refused), B asks.
        for _ in 0..<2000 where checks.waitingCount("A") < 2 { try await Task.sleep(for: .milliseconds(5)) }
        try #require(checks.waitingCount("A") == 2 && finished.withLock { $0.isEmpty })
        let b = await Self.check(checks, hash, "B", 0, finished)
        let a = await flood.value
        #expect(b == nil, "another tenant's check is admitted")
        #expect(a.contains(.resourceExhausted) && a.contains(nil), "\(a)")
        let order = finished.withLock { $0 }
        #expect(order.last != "B0", "B waited for no more than one turn: \(order)")
    }
}
