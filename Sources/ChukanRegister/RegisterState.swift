import CChukanPrefetch
import ChukanCore
import Dispatch
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
///
/// One reference to an immutable box: a lookup that hands out the entry retains one
/// object, not two arrays — each retain of a million-resident register's buffer is a
/// cache miss, and those misses were most of a point lookup's time.
public struct PersonEntry: Sendable, Equatable {
    fileprivate final class Box: Sendable {
        let record: [UInt8]
        let history: [HistoryEntry]
        let isRemoved: Bool
        let removedOn: CalendarDate?

        init(record: [UInt8], history: [HistoryEntry], isRemoved: Bool, removedOn: CalendarDate?) {
            self.record = record
            self.history = history
            self.isRemoved = isRemoved
            self.removedOn = removedOn
        }
    }

    fileprivate let box: Box

    fileprivate init(box: Box) { self.box = box }

    public var record: [UInt8] { box.record }
    public var history: [HistoryEntry] { box.history }
    public var isRemoved: Bool { box.isRemoved }
    public var removedOn: CalendarDate? { box.removedOn }

    public init(record: [UInt8], history: [HistoryEntry], isRemoved: Bool, removedOn: CalendarDate?) {
        box = Box(record: record, history: history, isRemoved: isRemoved, removedOn: removedOn)
    }

    public static func == (a: PersonEntry, b: PersonEntry) -> Bool {
        a.box === b.box
            || (a.record == b.record && a.history == b.history && a.isRemoved == b.isRemoved && a.removedOn == b.removedOn)
    }

    public func resident() throws -> Resident { try Resident(protobuf: record) }

    /// Asks for the entry's cache line ahead of its use, without retaining it.
    @inline(__always)
    func prefetch() { chukan_prefetch(Unmanaged.passUnretained(box).toOpaque()) }
}

/// One tenant's register at one sequence number: an immutable value. Readers hold a
/// version for as long as they like; a write makes a new version that shares the big
/// flat tables of its persons and indexes and all but the changed paths of the small
/// tries of recent changes beside them (`LayeredMap`), so holding a version costs
/// nothing and a write never copies the tenant. A writer that owns its copy alone
/// (recovery, a batch of writes) changes it in place with `apply`.
public struct RegisterState: Sendable, Equatable {
    public let tenant: String
    /// The WAL sequence this version includes.
    public private(set) var sequence: UInt64 = 0

    /// By 団体内統合宛名番号: one per person, ever.
    public private(set) var persons = LayeredMap<PackedID, PersonEntry>()
    private(set) var indexes = Indexes()
    /// Export tickets by id (chukan.v1.Register/Export).
    public private(set) var exports: TreeDictionary<String, ExportTicket> = [:]
    /// Staff accounts by staff id (chukan.v1.Staff).
    public private(set) var staff: TreeDictionary<String, StaffAccount> = [:]
    /// Provisions held for review (自動応答不可), by pending id (chukan.v1.Provision).
    public private(set) var pending: TreeDictionary<String, PendingProvision> = [:]
    /// Writes made with an idempotency key, by key (chukan.v1.Register).
    public private(set) var idempotency: TreeDictionary<String, IdempotentWrite> = [:]

    /// Every index, derived from `persons` and updated by the same write. Keys are
    /// plain 16-byte identifiers (see `PackedID`). The unique identifiers lead straight
    /// to the person (`Indexed`: id and entry), so a lookup by them costs one probe, not
    /// two; a write re-indexes the person anyway.
    struct Indexes: Sendable, Equatable {
        var byAtena = LayeredMap<PackedID, Indexed>()
        var byJuminhyo = LayeredMap<PackedID, Indexed>()
        /// Current and former 個人番号.
        var byKojinBango = LayeredMap<PackedID, Indexed>()
        /// 世帯番号 → the members, with their entries.
        var byHousehold = LayeredMap<PackedID, Members>()
        /// 4情報 search: normalised kana name with birth date, and with address.
        var byKanaAndBirth = LayeredMap<SearchKey, Postings<PackedID>>()
        var byKanaAndAddress = LayeredMap<SearchKey, Postings<PackedID>>()
    }

