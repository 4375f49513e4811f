import ChukanProto
import ChukanRegister
import Testing

/// A key whose hash takes only a few values, so that probe runs are long, wrap around
/// the end of the table and are cut by removals in the middle.
private struct CrowdedKey: FlatHashable {
    var n: Int
    var flatHash: UInt64 { UInt64(n % 5) &* 0x3333_3333_3333_3333 }
}

/// `LayeredMap` against a plain `Dictionary` through random inserts, updates and
/// removals, across many foldings of its changes into new tables, while older versions
/// are held and must not change.
@Suite struct LayeredMapTests {
    func check<K, V: Equatable>(_ map: LayeredMap<K, V>, equals model: [K: V], _ note: String) {
        #expect(map.count == model.count, "\(note): count")
        var seen = 0
        for (k, v) in map {
            #expect(model[k] == v, "\(note): iterated entry")
            seen += 1
        }
        #expect(seen == model.count, "\(note): iteration visits each entry once")
        for (k, v) in model where map[k] != v { Issue.record("\(note): lookup of a present key"); break }
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func matchesADictionaryAcrossCompactions(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var map = LayeredMap<PackedID, Int>()
        var model: [PackedID: Int] = [:]
        var held: [(LayeredMap<PackedID, Int>, [PackedID: Int])] = []
        var compactions = 0
        for step in 0..<60_000 {
            let key = PackedID("K\(rng.next(20_000))")!
            let before = map.pendingChanges
            if rng.next(4) == 0 {
                map[key] = nil
                model[key] = nil
            } else {
                map[key] = step
                model[key] = step
            }
            if map.pendingChanges < before { compactions += 1 }
            #expect(map[key] == model[key])
            if step % 7_500 == 7_499 {
                check(map, equals: model, "step \(step)")
                held.append((map, model))
            }
        }
        #expect(compactions >= 10, "the changes were folded into new tables many times")
        for (i, (version, itsModel)) in held.enumerated() { check(version, equals: itsModel, "held version \(i)") }
        map.compact()
        #expect(map.pendingChanges == 0)
        check(map, equals: model, "after compact()")
        // Absent keys stay absent.
        for n in 20_000..<20_100 { #expect(map[PackedID("K\(n)")!] == nil) }
    }

    @Test func longProbeRunsSurviveRemovals() {
        var rng = SplitMix64(seed: 7)
        var map = LayeredMap<CrowdedKey, Int>()
        var model: [CrowdedKey: Int] = [:]
        for step in 0..<20_000 {
            let key = CrowdedKey(n: Int(rng.next(3_000)))
            if rng.next(3) == 0 {
                map[key] = nil
                model[key] = nil
            } else {
                map[key] = step
                model[key] = step
            }
            if step % 2_000 == 1_999 {
                map.compact()
                check(map, equals: model, "step \(step)")
            }
        }
        map.compact()
        check(map, equals: model, "end")
    }

    @Test func equalityIgnoresHowEntriesAreSplit() {
        var a = LayeredMap<PackedID, Int>(), b = LayeredMap<PackedID, Int>()
        for n in 0..<3_000 { a[PackedID("A\(n)")!] = n }
        for n in (0..<3_000).reversed() { b[PackedID("A\(n)")!] = n }
        b.compact()
        #expect(a == b)
        b[PackedID("A5")!] = -1
        #expect(a != b)
        b[PackedID("A5")!] = 5
        b[PackedID("A3000")!] = 1
        #expect(a != b)
    }
}
