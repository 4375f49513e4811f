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
            let prepared = PreparedResident(e)
            if let prepared { #expect(try RegisterEvent(protobuf: prepared.eventBytes) == e, "step \(step)") }
            let b = Result { try fast.apply(e, sequence: sequence + 1, prepared: prepared) }
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
        #expect(try fast.indexesAreConsistent())
        #expect(plain == fast)
        #expect(kinds["applied", default: 0] > 150 && kinds["refused", default: 0] > 50, "\(kinds)")
    }

    /// The log's bytes for a prepared event (its resident's encoding reused, appended as
    /// field 5 after the others) decode to the event, every field of it.
    @Test func preparedEventBytesDecodeToTheEvent() throws {
        var e = recordEvent(currentResidents(1, seed: 6)[0])
        e.eventDate = CalendarDate(2026, 11, 30)
        e.notifiedOn = CalendarDate(2026, 12, 1)
        e.idempotencyKey = "retry-7"
        e.acceptedUnixMs = 1_795_000_000_000
        e.requestDigest = [UInt8](repeating: 0xA5, count: 32)
        e.resident?.name?.kanji?.text = String(repeating: "長", count: 200)  // a length of three varint bytes
        let prepared = try #require(PreparedResident(e))
        #expect(prepared.eventBytes.count > 600)
        #expect(try RegisterEvent(protobuf: prepared.eventBytes) == e)
        #expect(prepared.eventBytes.count == e.encodedBytes.count)
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