    /// A unique index's value (and a household member): the person's 団体内統合宛名番号
    /// and current entry.
    ///
    /// The entry is held unretained: every index value of a version names an entry that
    /// the same version's `persons` holds (a write re-indexes the person it changes, and
    /// the property test compares the indexes with a rebuild), so that version keeps it
    /// alive. That makes an index slot plain bytes — copied by the layers' merges and
    /// compactions and freed with old versions without a retain or a release, which were
    /// a fifth of a durable write's CPU. `entry` retains it; an `Indexed` never leaves
    /// this module (the indexes are internal, a household hands out `Household.Member`).
    struct Indexed: @unchecked Sendable, Equatable {
        let id: PackedID
        private let box: Unmanaged<PersonEntry.Box>

        init(id: PackedID, entry: PersonEntry) {
            self.id = id
            box = .passUnretained(entry.box)
        }

        /// The entry, retained: call it only while a version holding it is alive.
        var entry: PersonEntry { PersonEntry(box: box.takeUnretainedValue()) }

        /// Asks for the entry's cache line ahead of its use, without retaining it.
        @inline(__always)
        func prefetch() { chukan_prefetch(box.toOpaque()) }

        static func == (a: Indexed, b: Indexed) -> Bool {
            a.id == b.id && (a.box.toOpaque() == b.box.toOpaque() || a.entry == b.entry)
        }
    }

    public init(tenant: String) { self.tenant = tenant }

    public var count: Int { persons.count }

    // MARK: reads

    public func person(_ id: String) -> PersonEntry? { PackedID(id).flatMap { persons[$0] } }

    /// Every person, in no particular order. Iterating `persons` from another module runs
    /// the map's generic code unspecialized (a metadata lookup per step, a fifth of a
    /// snapshot write); this loop is compiled here, for these types.
    public func forEachPerson(_ body: (PackedID, PersonEntry) throws -> Void) rethrows {
        for (id, entry) in persons { try body(id, entry) }
    }
    public func person(_ id: PackedID) -> PersonEntry? { persons[id] }
    public func byAtena(_ n: String) -> PersonEntry? { lookup(indexes.byAtena, n) }
    public func byJuminhyo(_ c: String) -> PersonEntry? { lookup(indexes.byJuminhyo, c) }
    public func byKojinBango(_ k: String) -> PersonEntry? { lookup(indexes.byKojinBango, k) }
    /// A household's members, in 団体内統合宛名番号 order, read in place (no array is built).
    /// Every member's entry is prefetched: the caller reads them all, and each is a cache
    /// miss of its own at a million residents; asked for together, the misses overlap.
    public func household(_ n: String) -> Household {
        let members = PackedID(n).flatMap { indexes.byHousehold[$0] }
        if case .many(let ms)? = members {
            ms.withUnsafeBufferPointer { p in
                for m in p { m.prefetch() }
            }
        }
        return Household(members: members, holding: persons)
    }

    private func lookup(_ index: LayeredMap<PackedID, Indexed>, _ key: String) -> PersonEntry? {
        guard let k = PackedID(key) else { return nil }
        return index[k]?.entry
    }

    /// 4情報 search with name and birth date (DOMAIN.md §4: at least two facts besides
    /// sex): the 団体内統合宛名番号 of every match.
    public func search(kana: String, birthDate: CalendarDate) -> [String] {
        let key = Self.kanaBirthKey(normalizedKana: KanaKey.normalize(kana), birth: birthDate)
        return matches(indexes.byKanaAndBirth, key) { $0.kanaBirthString }
    }

    /// 4情報 search with name and address.
    public func search(kana: String, address: String) -> [String] {
        let key = Self.kanaAddressKey(normalizedKana: KanaKey.normalize(kana), address: address)
        return matches(indexes.byKanaAndAddress, key) { $0.kanaAddressString }
    }

