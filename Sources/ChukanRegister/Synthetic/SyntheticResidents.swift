import ChukanProto

/// Deterministic synthetic residents for tests, demos and benchmarks: realistic
/// households, Japanese names in kanji and kana, Asahikawa-style addresses, valid
/// 個人番号 and 住民票コード — and no real person. The same seed gives the same people.
public struct SyntheticResidents: Sequence {
    public let count: Int
    public let seed: UInt64
    /// The tenant (地方公共団体コード) whose addresses are generated.
    public let municipality: String

    public init(count: Int, seed: UInt64 = 1, municipality: String = "012041") {
        self.count = count
        self.seed = seed
        self.municipality = municipality
    }

    public func makeIterator() -> Iterator { Iterator(owner: self) }

    public struct Iterator: IteratorProtocol {
        let owner: SyntheticResidents
        var rng: SplitMix64
        var index = 0
        var household: [Resident] = []
        var householdIndex = 0

        init(owner: SyntheticResidents) {
            self.owner = owner
            self.rng = SplitMix64(seed: owner.seed)
        }

        /// The next person; a household's members come one after another.
        public mutating func next() -> Resident? {
            guard index < owner.count else { return nil }
            if household.isEmpty {
                household = makeHousehold(size: Swift.min(householdSize(), owner.count - index))
            }
            index += 1
            return household.removeFirst()
        }

        mutating func householdSize() -> Int {
            // Roughly Asahikawa's mix: many single and two-person households.
            let r = rng.next(100)
            return r < 38 ? 1 : r < 68 ? 2 : r < 84 ? 3 : r < 95 ? 4 : 5
        }

        mutating func makeHousehold(size: Int) -> [Resident] {
            householdIndex += 1
            let householdNumber = "H" + pad(householdIndex, 9)
            let surname = Names.surnames[Int(rng.next(UInt64(Names.surnames.count)))]
            let address = makeAddress()
            let foreign = rng.next(100) < 2
            let headBirthYear = 1935 + UInt32(rng.next(60))
            var members: [Resident] = []
            for m in 0..<size {
                let i = index + m
                var r = Resident()
                r.schemaVersion = ResidentValidation.schemaVersion
                r.atenaNumber = "A" + pad(i + 1, 9)
                r.integratedAtenaNumber = "T" + pad(i + 1, 9)
                r.householdNumber = householdNumber
                r.kojinBango = SyntheticResidents.myNumber(i, seed: owner.seed)
                r.juminhyoCode = SyntheticResidents.juminhyoCode(i, seed: owner.seed)
                let sex: Sex = m == 0 ? (rng.next(4) == 0 ? .female : .male) : (m == 1 ? .female : (rng.next(2) == 0 ? .male : .female))
                r.sex = sex
                let given = (sex == .male ? Names.maleGiven : Names.femaleGiven)[Int(rng.next(UInt64(Names.maleGiven.count)))]
                var name = Name()
                name.kana = surname.kana + "　" + given.kana
                var kanji = JText()
                kanji.text = surname.kanji + "　" + given.kanji
                kanji.substitute = kanji.text
                name.kanji = kanji
                r.name = name
                let birthYear = m == 0 ? headBirthYear : (m == 1 ? headBirthYear + UInt32(rng.next(6)) : Swift.min(2024, headBirthYear + 22 + UInt32(rng.next(20))))
                var birth = CalendarDate(birthYear, 1 + UInt32(rng.next(12)), 1 + UInt32(rng.next(28)))
                if rng.next(2000) == 0 { birth = CalendarDate(birthYear, 0, 0); birth.precision = .yearOnly }
                r.birthDate = birth
                r.relationship = m == 0 ? "世帯主" : (m == 1 ? "妻" : "子")
                r.address = address
                r.becameResidentOn = CalendarDate(Swift.max(birthYear, 1990 + UInt32(rng.next(30))), 4, 1)
                if birth.precision == .full && birth.key > r.becameResidentOn!.key { r.becameResidentOn = birth }  // born here that year
                r.addressSetOn = r.becameResidentOn
                r.recordReason = m >= 2 && rng.next(2) == 0 ? .shussei : .tennyu
                r.recordedOn = r.becameResidentOn
                let age = 2026 - Int(birthYear)
                r.nationalHealthInsurance = qualification(age < 75 && rng.next(100) < 25)
                r.childAllowance = qualification(age < 15)
                r.nationalPension = qualification(age >= 20 && age < 60 && rng.next(100) < 40)
                r.lateElderlyMedical = qualification(age >= 75)
                r.longTermCare = qualification(age >= 65 && rng.next(100) < 20)
                r.basicResidentCard = .notIssued
                r.myNumberCard = rng.next(100) < 75 ? .issued : .notIssued
                if foreign {
                    var f = ForeignResident()
                    let n = Names.foreign[Int(rng.next(UInt64(Names.foreign.count)))]
                    var fn = JText()
                    fn.text = n.roman
                    fn.substitute = n.roman
                    f.name = fn
                    f.nameKatakana = n.kana
                    f.romanName = n.roman
                    f.nationality = n.country
                    f.category = .midLongTerm
                    f.statusOfResidence = "技術・人文知識・国際業務"
                    f.periodOfStay = "3年"
                    f.periodExpiry = CalendarDate(2027 + UInt32(rng.next(3)), 1 + UInt32(rng.next(12)), 1 + UInt32(rng.next(28)))
                    f.residenceCardNumber = "AB" + pad(Int(rng.next(100_000_000)), 8) + "CD"
                    f.residenceCardPresented = true
                    r.foreign = f
                    name.kana = n.kana
                    r.name = name
                }
                var p = Processing()
                p.terminal = "ASA-T\(pad(Int(rng.next(120)), 3))"
                p.staffNumber = "S" + pad(Int(rng.next(500)), 5)
                p.reason = r.recordReason
                p.eventDate = r.recordedOn
                p.notifiedOn = r.recordedOn
                p.processedOn = r.recordedOn
                r.processing = p
                // About 3% are 除票: moved out or died.
                if rng.next(100) < 3 {
                    r.removalReason = rng.next(2) == 0 ? .tenshutsu : .shibou
                    // After they came (and so after birth), by 2025.
                    let year = Swift.min(2025, Swift.max(2015 + UInt32(rng.next(10)), r.becameResidentOn!.year + 1))
                    r.removedOn = CalendarDate(year, 1 + UInt32(rng.next(12)), 1 + UInt32(rng.next(28)))
                }
                // One in a thousand carries a handling restriction (DV support and the
                // like): 提供 of them is held for review. Fixed by position (T000001000,
                // T000002000 …) so that tests and demos know who they are.
                r.restricted = (i + 1) % 1000 == 0
                members.append(r)
            }
            return members
        }

