import ChukanCore
import ChukanProto
import ChukanRegister
import Testing

func event(_ kind: RegisterEventKind, _ configure: (inout RegisterEvent) -> Void = { _ in }) -> RegisterEvent {
    var e = RegisterEvent()
    e.kind = kind
    e.eventDate = CalendarDate(2026, 11, 1)
    e.notifiedOn = CalendarDate(2026, 11, 2)
    configure(&e)
    return e
}

func recordEvent(_ r: Resident, reason: EventReason = .tennyu) -> RegisterEvent {
    event(.record) { $0.resident = r; $0.reason = reason }
}

/// Synthetic residents, all current (the generator makes some 除票).
func currentResidents(_ count: Int, seed: UInt64) -> [Resident] {
    Array(SyntheticResidents(count: count, seed: seed)).map {
        var r = $0
        r.removalReason = .reasonUnspecified
        r.removedOn = nil
        return r
    }
}

func code(_ body: () throws -> Void) -> StatusCode? {
    do {
        try body()
        return nil
    } catch let e as RPCError {
        return e.code
    } catch {
        return .unknown
    }
}

@Suite struct RegisterRuleTests {
    let people = currentResidents(20, seed: 3)

    func loaded() throws -> RegisterState {
        var s = RegisterState(tenant: "012041")
        for (i, r) in people.enumerated() { s = try s.applying(recordEvent(r), sequence: UInt64(i + 1)) }
        return s
    }

    /// CORRECT never makes or undoes a 消除, and a 除票's corrected 消除事由 and 消除年月日
    /// stay a real removal (retention rests on them).
    @Test func correctionLeavesRemovalToRemove() throws {
        var s = try loaded()
        var removed = people[2]
        removed.removalReason = .shibou
        removed.removedOn = CalendarDate(2020, 5, 1)
        #expect(code { s = try s.applying(event(.correct) { $0.resident = removed; $0.reason = .shusei }, sequence: 21) } == .failedPrecondition)
        s = try s.applying(event(.remove) { $0.person = people[2].integratedAtenaNumber; $0.reason = .shibou; $0.eventDate = CalendarDate(2020, 5, 1) }, sequence: 21)
        let gone = try #require(try s.person(people[2].integratedAtenaNumber)?.resident())
        var revived = gone
        revived.removalReason = .reasonUnspecified
        revived.removedOn = nil
        #expect(code { s = try s.applying(event(.correct) { $0.resident = revived; $0.reason = .shusei }, sequence: 22) } == .failedPrecondition)
        var vague = gone
        vague.removedOn = CalendarDate(0, 0, 0)
        vague.removedOn?.precision = .unknown
        #expect(code { s = try s.applying(event(.correct) { $0.resident = vague; $0.reason = .shusei }, sequence: 22) } == .invalidArgument)
        var fixed = gone
        fixed.removedOn = CalendarDate(2020, 5, 2)
        s = try s.applying(event(.correct) { $0.resident = fixed; $0.reason = .shusei }, sequence: 22)
        #expect(s.person(people[2].integratedAtenaNumber)?.removedOn == CalendarDate(2020, 5, 2))
        #expect(try s.indexesAreConsistent())
    }

    @Test func lookupsByEveryIndex() throws {
        let s = try loaded()
        let p = people[5]
        #expect(s.count == 20 && s.sequence == 20)
        #expect(try s.byAtena(p.atenaNumber)?.resident() == p)
        #expect(try s.byJuminhyo(p.juminhyoCode)?.resident() == p)
        #expect(try s.byKojinBango(p.kojinBango)?.resident() == p)
        #expect(s.household(p.householdNumber).count == people.filter { $0.householdNumber == p.householdNumber }.count)
        #expect(s.search(kana: p.name!.kana, birthDate: p.birthDate!).contains(p.integratedAtenaNumber))
        #expect(s.search(kana: KanaKey.normalize(p.name!.kana), address: p.address!.address!.text).contains(p.integratedAtenaNumber))
        #expect(s.search(kana: p.name!.kana, birthDate: CalendarDate(1800, 1, 1)).isEmpty)
    }

