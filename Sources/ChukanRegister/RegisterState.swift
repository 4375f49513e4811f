import ChukanCore
import ChukanProto
import HashTreeCollections

/// One entry of a person's 異動履歴.
public struct HistoryEntry: Sendable, Equatable {
    public var sequence: UInt64
    public var kind: RegisterEventKind
    public var reason: EventReason
    public var eventDate: CalendarDate?
    public var notifiedOn: CalendarDate?
    /// The record before the change (encoded `Resident`); nil when the person was new.
    public var before: [UInt8]?

    public init(sequence: UInt64, kind: RegisterEventKind, reason: EventReason, eventDate: CalendarDate?, notifiedOn: CalendarDate?, before: [UInt8]?) {
        self.sequence = sequence
        self.kind = kind
        self.reason = reason
        self.eventDate = eventDate
        self.notifiedOn = notifiedOn
        self.before = before
    }
}

/// A person in the register: the current record (or 除票), encoded, and its history.
/// Kept encoded because that is the compact form; `resident` decodes it.
public struct PersonEntry: Sendable, Equatable {
    public var record: [UInt8]
    public var history: [HistoryEntry]
    public var isRemoved: Bool
    public var removedOn: CalendarDate?

    public init(record: [UInt8], history: [HistoryEntry], isRemoved: Bool, removedOn: CalendarDate?) {
        self.record = record
        self.history = history
        self.isRemoved = isRemoved
        self.removedOn = removedOn
    }

    public func resident() throws -> Resident { try Resident(protobuf: record) }
}

/// One tenant's register at one sequence number: an immutable value. Readers hold a
/// version for as long as they like; a write makes a new version that shares all but
/// the changed paths of the hash tries (swift-collections' `TreeDictionary`), so holding
/// a version costs nothing and a write never copies the tenant.
public struct RegisterState: Sendable, Equatable {
    public let tenant: String
    /// The WAL sequence this version includes.
    public private(set) var sequence: UInt64 = 0

    /// By 団体内統合宛名番号: one per person, ever.
    public private(set) var persons: TreeDictionary<String, PersonEntry> = [:]
    public private(set) var indexes = Indexes()

    /// Every index, derived from `persons` and updated by the same write.
    public struct Indexes: Sendable, Equatable {
        public var byAtena: TreeDictionary<String, String> = [:]
        public var byJuminhyo: TreeDictionary<String, String> = [:]
        /// Current and former 個人番号.
        public var byKojinBango: TreeDictionary<String, String> = [:]
        public var byHousehold: TreeDictionary<String, [String]> = [:]
        /// 符号 → person: filled by the code-management service (Services I).
        public var byFugo: TreeDictionary<String, String> = [:]
        /// 4情報 search: normalised kana name with birth date, and with address.
        public var byKanaAndBirth: TreeDictionary<String, [String]> = [:]
        public var byKanaAndAddress: TreeDictionary<String, [String]> = [:]
    }

    public init(tenant: String) { self.tenant = tenant }

    public var count: Int { persons.count }

    // MARK: reads

    public func person(_ id: String) -> PersonEntry? { persons[id] }
    public func byAtena(_ n: String) -> PersonEntry? { indexes.byAtena[n].flatMap { persons[$0] } }
    public func byJuminhyo(_ c: String) -> PersonEntry? { indexes.byJuminhyo[c].flatMap { persons[$0] } }
    public func byKojinBango(_ k: String) -> PersonEntry? { indexes.byKojinBango[k].flatMap { persons[$0] } }
    public func byFugo(_ f: String) -> PersonEntry? { indexes.byFugo[f].flatMap { persons[$0] } }
    public func household(_ n: String) -> [PersonEntry] { (indexes.byHousehold[n] ?? []).compactMap { persons[$0] } }

    /// 4情報 search with name and birth date (DOMAIN.md §4: at least two facts besides sex).
    public func search(kana: String, birthDate: CalendarDate) -> [String] {
        indexes.byKanaAndBirth[Self.kanaBirthKey(kana: kana, birth: birthDate)] ?? []
    }

    /// 4情報 search with name and address.
    public func search(kana: String, address: String) -> [String] {
        indexes.byKanaAndAddress[Self.kanaAddressKey(kana: kana, address: address)] ?? []
    }

    static func kanaBirthKey(kana: String, birth: CalendarDate) -> String { KanaKey.normalize(kana) + "|" + birth.key }

