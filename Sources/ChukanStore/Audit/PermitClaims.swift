import ChukanCore
import Foundation
import Synchronization

/// The 提供許可証 ids a stream has recorded as used, until each permit expires: a permit
/// answers once. Rebuilt when the stream is opened from the records that carry a permit
/// id, so a replay is refused across restarts too; a claim is made in memory before the
/// record is written and the answer waits for the record, so no answer leaves on a
/// permit the trail does not hold.
public final class PermitClaims: Sendable {
    private struct State {
        var expiry: [String: Int64] = [:]
        var claimsSinceSweep = 0
        var sizeAfterSweep = 0
    }

    private let state = Locked(State())

    /// How long past its expiry a claim is kept: a clock stepped back (an NTP correction)
    /// must not make a forgotten permit valid again. Beyond the permits' own clock skew.
    public static let keptPastExpiryMs: Int64 = 10 * 60_000

    public init() {}

    /// Claims `id` for a permit valid until `expiresUnixMs`; false when it is already claimed.
    public func claim(_ id: String, expiresUnixMs: Int64, nowUnixMs: Int64) -> Bool {
        state.withLock { s in
            s.claimsSinceSweep += 1
            // Expired permits are refused by their expiry before they get here: forget them.
            // Sweeping once as many claims were made as were live after the last sweep keeps
            // the cost per claim constant and the table under twice the live claims.
            if s.claimsSinceSweep >= max(4096, s.sizeAfterSweep) {
                s.expiry = s.expiry.filter { $0.value >= nowUnixMs - Self.keptPastExpiryMs }
                s.claimsSinceSweep = 0
                s.sizeAfterSweep = s.expiry.count
            }
            guard s.expiry[id] == nil else { return false }
            s.expiry[id] = expiresUnixMs
            return true
        }
    }

    /// Remembers a claim read back from the stream (only while the permit is valid).
    public func restore(_ id: String, expiresUnixMs: Int64, nowUnixMs: Int64) {
        guard expiresUnixMs >= nowUnixMs - Self.keptPastExpiryMs else { return }
        state.withLock { $0.expiry[id] = expiresUnixMs }
    }

    /// Whether `id` is claimed, without claiming it.
    public func isClaimed(_ id: String) -> Bool { state.withLock { $0.expiry[id] != nil } }

    public var count: Int { state.withLock { $0.expiry.count } }
}
