import ChukanCore
import ChukanProto
import ChukanRegister
import Testing

/// A write's resident is validated, encoded and keyed before it reaches the single writer
/// (`PreparedResident`); applying with it must be indistinguishable from applying without:
/// the same answers, the same refusals, the same register, step by step.
@Suite struct PreparedResidentTests {
    @Test(arguments: [21, 22] as [UInt64])
    func applyingPreparedEqualsApplyingPlain(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let pool = currentResidents(200, seed: seed)
        var plain = RegisterState(tenant: "012041")
        var fast = plain
        var sequence: UInt64 = 0
        var kinds: [String: Int] = [:]
        for step in 0..<600 {
            let p = pool[Int(rng.next(UInt64(pool.count)))]
            let current = (try? plain.person(p.integratedAtenaNumber)?.resident()) ?? p
            let e: RegisterEvent
            switch rng.next(8) {
            case 0, 1: e = recordEvent(p)  // new, already resident, or moving back (changed by apply)
            case 2:
                var invalid = p
                invalid.kojinBango = String(p.kojinBango.dropLast()) + (p.kojinBango.last == "0" ? "1" : "0")
                e = recordEvent(invalid)  // a wrong check digit: refused where validation runs
            case 3:
                var corrected = current
                corrected.name?.kanji?.text = "修正 \(step)"
                e = event(.correct) { $0.resident = corrected }
            case 4:
                var moved = current
                moved.address = pool[Int(rng.next(UInt64(pool.count)))].address
                e = event(.moveWithin) { $0.resident = moved }
            case 5:
                var changed = current
                changed.sex = changed.sex == .male ? .female : .male  // 転居 may not change it
                e = event(.moveWithin) { $0.resident = changed }
            case 6: e = event(.remove) { $0.person = p.integratedAtenaNumber; $0.reason = .shibou }
            default: e = event(.changeHousehold) { $0.person = p.integratedAtenaNumber; $0.householdNumber = "H\(rng.next(40))"; $0.relationship = "子" }
            }
            let a = Result { try plain.apply(e, sequence: sequence + 1) }
            let b = Result { try fast.apply(e, sequence: sequence + 1, prepared: PreparedResident(e)) }
            switch (a, b) {
            case let (.success(x), .success(y)):
                #expect(x == y, "step \(step)")
                sequence += 1
                kinds["applied", default: 0] += 1
            case let (.failure(x), .failure(y)):
                #expect("\(x)" == "\(y)", "step \(step)")
                kinds["refused", default: 0] += 1
            default:
                Issue.record("step \(step): \(a) against \(b)")
            }
            if step % 25 == 24 || e.kind != .changeHousehold && e.kind != .remove {
                #expect(plain == fast, "step \(step)")
                if plain != fast { return }
            }
        }
        #expect(try fast.rebuiltIndexes() == fast.indexes)
        #expect(plain == fast)
        #expect(kinds["applied", default: 0] > 150 && kinds["refused", default: 0] > 50, "\(kinds)")
    }

    /// Events whose stored record is not their resident get nothing prepared.
    @Test func onlyEventsStoringTheirResidentArePrepared() {
        let r = currentResidents(1, seed: 5)[0]
        #expect(PreparedResident(recordEvent(r)) != nil)
        #expect(PreparedResident(event(.correct) { $0.resident = r }) != nil)
        #expect(PreparedResident(event(.remove) { $0.person = r.integratedAtenaNumber }) == nil)
        #expect(PreparedResident(event(.record)) == nil)  // no resident: apply refuses it itself
    }
}
