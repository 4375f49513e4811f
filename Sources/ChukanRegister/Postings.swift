/// What a multi-valued index holds under one key, sorted by person: the ids for a 4情報
/// search key (`Postings<PackedID>`), the members with their entries for a 世帯番号
/// (`Members`). Nearly every search key names one person, so one element is kept inline —
/// no array to allocate, retain or free, which a million-resident load would otherwise
/// do two million times. Two or more are `.many`, never one, and always sorted, so equal
/// postings are equal values whatever order their records were written or loaded in.
public enum Postings<Element: Posting>: Sendable, Equatable {
    case one(Element)
    case many([Element])

    public var elements: [Element] {
        switch self {
        case .one(let e): [e]
        case .many(let es): es
        }
    }

    /// Adds `element`, or replaces the one of the same person.
    mutating func insert(_ element: Element) {
        switch self {
        case .one(let first):
            if first.person == element.person {
                self = .one(element)
            } else {
                self = .many(first.person < element.person ? [first, element] : [element, first])
            }
        case .many(var es):
            self = .one(element)  // drop the enum's reference so the array changes in place
            var lo = 0, hi = es.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if es[mid].person < element.person { lo = mid + 1 } else { hi = mid }
            }
            if lo < es.count && es[lo].person == element.person { es[lo] = element } else { es.insert(element, at: lo) }
            self = .many(es)
        }
    }

    /// What is left without `person`; nil when nothing is.
    func removing(_ person: PackedID) -> Postings? {
        switch self {
        case .one(let only): return only.person == person ? nil : self
        case .many(var es):
            es.removeAll { $0.person == person }
            return es.count > 1 ? .many(es) : es.first.map { .one($0) }
        }
    }
}

/// An element of `Postings`: it names one person (their 団体内統合宛名番号).
public protocol Posting: Sendable, Equatable {
    var person: PackedID { get }
}

extension PackedID: Posting {
    public var person: PackedID { self }
}

extension RegisterState.Indexed: Posting {
    var person: PackedID { id }
}

/// A household's members (世帯番号 → persons), each with their current entry. A household
/// lookup hands out every member's entry: holding them here saves a probe of the persons
/// table for each member — a cache miss apiece at a million residents. Every write
/// re-indexes the person it changes, so an entry here is never an old one (the property
/// test compares the index with a rebuild after each step).
typealias Members = Postings<RegisterState.Indexed>

/// A household lookup's answer: its members (id and entry), sorted by id, read from the
/// index's value in place — building an array of entries per lookup cost a fifth of it.
/// It holds the version's persons, which keep the members' entries alive (the index
/// holds them unretained: `RegisterState.Indexed`).
public struct Household: RandomAccessCollection, Sendable {
    /// A member: their 団体内統合宛名番号 and current entry.
    public struct Member: Sendable {
        public let id: PackedID
        public let entry: PersonEntry
    }

    let members: Members?
    private let persons: LayeredMap<PackedID, PersonEntry>

    init(members: Members?, holding persons: LayeredMap<PackedID, PersonEntry>) {
        self.members = members
        self.persons = persons
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int {
        switch members {
        case nil: 0
        case .one?: 1
        case .many(let ms)?: ms.count
        }
    }

    public subscript(i: Int) -> Member {
        let m: RegisterState.Indexed
        switch members {
        case .one(let only)? where i == 0: m = only
        case .many(let ms)?: m = ms[i]
        default: preconditionFailure("household member \(i) out of range")
        }
        return Member(id: m.id, entry: m.entry)
    }
}