    /// The index is keyed by a hash of `key`; each candidate's own key is checked so that
    /// a hash collision never returns the wrong person.
    private func matches(_ index: LayeredMap<SearchKey, Postings<PackedID>>, _ key: String, _ keyOf: (IndexKeys) -> String?) -> [String] {
        guard let candidates = index[SearchKey(key)] else { return [] }
        return candidates.elements.filter { id in
            guard let entry = persons[id], let keys = try? IndexKeys(encoded: entry.record) else { return false }
            return keyOf(keys) == key
        }.map(\.string)
    }

    static func kanaBirthKey(normalizedKana: String, birth: CalendarDate) -> String { normalizedKana + "|" + birth.key }

    static func kanaAddressKey(normalizedKana: String, address: String) -> String { normalizedKana + "|" + foldAddress(address) }

    /// Addresses compare without spaces and with full-width ASCII (０-９, Ａ-Ｚ, －) folded
    /// to half width. A plain scalar loop: full NFKC costs more than the whole lookup.
    static func foldAddress(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        forEachFoldedScalar(of: s) { out.append(Unicode.Scalar($0)!) }
        return String(out)
    }

    /// The scalars of `foldAddress(s)`, one by one (index keys hash them straight away).
    @inline(__always)
    static func forEachFoldedScalar(of s: String, _ body: (UInt32) -> Void) {
        for u in s.unicodeScalars {
            let v = u.value
            if v == 0x20 || v == 0x3000 || v == 0x09 { continue }
            if (0xFF01...0xFF5E).contains(v) {
                body(v - 0xFEE0)
            } else if v == 0x2212 {  // minus sign, as in 1−2−3
                body(0x2D)
            } else {
                body(v)
            }
        }
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

    /// Validates `event` and applies it as `sequence`, in place: all checks come before
    /// the first change, so a refused event leaves `self` as it was. In place means no
    /// path copying while this value is the only owner of its tries (a loader, or a
    /// writer's working copy between publications).
    /// Returns the 団体内統合宛名番号 of the person written (empty for a purge).
    /// `prepared`, when given, must be `PreparedResident(e)`: its validation, record and
    /// index keys stand in for the ones `apply` would compute from `e.resident`.
    @discardableResult
    public mutating func apply(_ e: RegisterEvent, sequence: UInt64, prepared: PreparedResident? = nil) throws -> String {
        var person = ""
        let prepared = prepared.flatMap { $0.kind == e.kind ? $0 : nil }
        func validate(_ r: Resident) throws {
            if let prepared {
                if let problem = prepared.problem { throw problem }
            } else {
                try ResidentValidation.validate(r)
            }
        }
        func history(before: [UInt8]?) -> HistoryEntry {
            HistoryEntry(sequence: sequence, kind: e.kind, reason: e.reason, eventDate: e.eventDate, notifiedOn: e.notifiedOn, before: before)
        }
        switch e.kind {
        case .record:
            guard var r = e.resident else { throw RPCError.invalidArgument("event.resident: is required") }
            // A 除票 from the resident system (an import): recorded and removed in this one
            // event, so that no crash or refusal can leave it a resident. Its removal is
            // checked first; the same 除票 again is already here, not someone moving back.
            let removal = (reason: r.removalReason, date: r.removedOn)
            let isRemoved = removal.reason != .reasonUnspecified || removal.date != nil
            if isRemoved, let problem = ResidentValidation.removalProblem(removal.reason, removal.date) {
                throw RPCError.invalidArgument(problem)
            }
            try validate(r)
            r.removalReason = .reasonUnspecified
            r.removedOn = nil
            guard let integrated = PackedID(r.integratedAtenaNumber) else {
                throw RPCError.invalidArgument("resident.integrated_atena_number: must be 1-16 ASCII letters or digits")
            }
            if let kojin = PackedID(r.kojinBango), let found = indexes.byKojinBango[kojin] {
                let (id, existing) = (found.id, found.entry)
                guard existing.isRemoved else {
                    throw RPCError(.failedPrecondition, "the person is already resident; 記載 refused")
                }
                // A former resident moving back: the same person, with their old 宛名番号.
                let old = try existing.resident()
                guard old.kojinBango == r.kojinBango else {
                    // Found by a number the person held before: their current one stays theirs.
                    throw RPCError(.failedPrecondition, "resident.kojin_bango: a former 個人番号 of a 除票; record the person with their current 個人番号")
                }
                // The same 除票 again (an import run again): already here, not someone moving back.
                guard !isRemoved else { throw RPCError(.alreadyExists, "the 除票 is already in the register") }
                r.integratedAtenaNumber = id.string
                r.atenaNumber = old.atenaNumber
                r.formerKojinBango = old.formerKojinBango
                try ensureUnique(r, for: id)
                person = try replace(id, with: r, entry: history(before: existing.record))
            } else {
                guard persons[integrated] == nil else {
                    throw RPCError(.alreadyExists, "resident.integrated_atena_number: already assigned to another person")
                }
                try ensureUnique(r, for: integrated)
                // A 除票: stored with its removal (`prepared` is the event's resident, removal
                // included), its history the 記載 and then the 消除, whose "before" is the
                // record as recorded.
                var stored = r
                var entries = [history(before: nil)]
                if isRemoved {
                    (stored.removalReason, stored.removedOn) = (removal.reason, removal.date)
                    entries.append(HistoryEntry(sequence: sequence, kind: .remove, reason: removal.reason, eventDate: removal.date, notifiedOn: nil, before: r.encodedBytes))
                }
                person = try replace(integrated, with: stored, entries: entries, prepared: prepared)
            }
        case .correct, .moveWithin:
            guard let r = e.resident else { throw RPCError.invalidArgument("event.resident: is required") }
            try validate(r)
            let (id, existing, old) = try current(r.integratedAtenaNumber, mustBeResident: e.kind == .moveWithin)
            guard r.kojinBango == old.kojinBango else {
                throw RPCError(.failedPrecondition, "resident.kojin_bango: changes only through CHANGE_KOJIN_BANGO")
            }
            guard r.formerKojinBango == old.formerKojinBango else {
                throw RPCError(.failedPrecondition, "resident.former_kojin_bango: changes only through CHANGE_KOJIN_BANGO")
            }
            // A 消除 is made by REMOVE and never undone or made here; a 除票's 消除事由 and
            // 消除年月日 may be corrected, but stay a real removal (its retention rests on them).
            let wasRemoved = old.removalReason != .reasonUnspecified, isRemoved = r.removalReason != .reasonUnspecified
            guard wasRemoved == isRemoved, isRemoved || r.removedOn == nil else {
                throw RPCError(.failedPrecondition, "resident.removal_reason: a 消除 is made only by REMOVE, and never undone")
            }
            if isRemoved, let problem = ResidentValidation.removalProblem(r.removalReason, r.removedOn) {
                throw RPCError.invalidArgument(problem)
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
            try ensureUnique(r, for: id)
            person = try replace(id, with: r, entry: history(before: existing.record), prepared: prepared)
        case .planMoveOut, .confirmMoveOut:
            let (id, existing, old) = try current(e.person, mustBeResident: true)
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
            person = try replace(id, with: r, entry: history(before: existing.record))
        case .remove:
            let (id, existing, old) = try current(e.person, mustBeResident: true)
            guard [.tenshutsu, .shibou, .shokkenShojo].contains(e.reason) else {
                throw RPCError.invalidArgument("event.reason: a 消除 needs 転出, 死亡 or 職権消除")
            }
            var r = old
            r.removalReason = e.reason
            r.removedOn = try requiredDate(e.eventDate, "event.event_date")
            person = try replace(id, with: r, entry: history(before: existing.record))
        case .changeKojinBango:
            let (id, existing, old) = try current(e.person, mustBeResident: false)
            if let p = Identifiers.myNumberProblem(e.kojinBango) { throw RPCError.invalidArgument("event.kojin_bango: \(p)") }
            guard let newNumber = PackedID(e.kojinBango), indexes.byKojinBango[newNumber] == nil else {
                throw RPCError(.alreadyExists, "event.kojin_bango: already held by a person of this register")
            }
            var r = old
            r.formerKojinBango.append(old.kojinBango)
            r.kojinBango = e.kojinBango
            person = try replace(id, with: r, entry: history(before: existing.record))
        case .changeHousehold:
            let (id, existing, old) = try current(e.person, mustBeResident: true)
            if let p = Identifiers.internalNumberProblem(e.householdNumber) { throw RPCError.invalidArgument("event.household_number: \(p)") }
            guard !e.relationship.isEmpty else { throw RPCError.invalidArgument("event.relationship: is required") }
            var r = old
            r.householdNumber = e.householdNumber
            r.relationship = e.relationship
            person = try replace(id, with: r, entry: history(before: existing.record))
        case .purge:
            guard !e.persons.isEmpty else { throw RPCError.invalidArgument("event.persons: is required") }
            var purged: [(PackedID, IndexKeys)] = []
            for name in e.persons {
                guard let id = PackedID(name), let entry = persons[id] else { throw RPCError(.notFound, "event.persons: no such person") }
                guard entry.isRemoved else { throw RPCError(.failedPrecondition, "event.persons: only 除票 can be purged") }
                purged.append((id, try IndexKeys(encoded: entry.record)))
            }
            for (id, keys) in purged {
                unindex(id, keys)
                persons[id] = nil
            }
        case .staffAdd, .staffUpdate:
            guard let account = e.staff else { throw RPCError.invalidArgument("event.staff: is required") }
            if let p = Self.staffIDProblem(account.staffId) { throw RPCError.invalidArgument("staff.staff_id: \(p)") }
            if e.kind == .staffAdd {
                guard staff[account.staffId] == nil else { throw RPCError(.alreadyExists, "staff.staff_id: the account exists") }
            } else {
                guard staff[account.staffId] != nil else { throw RPCError(.notFound, "staff.staff_id: no such account") }
            }
            staff[account.staffId] = account
            person = account.staffId
        case .exportTicket:
            guard let ticket = e.export, !ticket.exportId.isEmpty, ticket.exportId.utf8.count <= 64 else {
                throw RPCError.invalidArgument("event.export: a ticket with an export_id of at most 64 characters is required")
            }
            // Requested → approved or refused → (approved) used; nothing else.
            let before = exports[ticket.exportId]?.state
            let allowed: Bool = switch ticket.state {
            case .requested: before == nil
            case .approved, .refused: before == .requested
            case .used: before == .approved
            case .stateUnspecified: false
            }
            guard allowed else { throw RPCError(.failedPrecondition, "export \(ticket.exportId): not \(ticket.state) from \(before.map { "\($0)" } ?? "nothing")") }
            exports[ticket.exportId] = ticket
            person = ticket.exportId
        case .provisionHold:
            guard let p = e.pending, !p.pendingId.isEmpty, p.pendingId.utf8.count <= 64 else {
                throw RPCError.invalidArgument("event.pending: a held provision with a pending_id of at most 64 characters is required")
            }
            // Held → released or refused; nothing else, and a decision is final.
            let before = pending[p.pendingId]?.state
            let allowed: Bool = switch p.state {
            case .held: before == nil
            case .released, .refused: before == .held
            case .stateUnspecified: false
            }
            guard allowed else { throw RPCError(.failedPrecondition, "held provision \(p.pendingId): not \(p.state) from \(before.map { "\($0)" } ?? "nothing")") }
            pending[p.pendingId] = p
            person = p.pendingId
        case .kindUnspecified:
            throw RPCError.invalidArgument("event.kind: is required")
        }
        if !e.idempotencyKey.isEmpty {
            var w = IdempotentWrite()
            w.key = e.idempotencyKey
            w.sequence = sequence
            w.acceptedUnixMs = e.acceptedUnixMs
            w.requestDigest = e.requestDigest
            w.person = person
            idempotency[e.idempotencyKey] = w
        }
        self.sequence = sequence
        return person
    }

    /// 1-32 of A-Z a-z 0-9 - _ .
    public static func staffIDProblem(_ id: String) -> String? {
        guard (1...32).contains(id.utf8.count), id.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 45 || $0 == 95 || $0 == 46 }) else {
            return "must be 1-32 of A-Z a-z 0-9 - _ ."
        }
        return nil
    }

