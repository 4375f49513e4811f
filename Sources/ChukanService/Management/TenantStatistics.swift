import ChukanCore
import ChukanProto
import Foundation
import Synchronization

/// What each tenant did, per Asia/Tokyo day, since the server started: inquiries, 符号
/// issued, register writes and refusals. (The audit trail is the durable account; these
/// counters are for the operator's quick look.)
public final class TenantStatistics: Sendable {
    public struct Day: Sendable, Equatable {
        public var inquiries = 0
        public var codesIssued = 0
        public var writes = 0
        public var refusals = 0
        public var provisions = 0
    }

    private let days = Locked<[String: [UInt32: Day]]>([:])  // tenant → YYYYMMDD → counts

    public init() {}

    /// Counts one recorded call by its operation and outcome.
    public func count(tenant: String, operation: String, ok: Bool, on date: CalendarDate) {
        let day = date.year * 10000 + date.month * 100 + date.day  // formatted only when read
        days.withLock { all in
            var d = all[tenant]?[day] ?? Day()
            if !ok {
                d.refusals += 1
            } else if operation.hasPrefix("chukan.v1.Inquiry/") {
                d.inquiries += 1
            } else if operation == "chukan.v1.Codes/AcquireCode" {
                d.codesIssued += 1
            } else if operation == "chukan.v1.Provision/Provide" || operation == "chukan.v1.Provision/FetchHeld" {
                d.provisions += 1
            } else if operation.hasPrefix("chukan.v1.Register/") && !operation.hasSuffix("Export") {
                d.writes += 1
            }
            all[tenant, default: [:]][day] = d
        }
    }

    /// The tenant's days, oldest first.
    public func days(_ tenant: String) -> [(String, Day)] {
        days.withLock { ($0[tenant] ?? [:]).sorted { $0.key < $1.key } }.map { day, counts in
            (String(format: "%04d-%02d-%02d", day / 10000, day / 100 % 100, day % 100), counts)
        }
    }
}
