import ChukanProto

/// Retention of 除票 (DOMAIN.md §6): a removed record and its history are kept 150
/// years after its 消除年月日, then deleted when a tenant administrator approves.
public enum Retention {
    public static let removedRecordYears: UInt32 = 150

    /// The first day a 除票 removed on `removedOn` may be purged.
    public static func purgeableFrom(removedOn d: CalendarDate) -> CalendarDate {
        var due = CalendarDate(d.year + removedRecordYears, Swift.max(d.month, 1), Swift.max(d.day, 1))
        // 29 February of a year that has none: the next day.
        if ResidentValidation.dateProblem(due) != nil { due = CalendarDate(due.year, 3, 1) }
        return due
    }
}

extension RegisterState {
    /// 除票 whose retention has ended on `today` (a date in Asia/Tokyo), oldest first.
    public func purgeDue(today: CalendarDate) -> [String] {
        var due: [(String, String)] = []
        for (id, entry) in persons where entry.isRemoved {
            guard let removed = entry.removedOn else { continue }
            let from = Retention.purgeableFrom(removedOn: removed)
            if from.key <= today.key { due.append((removed.key, id.string)) }
        }
        return due.sorted { $0 < $1 }.map(\.1)
    }
}