    /// Forgets writes accepted before `cutoffUnixMs` (they are remembered at least 24 hours).
    public mutating func forgetIdempotentWrites(acceptedBefore cutoffUnixMs: Int64) {
        idempotency = idempotency.filter { $0.value.acceptedUnixMs >= cutoffUnixMs }
    }

    private func current(_ name: String, mustBeResident: Bool) throws -> (PackedID, PersonEntry, Resident) {
        guard !name.isEmpty else { throw RPCError.invalidArgument("event.person: is required") }
        guard let id = PackedID(name), let entry = persons[id] else { throw RPCError(.notFound, "no person with that 団体内統合宛名番号") }
        if mustBeResident && entry.isRemoved { throw RPCError(.failedPrecondition, "the person's record is a 除票") }
        return (id, entry, try entry.resident())
    }

    private func requiredDate(_ d: CalendarDate?, _ field: String) throws -> CalendarDate {
        guard let d, d.precision == .full, ResidentValidation.dateProblem(d) == nil else {
            throw RPCError.invalidArgument("\(field): a full, real date is required")
        }
        return d
    }

    /// 宛名番号, 住民票コード and 個人番号 (current and former) each name one person.
    private func ensureUnique(_ r: Resident, for id: PackedID) throws {
        if let k = PackedID(r.atenaNumber), let other = indexes.byAtena[k]?.id, other != id {
            throw RPCError(.alreadyExists, "resident.atena_number: already assigned to another person")
        }
        if let k = PackedID(r.juminhyoCode), let other = indexes.byJuminhyo[k]?.id, other != id {
            throw RPCError(.alreadyExists, "resident.juminhyo_code: already assigned to another person")
        }
        if let k = PackedID(r.kojinBango), let other = indexes.byKojinBango[k]?.id, other != id {
            throw RPCError(.alreadyExists, "resident.kojin_bango: already held by another person")
        }
        // Former numbers find the person too, so they are as unique as the current one.
        for former in r.formerKojinBango {
            if let k = PackedID(former), let other = indexes.byKojinBango[k]?.id, other != id {
                throw RPCError(.alreadyExists, "resident.former_kojin_bango: already held by another person")
            }
        }
    }