    /// The index hashes its search keys as it reads a record (no strings built); a search
    /// hashes the string it builds from the query. Both must agree whatever form the kana
    /// and the address take.
    @Test func searchFindsEveryFormOfKanaAndAddress() throws {
        var s = RegisterState(tenant: "012041")
        var sequence: UInt64 = 0
        for (i, (kana, address)) in [("ヤマダ　ジロウ", "旭川市６条通１０丁目"), ("パッチョ　キョウコ", "旭川市 神楽3条7丁目1−2"),
                                    ("ヴィッカース　メアリ", "旭川市ＡＢ町1-2-3")].enumerated() {
            var r = people[i]
            r.name!.kana = kana
            r.address!.address!.text = address
            r.address!.address!.substitute = ""
            sequence += 1
            try s.apply(recordEvent(r), sequence: sequence)
            for query in [kana, KanaKey.normalize(kana)] {
                #expect(s.search(kana: query, birthDate: r.birthDate!) == [r.integratedAtenaNumber], "\(i) by birth")
                #expect(s.search(kana: query, address: address) == [r.integratedAtenaNumber], "\(i) by address")
            }
        }
        #expect(s.search(kana: "ﾔﾏﾀﾞ ｼﾞﾛｳ", address: "旭川市6条通10丁目") == [people[0].integratedAtenaNumber])
        #expect(s.search(kana: "やまだ じろう", birthDate: people[0].birthDate!) == [people[0].integratedAtenaNumber])
        #expect(s.search(kana: "ハッチヨキヨウコ", address: "旭川市神楽3条7丁目1-2") == [people[1].integratedAtenaNumber])
        #expect(s.search(kana: "ウイツカスメアリ", address: "旭川市AB町1-2-3").isEmpty, "ー is kept, so this is another name")
        #expect(s.search(kana: "ウイツカースメアリ", address: "旭川市AB町1-2-3") == [people[2].integratedAtenaNumber])
    }

    /// A former 個人番号 finds its person like the current one, so it names one person only:
    /// another record cannot claim it, a correction cannot change the list, and a 除票
    /// found by a former number is not brought back under it.
    @Test func formerNumbersStayWithTheirPerson() throws {
        var s = try loaded()
        let a = people[0], b = people[1]
        var claiming = people[2]
        claiming.formerKojinBango = [a.kojinBango]
        #expect(code { _ = try s.applying(event(.correct) { $0.resident = claiming }, sequence: 21) } == .failedPrecondition)
        var stranger = currentResidents(30, seed: 3)[25]  // not among the 20 loaded
        stranger.formerKojinBango = [b.kojinBango]
        #expect(code { _ = try s.applying(recordEvent(stranger), sequence: 21) } == .alreadyExists)
        #expect(try s.byKojinBango(b.kojinBango)?.resident().integratedAtenaNumber == b.integratedAtenaNumber)

        // A changes number (X → Y), moves out; a 転入 with X is refused and Y still finds A.
        let y = SyntheticResidents.myNumber(50_000, seed: 3)
        s = try s.applying(event(.changeKojinBango) { $0.person = a.integratedAtenaNumber; $0.kojinBango = y }, sequence: 21)
        s = try s.applying(event(.remove) { $0.person = a.integratedAtenaNumber; $0.reason = .tenshutsu; $0.eventDate = CalendarDate(2026, 4, 1) }, sequence: 22)
        #expect(code { _ = try s.applying(recordEvent(a), sequence: 23) } == .failedPrecondition)
        var back = a
        back.kojinBango = y
        s = try s.applying(recordEvent(back), sequence: 23)
        let found = try #require(try s.byKojinBango(y)?.resident())
        #expect(found.integratedAtenaNumber == a.integratedAtenaNumber && found.formerKojinBango == [a.kojinBango])
        #expect(try s.byKojinBango(a.kojinBango)?.resident().integratedAtenaNumber == a.integratedAtenaNumber)
        #expect(try s.indexesAreConsistent())
    }

