import ChukanCore
import ChukanProto

/// The checks every write passes before it is logged. Errors name the field and the
/// rule, never the value.
public enum ResidentValidation {
    /// The newest `Resident.schema_version` this build understands.
    public static let schemaVersion: UInt32 = 1

    public static func validate(_ r: Resident, field: String = "resident") throws {
        func bad(_ f: String, _ why: String) -> RPCError { .invalidArgument("\(field).\(f): \(why)") }
        guard r.schemaVersion <= schemaVersion else { throw bad("schema_version", "newer than this server understands (\(schemaVersion))") }
        if let p = Identifiers.internalNumberProblem(r.atenaNumber) { throw bad("atena_number", p) }
        if let p = Identifiers.internalNumberProblem(r.householdNumber) { throw bad("household_number", p) }
        if let p = Identifiers.internalNumberProblem(r.integratedAtenaNumber) { throw bad("integrated_atena_number", p) }
        if let p = Identifiers.juminhyoCodeProblem(r.juminhyoCode) { throw bad("juminhyo_code", p) }
        if let p = Identifiers.myNumberProblem(r.kojinBango) { throw bad("kojin_bango", p) }
        for (i, old) in r.formerKojinBango.enumerated() {
            if let p = Identifiers.myNumberProblem(old) { throw bad("former_kojin_bango[\(i)]", p) }
        }
        guard let name = r.name, !name.kana.isEmpty, !(name.kanji?.text.isEmpty ?? true) || r.foreign != nil else {
            throw bad("name", "kana and kanji (or a foreign-resident name) are required")
        }
        guard name.kana.unicodeScalars.allSatisfy({ isKatakana($0) }) else { throw bad("name.kana", "must be full-width katakana") }
        guard let birth = r.birthDate else { throw bad("birth_date", "is required") }
        if let p = dateProblem(birth) { throw bad("birth_date", p) }
        guard r.sex != .sexUnspecified else { throw bad("sex", "is required") }
        guard let address = r.address, !(address.address?.text.isEmpty ?? true) else { throw bad("address", "is required") }
        try validate(address, field: "\(field).address")
        for (f, a) in [("previous_address", r.previousAddress), ("planned_move_out", r.plannedMoveOut), ("confirmed_move_out", r.confirmedMoveOut)] {
            if let a { try validate(a, field: "\(field).\(f)") }
        }
        let dates: [(String, CalendarDate?)] = [
            ("planned_move_out_date", r.plannedMoveOutDate), ("confirmed_move_out_date", r.confirmedMoveOutDate),
            ("revised_on", r.revisedOn), ("became_resident_on", r.becameResidentOn), ("address_set_on", r.addressSetOn),
            ("recorded_on", r.recordedOn), ("removed_on", r.removedOn),
        ]
        for (f, d) in dates {
            if let d, let p = dateProblem(d) { throw bad(f, p) }
        }
    }

    static func validate(_ a: Address, field: String) throws {
        if !a.municipalityCode.isEmpty, let p = Identifiers.localGovernmentCodeProblem(a.municipalityCode) {
            throw RPCError.invalidArgument("\(field).municipality_code: \(p)")
        }
        if !a.postalCode.isEmpty, a.postalCode.utf8.count != 7 || !a.postalCode.utf8.allSatisfy({ (48...57).contains($0) }) {
            throw RPCError.invalidArgument("\(field).postal_code: must be 7 digits")
        }
    }

    static func isKatakana(_ s: Unicode.Scalar) -> Bool {
        (0x30A1...0x30FC).contains(s.value) || s.value == 0x3000 || s.value == 0x20
    }

    /// Whether `d` is a real date at its precision (a partial birth date is allowed).
    public static func dateProblem(_ d: CalendarDate) -> String? {
        switch d.precision {
        case .unknown:
            return d.year == 0 && d.month == 0 && d.day == 0 ? nil : "an unknown date carries no year, month or day"
        case .yearOnly:
            return (1800...2200).contains(d.year) && d.month == 0 && d.day == 0 ? nil : "not a valid year-only date"
        case .yearMonth:
            return (1800...2200).contains(d.year) && (1...12).contains(d.month) && d.day == 0 ? nil : "not a valid year-and-month date"
        case .full:
            guard (1800...2200).contains(d.year), (1...12).contains(d.month), d.day >= 1, d.day <= daysIn(month: d.month, year: d.year) else {
                return "not a real date"
            }
            return nil
        }
    }

    /// Why a record's removal (消除事由, 消除年月日) cannot be recorded as a 除票, or nil:
    /// it needs a reason the register takes for a 消除 and a full, real date, as a REMOVE
    /// event does.
    public static func removalProblem(_ reason: EventReason, _ date: CalendarDate?) -> String? {
        if reason == .reasonUnspecified {
            return date == nil ? nil : "resident.removal_reason: is required with removed_on"
        }
        guard [.tenshutsu, .shibou, .shokkenShojo].contains(reason) else {
            return "resident.removal_reason: a 消除 needs 転出, 死亡 or 職権消除"
        }
        guard let date, date.precision == .full, dateProblem(date) == nil else {
            return "resident.removed_on: a 除票 needs a full, real date"
        }
        return nil
    }

    static func daysIn(month: UInt32, year: UInt32) -> UInt32 {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}

extension CalendarDate {
    public init(_ year: UInt32, _ month: UInt32, _ day: UInt32) {
        self.init()
        self.year = year
        self.month = month
        self.day = day
    }

    /// "YYYYMMDD", zeros for unknown parts: sorts and compares as dates do.
    public var key: String {
        func pad(_ v: UInt32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return pad(year, 4) + pad(month, 2) + pad(day, 2)
    }
}