    /// Replaces (or adds) a person's record; nothing after the first line can fail, so
    /// the caller's checks plus this make the event all-or-nothing.
    /// `prepared` holds `r`'s record and keys when `r` is the event's resident, unchanged.
    private mutating func replace(_ id: PackedID, with r: Resident, entry: HistoryEntry, prepared: PreparedResident? = nil) throws -> String {
        try replace(id, with: r, entries: [entry], prepared: prepared)
    }

    /// `replace` with more than one history entry (a 除票 recorded and removed at once).
    private mutating func replace(_ id: PackedID, with r: Resident, entries: [HistoryEntry], prepared: PreparedResident? = nil) throws -> String {
        let oldKeys = try persons[id].map { try IndexKeys(encoded: $0.record) }
        var history = persons[id]?.history ?? []
        if let oldKeys { unindex(id, oldKeys) }
        history.append(contentsOf: entries)
        let removed = r.removalReason != .reasonUnspecified
        let person = PersonEntry(record: prepared?.record ?? r.encodedBytes, history: history, isRemoved: removed, removedOn: r.removedOn)
        persons[id] = person
        index(id, person, prepared?.keys ?? IndexKeys(r))
        return id.string
    }

    private mutating func index(_ id: PackedID, _ entry: PersonEntry, _ r: IndexKeys) {
        let indexed = Indexed(id: id, entry: entry)
        if let k = r.atena { indexes.byAtena[k] = indexed }
        if let k = r.juminhyo { indexes.byJuminhyo[k] = indexed }
        for k in r.allKojinBango { indexes.byKojinBango[k] = indexed }
        if let k = r.household { Self.add(indexed, to: &indexes.byHousehold, key: k) }
        if let k = r.kanaBirth { Self.add(id, to: &indexes.byKanaAndBirth, key: k) }
        if let k = r.kanaAddress { Self.add(id, to: &indexes.byKanaAndAddress, key: k) }
    }