    static func kanaAddressKey(kana: String, address: String) -> String {
        KanaKey.normalize(kana) + "|" + foldAddress(address)
    }

    /// Addresses compare without spaces and with full-width ASCII (０-９, Ａ-Ｚ, －) folded
    /// to half width. A plain scalar loop: full NFKC costs more than the whole lookup.
    static func foldAddress(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            let v = u.value
            if v == 0x20 || v == 0x3000 || v == 0x09 { continue }
            if (0xFF01...0xFF5E).contains(v) {
                out.append(Unicode.Scalar(v - 0xFEE0)!)
            } else if v == 0x2212 {  // minus sign, as in 1−2−3
                out.append("-")
            } else {
                out.append(u)
            }
        }
        return String(out)
    }

    // MARK: writes

    /// The next version: `event` validated and applied as `sequence`. Throws an
    /// `RPCError` (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION)
    /// and leaves `self` unchanged when the event is refused.
    public func applying(_ event: RegisterEvent, sequence: UInt64) throws -> RegisterState {
        var next = self
        try next.apply(event, sequence: sequence)
        return next
    }

    mutating func apply(_ e: RegisterEvent, sequence: UInt64) throws {
        func history(before: [UInt8]?) -> HistoryEntry {
            HistoryEntry(sequence: sequence, kind: e.kind, reason: e.reason, eventDate: e.eventDate, notifiedOn: e.notifiedOn, before: before)
        }
        switch e.kind {
        case .record:
            guard var r = e.resident else { throw RPCError.invalidArgument("event.resident: is required") }
            guard r.removalReason == .reasonUnspecified, r.removedOn == nil else {
                throw RPCError.invalidArgument("event.resident: a new record cannot be a 除票")
            }
            try ResidentValidation.validate(r)
            if let id = indexes.byKojinBango[r.kojinBango], let existing = persons[id] {
                guard existing.isRemoved else {
                    throw RPCError(.failedPrecondition, "the person is already resident; 記載 refused")
                }
                // A former resident moving back: the same person, with their old 宛名番号.
                let old = try existing.resident()
                r.integratedAtenaNumber = id
                r.atenaNumber = old.atenaNumber
                r.formerKojinBango = old.formerKojinBango
                try ensureUnique(r, for: id)
                try replace(id, with: r, entry: history(before: existing.record))
            } else {
                guard persons[r.integratedAtenaNumber] == nil else {
                    throw RPCError(.alreadyExists, "resident.integrated_atena_number: already assigned to another person")
                }
                try ensureUnique(r, for: r.integratedAtenaNumber)
                try replace(r.integratedAtenaNumber, with: r, entry: history(before: nil))
            }
        case .correct, .moveWithin:
            guard let r = e.resident else { throw RPCError.invalidArgument("event.resident: is required") }
            try ResidentValidation.validate(r)
            let (existing, old) = try current(r.integratedAtenaNumber, mustBeResident: e.kind == .moveWithin)
            guard r.kojinBango == old.kojinBango else {
                throw RPCError(.failedPrecondition, "resident.kojin_bango: changes only through CHANGE_KOJIN_BANGO")
            }
            if e.kind == .moveWithin {
                // 転居 may change the address and nothing else (DOMAIN.md §6).
                var expected = old
                expected.address = r.address
                expected.previousAddress = r.previousAddress
                expected.addressSetOn = r.addressSetOn
                expected.processing = r.processing
                guard expected == r else {
                    throw RPCError(.failedPrecondition, "転居 may change only the address, previous address, address_set_on and processing fields")
                }
            }
            try ensureUnique(r, for: r.integratedAtenaNumber)
            try replace(r.integratedAtenaNumber, with: r, entry: history(before: existing.record))
        case .planMoveOut, .confirmMoveOut:
            let (existing, old) = try current(e.person, mustBeResident: true)
            guard let address = e.address, !(address.address?.text.isEmpty ?? true) else {
                throw RPCError.invalidArgument("event.address: is required")
            }
            try ResidentValidation.validate(address, field: "event.address")
            let date = try requiredDate(e.eventDate, "event.event_date")
            var r = old
            if e.kind == .planMoveOut {
                r.plannedMoveOut = address
                r.plannedMoveOutDate = date
            } else {
                r.confirmedMoveOut = address
                r.confirmedMoveOutDate = date
                r.removalReason = .tenshutsu
                r.removedOn = date
            }
            try replace(e.person, with: r, entry: history(before: existing.record))
        case .remove:
            let (existing, old) = try current(e.person, mustBeResident: true)
            guard [.tenshutsu, .shibou, .shokkenShojo].contains(e.reason) else {
                throw RPCError.invalidArgument("event.reason: a 消除 needs 転出, 死亡 or 職権消除")
            }
            var r = old
            r.removalReason = e.reason
            r.removedOn = try requiredDate(e.eventDate, "event.event_date")
            try replace(e.person, with: r, entry: history(before: existing.record))
        case .changeKojinBango:
            let (existing, old) = try current(e.person, mustBeResident: false)
            if let p = Identifiers.myNumberProblem(e.kojinBango) { throw RPCError.invalidArgument("event.kojin_bango: \(p)") }
            guard indexes.byKojinBango[e.kojinBango] == nil else {
                throw RPCError(.alreadyExists, "event.kojin_bango: already held by a person of this register")
            }
            var r = old
            r.formerKojinBango.append(old.kojinBango)
            r.kojinBango = e.kojinBango
            try replace(e.person, with: r, entry: history(before: existing.record))
        case .changeHousehold:
            let (existing, old) = try current(e.person, mustBeResident: true)
            if let p = Identifiers.internalNumberProblem(e.householdNumber) { throw RPCError.invalidArgument("event.household_number: \(p)") }
            guard !e.relationship.isEmpty else { throw RPCError.invalidArgument("event.relationship: is required") }
            var r = old
            r.householdNumber = e.householdNumber
            r.relationship = e.relationship
            try replace(e.person, with: r, entry: history(before: existing.record))
        case .purge:
            guard !e.persons.isEmpty else { throw RPCError.invalidArgument("event.persons: is required") }
            for id in e.persons {
                guard let entry = persons[id] else { throw RPCError(.notFound, "event.persons: no such person") }
                guard entry.isRemoved else { throw RPCError(.failedPrecondition, "event.persons: only 除票 can be purged") }
            }
            for id in e.persons {
                unindex(id, try IndexKeys(encoded: persons[id]!.record))
                persons[id] = nil
            }
        case .kindUnspecified:
            throw RPCError.invalidArgument("event.kind: is required")
        }
        self.sequence = sequence
    }

    private func current(_ id: String, mustBeResident: Bool) throws -> (PersonEntry, Resident) {
        guard !id.isEmpty else { throw RPCError.invalidArgument("event.person: is required") }
        guard let entry = persons[id] else { throw RPCError(.notFound, "no person with that 団体内統合宛名番号") }
        if mustBeResident && entry.isRemoved { throw RPCError(.failedPrecondition, "the person's record is a 除票") }
        return (entry, try entry.resident())
    }

    private func requiredDate(_ d: CalendarDate?, _ field: String) throws -> CalendarDate {
        guard let d, d.precision == .full, ResidentValidation.dateProblem(d) == nil else {
            throw RPCError.invalidArgument("\(field): a full, real date is required")
        }
        return d
    }

    /// 宛名番号, 住民票コード and 個人番号 each name one person.
    private func ensureUnique(_ r: Resident, for id: String) throws {
        if let other = indexes.byAtena[r.atenaNumber], other != id {
            throw RPCError(.alreadyExists, "resident.atena_number: already assigned to another person")
        }
        if let other = indexes.byJuminhyo[r.juminhyoCode], other != id {
            throw RPCError(.alreadyExists, "resident.juminhyo_code: already assigned to another person")
        }
        if let other = indexes.byKojinBango[r.kojinBango], other != id {
            throw RPCError(.alreadyExists, "resident.kojin_bango: already held by another person")
        }
    }

    private mutating func replace(_ id: String, with r: Resident, entry: HistoryEntry) throws {
        var history: [HistoryEntry] = []
        if let existing = persons[id] {
            unindex(id, try IndexKeys(encoded: existing.record))
            history = existing.history
        }
        history.append(entry)
        let removed = r.removalReason != .reasonUnspecified
        persons[id] = PersonEntry(record: r.encodedBytes, history: history, isRemoved: removed, removedOn: r.removedOn)
        index(id, r)
    }

    private mutating func index(_ id: String, _ r: Resident) { index(id, IndexKeys(r)) }
    private mutating func unindex(_ id: String, _ r: Resident) { unindex(id, IndexKeys(r)) }

    private mutating func index(_ id: String, _ r: IndexKeys) {
        indexes.byAtena[r.atena] = id
        indexes.byJuminhyo[r.juminhyo] = id
        for k in [r.kojinBango] + r.formerKojinBango { indexes.byKojinBango[k] = id }
        // Multi-valued entries stay sorted, so a version's value does not depend on the
        // order its records were written or loaded in.
        indexes.byHousehold[r.household, default: []].insertSorted(id)
        for key in searchKeys(r) {
            if key.birth { indexes.byKanaAndBirth[key.key, default: []].insertSorted(id) } else { indexes.byKanaAndAddress[key.key, default: []].insertSorted(id) }
        }
    }

    private mutating func unindex(_ id: String, _ r: IndexKeys) {
        indexes.byAtena[r.atena] = nil
        indexes.byJuminhyo[r.juminhyo] = nil
        for k in [r.kojinBango] + r.formerKojinBango { indexes.byKojinBango[k] = nil }
        Self.remove(id, from: &indexes.byHousehold, key: r.household)
        for key in searchKeys(r) {
            if key.birth { Self.remove(id, from: &indexes.byKanaAndBirth, key: key.key) } else { Self.remove(id, from: &indexes.byKanaAndAddress, key: key.key) }
        }
    }

    private static func remove(_ id: String, from index: inout TreeDictionary<String, [String]>, key: String) {
        guard var ids = index[key] else { return }
        ids.removeAll { $0 == id }
        index[key] = ids.isEmpty ? nil : ids
    }

    private func searchKeys(_ r: IndexKeys) -> [(birth: Bool, key: String)] {
        guard !r.kana.isEmpty else { return [] }
        var keys: [(Bool, String)] = []
        if let b = r.birth { keys.append((true, Self.kanaBirthKey(kana: r.kana, birth: b))) }
        if !r.address.isEmpty { keys.append((false, Self.kanaAddressKey(kana: r.kana, address: r.address))) }
        return keys
    }

    /// The indexes rebuilt from the records alone; equal to `indexes` unless a bug lurks.
    /// Used by tests and by `chukanctl snapshot verify`.
    public func rebuiltIndexes() throws -> Indexes {
        var scratch = RegisterState(tenant: tenant)
        for (id, entry) in persons {
            scratch.index(id, try IndexKeys(encoded: entry.record))
        }
        scratch.indexes.byFugo = indexes.byFugo
        return scratch.indexes
    }

    /// A record read back from storage with its index keys already decoded, so that
    /// decoding can run on several threads and only index insertion is sequential.
    public struct LoadedEntry: @unchecked Sendable {
        public let id: String
        let entry: PersonEntry
        let keys: IndexKeys

        public init(id: String, entry: PersonEntry) throws {
            self.id = id
            var e = entry
            keys = try IndexKeys(encoded: entry.record)
            e.isRemoved = keys.removed
            e.removedOn = keys.removedOn
            self.entry = e
        }
    }

    /// Loads prepared records (from a snapshot) and rebuilds every index.
    public static func rebuilding(tenant: String, sequence: UInt64, loaded: [LoadedEntry], fugo: TreeDictionary<String, String> = [:]) -> RegisterState {
        var s = RegisterState(tenant: tenant)
        s.sequence = sequence
        for l in loaded {
            s.persons[l.id] = l.entry
            s.index(l.id, l.keys)
        }
        s.indexes.byFugo = fugo
        return s
    }

    /// Loads records (from a snapshot) and rebuilds every index; `isRemoved` and
    /// `removedOn` are taken from the records themselves.
    public static func rebuilding(tenant: String, sequence: UInt64, persons: [(String, PersonEntry)], fugo: TreeDictionary<String, String> = [:]) throws -> RegisterState {
        var s = RegisterState(tenant: tenant)
        s.sequence = sequence
        for (id, var entry) in persons {
            let keys = try IndexKeys(encoded: entry.record)
            entry.isRemoved = keys.removed
            entry.removedOn = keys.removedOn
            s.persons[id] = entry
            s.index(id, keys)
        }
        s.indexes.byFugo = fugo
        return s
    }
}

extension Array where Element == String {
    mutating func insertSorted(_ s: String) {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if self[mid] < s { lo = mid + 1 } else { hi = mid }
        }
        insert(s, at: lo)
    }
}
