import ChukanCore
import ChukanStore
import Dispatch
import Synchronization

/// Password checks for sign-ins and password changes. Each is a PBKDF2 of some 0.1 s of CPU,
/// so they run one at a time on a thread of their own — never on Swift's cooperative pool,
/// whose few threads (two on a two-core machine) serve every other call.
///
/// The server is shared by municipalities, so each tenant has its own line: at most
/// `StaffRules.maxWaitingPasswordChecks` of a tenant's checks wait (one more is
/// RESOURCE_EXHAUSTED), and the lines are served in turn, one check each. A terminal that
/// signs in in a loop so costs at most one core, fills only its own tenant's line, and
/// delays another tenant's sign-in by at most one check per tenant waiting.
final class PasswordChecks: Sendable {
    private struct Check {
        let tenant: String
        let password: String
        let hash: String
        let done: CheckedContinuation<Bool, Error>
    }

    private struct Lines {
        /// Each tenant's waiting checks, oldest first.
        var waiting: [String: [Check]] = [:]
        /// Tenants with checks waiting, in the order they are served.
        var turn: [String] = []
        var serving = false
    }

    let queue = DispatchQueue(label: "chukan.password-checks")  // tests suspend it to line checks up
    private let lines = Mutex(Lines())
    /// Checks one tenant may have waiting.
    let limit: Int
    /// Told the tenant of each check as it starts (tests see the order of service).
    private let onServe: (@Sendable (String) -> Void)?

    init(limit: Int, onServe: (@Sendable (String) -> Void)? = nil) {
        self.limit = limit
        self.onServe = onServe
    }

    /// Whether `password` matches `hash`; RESOURCE_EXHAUSTED when too many of `tenant`'s wait.
    func verify(_ password: String, against hash: String, tenant: String) async throws -> Bool {
        try await withCheckedThrowingContinuation { done in
            let (admitted, start) = lines.withLock { l -> (Bool, Bool) in
                let line = l.waiting[tenant, default: []]
                guard line.count < limit else { return (false, false) }
                if line.isEmpty { l.turn.append(tenant) }
                l.waiting[tenant, default: []].append(Check(tenant: tenant, password: password, hash: hash, done: done))
                defer { l.serving = true }
                return (true, !l.serving)
            }
            guard admitted else { return done.resume(throwing: RPCError(.resourceExhausted, "too many password checks waiting; retry shortly")) }
            if start { queue.async { self.serve() } }
        }
    }

    /// Checks of `tenant` waiting their turn (not the one running).
    func waitingCount(_ tenant: String) -> Int { lines.withLock { $0.waiting[tenant]?.count ?? 0 } }

    /// Runs the waiting checks, one per tenant in turn, until none is left.
    private func serve() {
        while let check = next() {
            onServe?(check.tenant)
            check.done.resume(returning: PasswordHash.verify(check.password, against: check.hash))
        }
    }

    private func next() -> Check? {
        lines.withLock { l in
            guard !l.turn.isEmpty else {
                l.serving = false
                return nil
            }
            let tenant = l.turn.removeFirst()
            let check = l.waiting[tenant]!.removeFirst()
            if l.waiting[tenant]!.isEmpty { l.waiting[tenant] = nil } else { l.turn.append(tenant) }
            return check
        }
    }
}