    private mutating func unindex(_ id: PackedID, _ r: IndexKeys) {
        if let k = r.atena { indexes.byAtena[k] = nil }
        if let k = r.juminhyo { indexes.byJuminhyo[k] = nil }
        for k in r.allKojinBango { indexes.byKojinBango[k] = nil }
        if let k = r.household { Self.remove(id, from: &indexes.byHousehold, key: k) }
        if let k = r.kanaBirth { Self.remove(id, from: &indexes.byKanaAndBirth, key: k) }
        if let k = r.kanaAddress { Self.remove(id, from: &indexes.byKanaAndAddress, key: k) }
    }

    private static func add<K, E>(_ element: E, to index: inout LayeredMap<K, Postings<E>>, key: K) {
        guard var postings = index[key] else {
            index[key] = .one(element)
            return
        }
        postings.insert(element)
        index[key] = postings
    }

    private static func remove<K, E>(_ person: PackedID, from index: inout LayeredMap<K, Postings<E>>, key: K) {
        guard let postings = index[key] else { return }
        index[key] = postings.removing(person)
    }

    /// The indexes rebuilt from the records alone; equal to `indexes` unless a bug lurks.
    /// Internal: its entries are held by this version (see `Indexed`).
    func rebuiltIndexes() throws -> Indexes {
        var scratch = RegisterState(tenant: tenant)
        for (id, entry) in persons {
            scratch.index(id, entry, try IndexKeys(encoded: entry.record))
        }
        return scratch.indexes
    }

