import ChukanProto
import ChukanRegister
import ChukanStore
import Foundation
import Synchronization

/// The rules for staff sign-in: how long a sign-in lasts, when an account locks, when a
/// password expires, and the yearly date on which every grant lapses until a tenant
/// administrator renews it. Dates are Asia/Tokyo dates.
public struct StaffRules: Sendable, Equatable {
    public var sessionSeconds: Double = 8 * 3600
    /// Failed sign-ins in a row that lock an account, and for how long.
    public var lockAfterFailures = 5
    public var lockSeconds: Double = 15 * 60
    /// A password older than this blocks work until it is changed; 0: never.
    public var passwordMaxAgeDays = 180
    public var minimumPasswordLength = 12
    /// Grants lapse each year on this month and day (1 April: the start of the fiscal year).
    public var grantsLapseMonth: UInt32 = 4
    public var grantsLapseDay: UInt32 = 1
    /// PBKDF2 iterations for new hashes (each hash records its own count).
    public var passwordIterations = PasswordHash.defaultIterations
    /// Password checks (sign-ins, password changes) admitted at once, the one running
    /// included; one more is RESOURCE_EXHAUSTED (`PasswordChecks`).
    public var maxWaitingPasswordChecks = 32

    public init() {}

    /// The last lapse date on or before `today`.
    public func lastLapse(onOrBefore today: CalendarDate) -> CalendarDate {
        let thisYear = CalendarDate(today.year, grantsLapseMonth, grantsLapseDay)
        return thisYear.key <= today.key ? thisYear : CalendarDate(today.year - 1, grantsLapseMonth, grantsLapseDay)
    }

    public func grantsLapsed(_ a: StaffAccount, today: CalendarDate) -> Bool {
        guard let renewed = a.grantsRenewedOn else { return true }
        return renewed.key < lastLapse(onOrBefore: today).key
    }

    public func passwordExpired(_ a: StaffAccount, now: Date) -> Bool {
        if a.mustChangePassword { return true }
        guard passwordMaxAgeDays > 0 else { return false }
        return now.timeIntervalSince1970 * 1000 - Double(a.passwordChangedUnixMs) > Double(passwordMaxAgeDays) * 86_400_000
    }

    public func passwordProblem(_ password: String) -> String? {
        password.count >= minimumPasswordLength ? nil : "must be at least \(minimumPasswordLength) characters"
    }

    /// The Asia/Tokyo date of `d`. Every call counts its day, so this is arithmetic, not a
    /// Calendar (building one with its time zone cost more than the rest of a 照会): Japan
    /// has kept UTC+9 without daylight saving since September 1951; earlier instants go
    /// through the Calendar.
    public static func tokyoDate(_ d: Date) -> CalendarDate {
        let seconds = d.timeIntervalSince1970
        guard seconds >= fixedOffsetSince, seconds < 253_402_300_800 else { return calendarTokyoDate(d) }  // to 9999-12-31
        let days = Int(((seconds + 9 * 3600) / 86_400).rounded(.down))
        let (y, m, day) = civilDate(daysSince1970: days)
        return CalendarDate(UInt32(y), UInt32(m), UInt32(day))
    }

    /// 1952-01-01T00:00:00+09:00, after the last daylight-saving period (1951).
    static let fixedOffsetSince: Double = -568_112_400

    static func calendarTokyoDate(_ d: Date) -> CalendarDate {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Tokyo")!
        let c = calendar.dateComponents([.year, .month, .day], from: d)
        return CalendarDate(UInt32(c.year!), UInt32(c.month!), UInt32(c.day!))
    }

    /// Year, month and day of a day count from 1970-01-01 in the proleptic Gregorian
    /// calendar (H. Hinnant's `civil_from_days`).
    static func civilDate(daysSince1970 z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

/// Signed-in staff, and sign-in failures: kept in memory. A restart signs everyone out and
/// forgets failures that have not locked an account yet; a lock itself is also written into
/// the account (`StaffService`), so it outlives a restart. The audit trail keeps every attempt.
final class SessionStore: Sendable {
    struct Session: Sendable {
        var tenant: String
        var staff: String
        var terminal: String
        var expires: Date
    }

    private let sessions = Mutex<[String: Session]>([:])
    private let failures = Mutex<[String: (count: Int, last: Date, lockedUntil: Date?)]>([:])

    func open(_ s: Session) -> String {
        let token = secureRandomHex(32)
        sessions.withLock { all in
            all = all.filter { $0.value.expires > Date() }  // drop the expired while here
            all[token] = s
        }
        return token
    }

    func session(_ token: String, now: Date) -> Session? {
        sessions.withLock { all in
            guard let s = all[token] else { return nil }
            if s.expires <= now {
                all[token] = nil
                return nil
            }
            return s
        }
    }

    func close(_ token: String) { sessions.withLock { $0[token] = nil } }

    /// Ends every sign-in of a member (disabled, reset), or every one but `keeping` (a
    /// password change: a sign-in made with the old password ends with it).
    func closeAll(tenant: String, staff: String, keeping: String? = nil) {
        sessions.withLock { all in all = all.filter { $0.key == keeping || !($0.value.tenant == tenant && $0.value.staff == staff) } }
    }

    func isLocked(_ key: String, now: Date) -> Bool {
        failures.withLock { f in
            guard let until = f[key]?.lockedUntil else { return false }
            if until > now { return true }
            f[key] = nil
            return false
        }
    }

    /// Counts a failure; failures further apart than the lock time do not add up. Entries
    /// that can no longer lock anything are dropped, so the table stays small. Returns the
    /// end of the lock when this failure locked the account.
    @discardableResult
    func failed(_ key: String, now: Date, rules: StaffRules) -> Date? {
        failures.withLock { f in
            f = f.filter { $0.value.lockedUntil.map { $0 > now } ?? (now.timeIntervalSince($0.value.last) < rules.lockSeconds) }
            var entry = f[key] ?? (0, now, nil)
            if now.timeIntervalSince(entry.last) >= rules.lockSeconds { entry.count = 0 }
            entry.count += 1
            entry.last = now
            var lockedUntil: Date?
            if entry.count >= rules.lockAfterFailures {
                lockedUntil = now.addingTimeInterval(rules.lockSeconds)
                entry = (0, now, lockedUntil)
            }
            f[key] = entry
            return lockedUntil
        }
    }

    func succeeded(_ key: String) { failures.withLock { $0[key] = nil } }
}