    @Test func invalidWritesNameTheFieldNotTheValue() throws {
        var r = people[0]
        r.kojinBango = "983205673215"
        do {
            _ = try RegisterState(tenant: "012041").applying(recordEvent(r), sequence: 1)
            Issue.record("accepted a bad check digit")
        } catch let e as RPCError {
            #expect(e == .invalidArgument("resident.kojin_bango: check digit does not match"))
            #expect(!e.message.contains("983205673215"))
        }
        var noName = people[0]
        noName.name = nil
        #expect(throws: RPCError.invalidArgument("resident.name: kana and kanji (or a foreign-resident name) are required")) {
            _ = try RegisterState(tenant: "012041").applying(recordEvent(noName), sequence: 1)
        }
        var badDate = people[0]
        badDate.birthDate = CalendarDate(2023, 2, 29)
        #expect(throws: RPCError.invalidArgument("resident.birth_date: not a real date")) {
            _ = try RegisterState(tenant: "012041").applying(recordEvent(badDate), sequence: 1)
        }
        var partial = people[0]
        var yearOnly = CalendarDate(1950, 0, 0)
        yearOnly.precision = .yearOnly
        partial.birthDate = yearOnly
        _ = try RegisterState(tenant: "012041").applying(recordEvent(partial), sequence: 1)
        var badTown = people[0]
        badTown.address!.municipalityCode = "012042"
        #expect(throws: RPCError.invalidArgument("resident.address.municipality_code: check digit does not match")) {
            _ = try RegisterState(tenant: "012041").applying(recordEvent(badTown), sequence: 1)
        }
    }

    @Test func tennyuOfAResidentIsRefusedAndAFormerResidentGetsTheirNumberBack() throws {
        var s = try loaded()
        var again = people[3]
        again.integratedAtenaNumber = "T999999999"
        again.atenaNumber = "A999999999"
        again.juminhyoCode = "99999999999"
        #expect(code { _ = try s.applying(recordEvent(again), sequence: 21) } == .failedPrecondition)
        // Moves out, then back in with new numbers offered: the old 宛名番号 and person come back.
        s = try s.applying(event(.confirmMoveOut) { $0.person = people[3].integratedAtenaNumber; $0.address = people[0].address }, sequence: 21)
        #expect(s.person(people[3].integratedAtenaNumber)?.isRemoved == true)
        s = try s.applying(recordEvent(again), sequence: 22)
        let back = try #require(try s.byKojinBango(people[3].kojinBango)?.resident())
        #expect(back.integratedAtenaNumber == people[3].integratedAtenaNumber)
        #expect(back.atenaNumber == people[3].atenaNumber)
        #expect(s.person(people[3].integratedAtenaNumber)?.history.count == 3)
        #expect(s.byAtena("A999999999") == nil)
    }

    @Test func tenkyoMayChangeOnlyTheAddress() throws {
        let s = try loaded()
        var moved = people[1]
        moved.previousAddress = moved.address
        moved.address = people[10].address
        let after = try s.applying(event(.moveWithin) { $0.resident = moved }, sequence: 21)
        #expect(try after.person(moved.integratedAtenaNumber)?.resident().address == people[10].address)
        var sneaky = moved
        sneaky.relationship = "子"
        #expect(code { _ = try s.applying(event(.moveWithin) { $0.resident = sneaky }, sequence: 21) } == .failedPrecondition)
        // The refused write left the version untouched.
        #expect(try s.person(moved.integratedAtenaNumber)?.resident() == people[1])
    }

    @Test func myNumberChangeKeepsBothAndTheIntegratedNumber() throws {
        var s = try loaded()
        let p = people[2]
        let newNumber = SyntheticResidents.myNumber(9999, seed: 3)
        s = try s.applying(event(.changeKojinBango) { $0.person = p.integratedAtenaNumber; $0.kojinBango = newNumber }, sequence: 21)
        let r = try #require(try s.person(p.integratedAtenaNumber)?.resident())
        #expect(r.kojinBango == newNumber && r.formerKojinBango == [p.kojinBango])
        #expect(s.byKojinBango(p.kojinBango)?.record == s.byKojinBango(newNumber)?.record)
        #expect(code { _ = try s.applying(event(.changeKojinBango) { $0.person = people[4].integratedAtenaNumber; $0.kojinBango = newNumber }, sequence: 22) } == .alreadyExists)
    }

    @Test func removalKeepsAJohyoAndOnlyJohyoArePurged() throws {
        var s = try loaded()
        let p = people[6]
        #expect(code { _ = try s.applying(event(.purge) { $0.persons = [p.integratedAtenaNumber] }, sequence: 21) } == .failedPrecondition)
        #expect(code { _ = try s.applying(event(.remove) { $0.person = p.integratedAtenaNumber; $0.reason = .tennyu }, sequence: 21) } == .invalidArgument)
        s = try s.applying(event(.remove) { $0.person = p.integratedAtenaNumber; $0.reason = .shibou }, sequence: 21)
        let johyo = try #require(try s.person(p.integratedAtenaNumber)?.resident())
        #expect(johyo.removalReason == .shibou && johyo.removedOn == CalendarDate(2026, 11, 1))
        #expect(code { _ = try s.applying(event(.changeHousehold) { $0.person = p.integratedAtenaNumber; $0.householdNumber = "H1"; $0.relationship = "子" }, sequence: 22) } == .failedPrecondition)
        s = try s.applying(event(.purge) { $0.persons = [p.integratedAtenaNumber] }, sequence: 22)
        #expect(s.person(p.integratedAtenaNumber) == nil && s.byKojinBango(p.kojinBango) == nil && s.count == 19)
    }

    @Test func householdChange() throws {
        var s = try loaded()
        let p = people[7]
        s = try s.applying(event(.changeHousehold) { $0.person = p.integratedAtenaNumber; $0.householdNumber = "HNEW"; $0.relationship = "世帯主" }, sequence: 21)
        #expect(s.household("HNEW").count == 1)
        #expect(!s.household(p.householdNumber).contains { (try? $0.entry.resident().integratedAtenaNumber) == p.integratedAtenaNumber })
    }

    @Test func versionsAreIndependent() throws {
        let v1 = try loaded()
        let v2 = try v1.applying(event(.remove) { $0.person = people[0].integratedAtenaNumber; $0.reason = .shibou }, sequence: 21)
        #expect(v1.person(people[0].integratedAtenaNumber)?.isRemoved == false)
        #expect(v2.person(people[0].integratedAtenaNumber)?.isRemoved == true)
        #expect(v1.sequence == 20 && v2.sequence == 21)
    }
}