    /// Whether every index equals its rebuild from the records alone: true unless a bug
    /// lurks. Used by tests and by `chukanctl snapshot verify`.
    public func indexesAreConsistent() throws -> Bool { try rebuiltIndexes() == indexes }

    /// Whether `other`'s indexes hold what this version's do (a snapshot read back).
    public func hasSameIndexes(as other: RegisterState) -> Bool { indexes == other.indexes }

    /// A record read back from storage with its index keys already decoded, so that
    /// decoding can run on several threads and only index insertion is sequential.
    /// Holds the keys alone (no strings): a million of these are copied and kept until
    /// the indexes are built.
    public struct LoadedEntry: @unchecked Sendable {
        public let id: PackedID
        let entry: PersonEntry
        let atena, juminhyo, kojinBango, household: PackedID?
        let formerKojinBango: [PackedID]
        let kanaBirth, kanaAddress: SearchKey?

        public init(id: String, entry: PersonEntry) throws {
            guard let packed = PackedID(id) else { throw RPCError.invalidArgument("entry id: must be 1-16 ASCII letters or digits") }
            self.id = packed
            let keys = try IndexKeys(encoded: entry.record)
            self.entry = PersonEntry(record: entry.record, history: entry.history, isRemoved: keys.removed, removedOn: keys.removedOn)
            (atena, juminhyo, kojinBango, household) = (keys.atena, keys.juminhyo, keys.kojinBango, keys.household)
            formerKojinBango = keys.formerKojinBango
            (kanaBirth, kanaAddress) = (keys.kanaBirth, keys.kanaAddress)
        }
    }

