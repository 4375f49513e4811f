import ChukanCore
import Foundation
import Synchronization

/// Per-tenant limits on a shared server, so that one municipality cannot starve the
/// others: calls running at once, and calls per second (a token bucket). Over either,
/// a call gets RESOURCE_EXHAUSTED before it does any work.
public final class TenantLimiter: Sendable {
    public struct Limits: Sendable, Equatable {
        /// 0: no limit.
        public var inFlight = 1024
        public var perSecond = 0.0
        public init(inFlight: Int = 1024, perSecond: Double = 0) {
            self.inFlight = inFlight
            self.perSecond = perSecond
        }
    }

    private struct State {
        var inFlight = 0
        var tokens: Double
        var refilled: Date
    }

    public let limits: Limits
    private let states = Locked<[String: State]>([:])

    public init(_ limits: Limits) { self.limits = limits }

    /// Takes a slot for `tenant`, or throws RESOURCE_EXHAUSTED; `release` gives it back.
    public func acquire(_ tenant: String, now: Date = Date()) throws {
        try states.withLock { all in
            var s = all[tenant] ?? State(tokens: limits.perSecond, refilled: now)
            if limits.inFlight > 0 && s.inFlight >= limits.inFlight {
                throw RPCError.resourceExhausted("tenant \(tenant) has \(limits.inFlight) calls running, its limit; retry shortly")
            }
            if limits.perSecond > 0 {
                // Refill for the time passed; a burst of one second's worth at most.
                s.tokens = min(limits.perSecond, s.tokens + now.timeIntervalSince(s.refilled) * limits.perSecond)
                s.refilled = now
                guard s.tokens >= 1 else {
                    all[tenant] = s
                    throw RPCError.resourceExhausted("tenant \(tenant) is over its limit of \(Int(limits.perSecond)) calls per second; retry shortly")
                }
                s.tokens -= 1
            }
            s.inFlight += 1
            all[tenant] = s
        }
    }

    public func release(_ tenant: String) {
        states.withLock { all in
            if var s = all[tenant] {
                s.inFlight = max(0, s.inFlight - 1)
                all[tenant] = s
            }
        }
    }
}
