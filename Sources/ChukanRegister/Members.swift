/// A household's members (世帯番号 → persons), each with their current entry, sorted by
/// id. A household lookup hands out every member's entry: holding them here saves a
/// probe of the persons table for each member — a cache miss apiece at a million
/// residents. Every write re-indexes the person it changes, so an entry here is never
/// an old one (the property test compares the index with a rebuild after each step).
/// One member is kept inline, like `Postings`; two or more are `.many`, never one.
public enum Members: Sendable, Equatable {
    case one(RegisterState.Indexed)
    case many([RegisterState.Indexed])

    public var entries: [PersonEntry] {
        switch self {
        case .one(let m): [m.entry]
        case .many(let ms): ms.map(\.entry)
        }
    }

    /// Adds `member`, or replaces the one with its id.
    mutating func insert(_ member: RegisterState.Indexed) {
        switch self {
        case .one(let first):
            if first.id == member.id {
                self = .one(member)
            } else {
                self = .many(first.id < member.id ? [first, member] : [member, first])
            }
        case .many(var ms):
            self = .one(member)  // drop the enum's reference so the array changes in place
            var lo = 0, hi = ms.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if ms[mid].id < member.id { lo = mid + 1 } else { hi = mid }
            }
            if lo < ms.count && ms[lo].id == member.id { ms[lo] = member } else { ms.insert(member, at: lo) }
            self = .many(ms)
        }
    }

    /// What is left without the member `id`; nil when nothing is.
    func removing(_ id: PackedID) -> Members? {
        switch self {
        case .one(let only): return only.id == id ? nil : self
        case .many(var ms):
            ms.removeAll { $0.id == id }
            return ms.count > 1 ? .many(ms) : ms.first.map { .one($0) }
        }
    }
}