    /// Loads prepared records (from a snapshot) and rebuilds every index. The tables do
    /// not depend on each other, so they are built side by side, one group per core,
    /// each straight into a flat table sized for it.
    /// Throws when two records name the same person: the indexes would then hold an entry
    /// that `persons` does not (see `Indexed`).
    public static func rebuilding(tenant: String, sequence: UInt64, loaded chunks: [[LoadedEntry]], idempotency: [IdempotentWrite] = [], staff: [StaffAccount] = [], exports: [ExportTicket] = [], pending: [PendingProvision] = []) throws -> RegisterState {
        let built = TableBuild()
        let count = chunks.reduce(0) { $0 + $1.count }
        let loaded = chunks.joined()
        DispatchQueue.concurrentPerform(iterations: 3) { group in
            switch group {
            case 0:
                var persons = FlatTable<PackedID, PersonEntry>(expected: count)
                for l in loaded { persons.set(l.id, l.entry) }
                built.persons = persons
            case 1:
                var atena = FlatTable<PackedID, Indexed>(expected: count), juminhyo = atena, kojin = atena
                for l in loaded {
                    let indexed = Indexed(id: l.id, entry: l.entry)
                    if let k = l.atena { atena.set(k, indexed) }
                    if let k = l.juminhyo { juminhyo.set(k, indexed) }
                    if let k = l.kojinBango { kojin.set(k, indexed) }
                    for k in l.formerKojinBango { kojin.set(k, indexed) }
                }
                (built.atena, built.juminhyo, built.kojin) = (atena, juminhyo, kojin)
            default:
                var household = FlatTable<PackedID, Members>(expected: count / 2)
                var kanaBirth = FlatTable<SearchKey, Postings<PackedID>>(expected: count), kanaAddress = kanaBirth
                for l in loaded {
                    if let k = l.household {
                        let member = Indexed(id: l.id, entry: l.entry)
                        household.modify(k, default: .one(member)) { $0.insert(member) }
                    }
                    if let k = l.kanaBirth { kanaBirth.modify(k, default: .one(l.id)) { $0.insert(l.id) } }
                    if let k = l.kanaAddress { kanaAddress.modify(k, default: .one(l.id)) { $0.insert(l.id) } }
                }
                (built.household, built.kanaBirth, built.kanaAddress) = (household, kanaBirth, kanaAddress)
            }
        }
        guard built.persons.count == count else {
            throw RPCError.internal("\(count - built.persons.count) records name a person another record names")
        }
        var s = RegisterState(tenant: tenant)
        s.sequence = sequence
        s.persons = LayeredMap(built.persons)
        for w in idempotency { s.idempotency[w.key] = w }
        for a in staff { s.staff[a.staffId] = a }
        for t in exports { s.exports[t.exportId] = t }
        for p in pending { s.pending[p.pendingId] = p }
        s.indexes = Indexes(
            byAtena: LayeredMap(built.atena), byJuminhyo: LayeredMap(built.juminhyo), byKojinBango: LayeredMap(built.kojin),
            byHousehold: LayeredMap(built.household), byKanaAndBirth: LayeredMap(built.kanaBirth),
            byKanaAndAddress: LayeredMap(built.kanaAddress))
        return s
    }
}

/// The tables of a load, each written by one thread of `rebuilding` and read after all
/// have finished (`concurrentPerform` returns only then).
private final class TableBuild: @unchecked Sendable {
    var persons = FlatTable<PackedID, PersonEntry>()
    var atena = FlatTable<PackedID, RegisterState.Indexed>()
    var juminhyo = FlatTable<PackedID, RegisterState.Indexed>()
    var kojin = FlatTable<PackedID, RegisterState.Indexed>()
    var household = FlatTable<PackedID, Members>()
    var kanaBirth = FlatTable<SearchKey, Postings<PackedID>>()
    var kanaAddress = FlatTable<SearchKey, Postings<PackedID>>()
}