@Suite struct InPlaceApplyTests {
    let people = currentResidents(12, seed: 5)

    /// `apply` changes the value in place, so every check must come before the first
    /// change: a refused event of each kind leaves the register exactly as it was.
    @Test func aRefusedEventChangesNothing() throws {
        var s = RegisterState(tenant: "012041")
        for (i, r) in people.enumerated() { try s.apply(recordEvent(r), sequence: UInt64(i + 1)) }
        try s.apply(event(.remove) { $0.person = people[0].integratedAtenaNumber; $0.reason = .shibou }, sequence: 13)
        var duplicateAtena = people[1]
        duplicateAtena.atenaNumber = people[2].atenaNumber
        var movedAndRenamed = people[3]
        movedAndRenamed.name?.kanji?.text = "別名"
        let refused: [RegisterEvent] = [
            recordEvent(people[1]),  // already resident
            event(.correct) { $0.resident = duplicateAtena },  // 宛名番号 of another person
            event(.moveWithin) { $0.resident = movedAndRenamed },  // 転居 changing a name
            event(.changeKojinBango) { $0.person = people[4].integratedAtenaNumber; $0.kojinBango = people[5].kojinBango },
            event(.changeHousehold) { $0.person = people[6].integratedAtenaNumber; $0.householdNumber = "" },
            // One 除票 and one current record: the whole purge is refused, the 除票 stays.
            event(.purge) { $0.persons = [people[0].integratedAtenaNumber, people[7].integratedAtenaNumber] },
            event(.purge) { $0.persons = [people[0].integratedAtenaNumber, "NOSUCHPERSON"] },
            event(.remove) { $0.person = people[8].integratedAtenaNumber; $0.reason = .tennyu },
        ]
        for e in refused {
            var copy = s
            #expect(code { try copy.apply(e, sequence: 14) } != nil)
            #expect(copy == s, "a refused \(e.kind) changed the register")
            #expect(try copy.indexesAreConsistent())
        }
    }
}

@Suite struct PackedIDTests {
    @Test func roundTripsAndKeepsTheStringOrder() {
        let ids = ["1", "0000000000000001", "A12", "a12", "123456789012", "ZZZZZZZZZZZZZZZZ", "20240101", "2024010"]
        for s in ids { #expect(PackedID(s)?.string == s) }
        let packed = ids.map { PackedID($0)! }
        #expect(packed.sorted().map(\.string) == ids.sorted())
        #expect(Set(packed).count == ids.count)
    }

    @Test func refusesWhatIsNotAnIdentifier() {
        for bad in ["", "12345678901234567", "12-3", "１２３", "a b", "\u{0}1"] { #expect(PackedID(bad) == nil, "\(bad)") }
        "42".withCString { #expect(PackedID(cString: $0)?.string == "42") }
        "12345678901234567".withCString { #expect(PackedID(cString: $0) == nil) }
    }
}
