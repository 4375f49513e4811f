import ChukanCore
import ChukanProto

/// Retention of 除票 (DOMAIN.md §6): a removed record and its history are kept 150
/// years "from the day it was removed" (住基法施行令第34条), then deleted when a tenant
/// administrator approves.
public enum Retention {
    public static let removedRecordYears: UInt32 = 150

    /// The first day a 除票 removed on `removedOn` may be purged; nil when that cannot be
    /// known (an unknown date), so that the record is kept.
    ///
    /// Counted as the Civil Code counts years: the period starts the day after the
    /// removal (民法140条) and ends the day before that day's anniversary, 150 years on
    /// (143条) — or on the last day of February when that anniversary is a 29 February the
    /// year lacks. So purging may begin on the anniversary of the day after the removal
    /// (1 March in that case). A partial date counts from the latest day it may stand
    /// for (the month's last day, or 31 December), so that no record goes early.
    public static func purgeableFrom(removedOn d: CalendarDate) -> CalendarDate? {
        var (year, month, day): (UInt32, UInt32, UInt32)
        switch d.precision {
        case .unknown: return nil
        case .yearOnly: (year, month, day) = (d.year, 12, 31)
        case .yearMonth: (year, month, day) = (d.year, d.month, 0)
        case .full: (year, month, day) = (d.year, d.month, d.day)
        }
        guard year > 0, (1...12).contains(month) else { return nil }
        let last = ResidentValidation.daysIn(month: month, year: year)
        if day == 0 || day > last { day = last }
        // The day after the removal: the first day of the period.
        if day < last {
            day += 1
        } else if month < 12 {
            (month, day) = (month + 1, 1)
        } else {
            (year, month, day) = (year + 1, 1, 1)
        }
        let dueYear = year + removedRecordYears
        if day > ResidentValidation.daysIn(month: month, year: dueYear) { return CalendarDate(dueYear, 3, 1) }
        return CalendarDate(dueYear, month, day)
    }

    /// Whether a 除票 removed on `removedOn` (nil: not known) may be purged on `today`.
    static func isDue(removedOn: CalendarDate?, today: CalendarDate) -> Bool {
        guard let removedOn, let from = purgeableFrom(removedOn: removedOn) else { return false }
        return from.key <= today.key
    }
}

extension RegisterState {
    /// 除票 whose retention has ended on `today` (a date in Asia/Tokyo), oldest first.
    /// A 除票 without a known 消除年月日 is never due.
    public func purgeDue(today: CalendarDate) -> [String] {
        var due: [(String, String)] = []
        for (id, entry) in persons where entry.isRemoved && Retention.isDue(removedOn: entry.removedOn, today: today) {
            due.append((entry.removedOn!.key, id.string))
        }
        return due.sorted { $0 < $1 }.map(\.1)
    }
}

extension RegisterState {
    /// Why a new PURGE event may not be applied on its date, or nil (also for any other
    /// event): every 除票 it names must be past its retention on `event_date`. Checked as
    /// the purge is admitted, not by `apply`: a purge the log already holds replays as it
    /// was accepted, whatever rule accepted it.
    public func purgeRefusal(_ e: RegisterEvent) -> RPCError? {
        guard e.kind == .purge else { return nil }
        guard let today = e.eventDate, today.precision == .full, ResidentValidation.dateProblem(today) == nil else {
            return RPCError.invalidArgument("event.event_date: a full, real date is required")
        }
        for name in e.persons {
            guard let entry = PackedID(name).flatMap({ persons[$0] }), entry.isRemoved else { continue }  // apply says why
            guard Retention.isDue(removedOn: entry.removedOn, today: today) else {
                return RPCError(.failedPrecondition, "event.persons: a 除票 is still within its 150-year retention")
            }
        }
        return nil
    }
}