        mutating func qualification(_ qualified: Bool) -> Qualification {
            var q = Qualification()
            q.status = qualified ? .qualified : .none
            if qualified { q.acquired = CalendarDate(2000 + UInt32(rng.next(25)), 4, 1) }
            return q
        }

        mutating func makeAddress() -> Address {
            var a = Address()
            let town = Names.asahikawaTowns[Int(rng.next(UInt64(Names.asahikawaTowns.count)))]
            let text: String
            if town.hasSuffix("条通") {
                text = "北海道旭川市\(1 + rng.next(12))\(town)\(1 + rng.next(24))丁目\(1 + rng.next(30))番地\(1 + rng.next(20))"
            } else {
                text = "北海道旭川市\(town)\(1 + rng.next(8))条\(1 + rng.next(10))丁目\(1 + rng.next(30))番\(1 + rng.next(20))号"
            }
            var j = JText()
            j.text = text
            j.substitute = text
            a.address = j
            a.municipalityCode = owner.municipality
            a.postalCode = "07" + pad(Int(rng.next(100_000)), 5)
            if rng.next(3) == 0 {
                var k = JText()
                k.text = "\(["メゾン", "コーポ", "ハイツ", "グランド"][Int(rng.next(4))])旭川\(1 + rng.next(9))0\(1 + rng.next(9))号室"
                k.substitute = k.text
                a.katagaki = k
            }
            return a
        }

        func pad(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: Swift.max(0, width - s.count)) + s
        }
    }

    /// A valid, unique 個人番号 for person `i`: a bijection of i onto 11 digits, then
    /// the check digit.
    public static func myNumber(_ i: Int, seed: UInt64) -> String {
        let body = (UInt64(i) &* 7_919_000_003 &+ seed &* 1_000_003 &+ 12_345_678_901) % 100_000_000_000
        var digits = String(body)
        digits = String(repeating: "0", count: 11 - digits.count) + digits
        let check = Identifiers.myNumberCheckDigit(digits.utf8.map { Int($0) - 48 })
        return digits + String(check)
    }

    /// A unique 11-digit 住民票コード for person `i`.
    public static func juminhyoCode(_ i: Int, seed: UInt64) -> String {
        let body = (UInt64(i) &* 3_000_000_019 &+ seed &* 999_983 &+ 40_000_000_000) % 100_000_000_000
        let s = String(body)
        return String(repeating: "0", count: 11 - s.count) + s
    }
}

/// A small, fast, seedable generator (SplitMix64): the same seed, the same residents.
public struct SplitMix64 {
    var state: UInt64
    public init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in 0..<bound.
    public mutating func next(_ bound: UInt64) -> UInt64 { next() % bound }
}
