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
        let served = Locked<[String]>([])
        let checks = PasswordChecks(limit: 2) { tenant in served.withLock { $0.append(tenant) } }
        let hash = PasswordHash.make("a-password-1", iterations: 1000)
        let finished = Locked<[String]>([])
        // Nothing runs until every check is in line.
        checks.queue.suspend()
        let flood = Task {
            await withTaskGroup(of: StatusCode?.self) { group in
                for i in 0..<6 { group.addTask { await Self.check(checks, hash, "A", i, finished) } }
                return await group.reduce(into: [StatusCode?]()) { $0.append($1) }
            }
        }
        let b = Task { () async -> StatusCode? in
            while checks.waitingCount("A") < 2 { try? await Task.sleep(for: .milliseconds(5)) }
            return await Self.check(checks, hash, "B", 0, finished)
        }
        while checks.waitingCount("B") < 1 { try await Task.sleep(for: .milliseconds(5)) }
        checks.queue.resume()
        let a = await flood.value
        #expect(await b.value == nil, "another tenant's check is admitted while A's line is full")
        #expect(a.filter { $0 == .resourceExhausted }.count == 4 && a.filter { $0 == nil }.count == 2, "\(a)")
        // Served in turn: one of A's, then B's, then A's other.
        #expect(served.withLock { $0 } == ["A", "B", "A"])
        #expect(finished.withLock { $0.count } == 3)
    }
}
