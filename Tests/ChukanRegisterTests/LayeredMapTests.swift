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

    /// A writer that publishes a version every few writes, as the tenant's writer does
    /// after each group commit: each publication seals the open layer, layers merge, and
    /// every version — the last few held, one kept from long ago — must keep reading
    /// exactly what it held, whatever the writer did after it.
    @Test(arguments: [4, 5] as [UInt64])
    func publishedVersionsKeepTheirLayers(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var map = LayeredMap<PackedID, Int>()
        for n in 0..<4_000 { map[PackedID("K\(n)")!] = -n }
        map.compact()
        var model = Dictionary(uniqueKeysWithValues: (0..<4_000).map { (PackedID("K\($0)")!, -$0) })
        var recent: [(LayeredMap<PackedID, Int>, [PackedID: Int])] = []
        var old: (LayeredMap<PackedID, Int>, [PackedID: Int])? = nil
        var mostLayers = 0
        var step = 0
        while step < 40_000 {
            // A batch of 1-64 writes, then a version is published (a copy held).
            for _ in 0..<(1 + Int(rng.next(64))) {
                let key = PackedID("K\(rng.next(6_000))")!
                if rng.next(5) == 0 {
                    map[key] = nil
                    model[key] = nil
                } else {
                    map[key] = step
                    model[key] = step
                }
                #expect(map[key] == model[key])
                step += 1
            }
            recent.append((map, model))
            if recent.count > 3 { recent.removeFirst() }
            if old == nil && step > 20_000 { old = (map, model) }
            mostLayers = max(mostLayers, map.changeLayers)
            if recent.count == 3 && rng.next(50) == 0 {
                for (i, (version, itsModel)) in recent.enumerated() { check(version, equals: itsModel, "step \(step), recent \(i)") }
            }
        }
        #expect(mostLayers >= 4, "publications made several layers")
        #expect(mostLayers <= 20, "merging kept the layers few")
        if let (version, itsModel) = old { check(version, equals: itsModel, "version held from step 20,000") }
        check(map, equals: model, "the writer's copy")
        map.compact()
        #expect(map.changeLayers == 0)
        check(map, equals: model, "after compact()")
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
