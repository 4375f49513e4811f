import ChukanCore
import ChukanProto
import ChukanRegister
import Testing

/// Random sequences of operations, accepted or refused, always leave every index equal
/// to a rebuild from the records alone.
@Suite struct IndexPropertyTests {
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func indexesEqualAFullRescan(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let pool = Array(SyntheticResidents(count: 300, seed: seed)).map { r -> Resident in
            var r = r
            r.removalReason = .reasonUnspecified
            r.removedOn = nil
            return r
        }
        var s = RegisterState(tenant: "012041")
        var sequence: UInt64 = 0
        var accepted = 0
        for step in 0..<1500 {
            let p = pool[Int(rng.next(UInt64(pool.count)))]
            let e: RegisterEvent
            switch rng.next(9) {
            case 0, 1, 2: e = recordEvent(p)
            case 3:
                var moved = (try? s.person(p.integratedAtenaNumber)?.resident()) ?? p
                moved.address = pool[Int(rng.next(UInt64(pool.count)))].address
                e = event(.moveWithin) { $0.resident = moved }
            case 4: e = event(.remove) { $0.person = p.integratedAtenaNumber; $0.reason = .shibou }
            case 5: e = event(.changeKojinBango) { $0.person = p.integratedAtenaNumber; $0.kojinBango = SyntheticResidents.myNumber(10_000 + step, seed: seed) }
            case 6: e = event(.changeHousehold) { $0.person = p.integratedAtenaNumber; $0.householdNumber = "H\(rng.next(50))"; $0.relationship = "子" }
            case 7: e = event(.purge) { $0.persons = [p.integratedAtenaNumber] }
            default: e = event(.confirmMoveOut) { $0.person = p.integratedAtenaNumber; $0.address = pool[0].address }
            }
            do {
                s = try s.applying(e, sequence: sequence + 1)
                sequence += 1
                accepted += 1
            } catch is RPCError {
                // refused: the version must be unchanged, checked below like any other
            }
            if step % 100 == 99 { #expect(try s.indexesAreConsistent(), "step \(step)") }
        }
        #expect(try s.indexesAreConsistent())
        #expect(accepted > 300)
    }
}
