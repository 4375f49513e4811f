import ChukanCore
import ChukanStore
import Dispatch
import Synchronization

/// Password checks for sign-ins and password changes. Each is a PBKDF2 of some 0.1 s of CPU,
/// so they run one at a time on a thread of their own — never on Swift's cooperative pool,
/// whose few threads (two on a two-core machine) serve every other call — and at most
/// `StaffRules.maxWaitingPasswordChecks` wait their turn: one more is RESOURCE_EXHAUSTED. A
/// terminal that signs in in a loop so costs at most one core, and the other calls go on.
final class PasswordChecks: Sendable {
    private let queue = DispatchQueue(label: "chukan.password-checks")
    private let admitted = Mutex(0)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Whether `password` matches `hash`; RESOURCE_EXHAUSTED when too many checks wait.
    func verify(_ password: String, against hash: String) async throws -> Bool {
        let admit = admitted.withLock { n in
            guard n < limit else { return false }
            n += 1
            return true
        }
        guard admit else { throw RPCError(.resourceExhausted, "too many password checks waiting; retry shortly") }
        return await withCheckedContinuation { done in
            queue.async { [self] in
                let matches = PasswordHash.verify(password, against: hash)
                admitted.withLock { $0 -= 1 }
                done.resume(returning: matches)
            }
        }
    }
}
