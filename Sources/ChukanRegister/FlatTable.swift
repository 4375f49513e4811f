/// A key a `FlatTable` can place: a well-mixed 64-bit hash, cheaper than `Hasher`.
/// The keys come from the register (written by trusted systems), so the hash is not
/// seeded; a caller can only look up, never place, a key.
public protocol FlatHashable: Hashable, Sendable {
    var flatHash: UInt64 { get }
}

/// An open-addressing hash table with linear probing, stored in one array of slots
/// that each hold a key and its value side by side: a lookup of a present key usually
/// touches one cache line, where a hash trie of a million entries touches four or five
/// nodes. It is a value (the array is copy-on-write), built or changed by one writer
/// and then shared, immutable, by every register version that holds it
/// (`LayeredMap` keeps the recent changes beside it).
struct FlatTable<Key: FlatHashable, Value: Sendable>: Sendable {
    typealias Slot = (key: Key, value: Value)

    private(set) var slots: ContiguousArray<Slot?>
    private(set) var count = 0

    /// The most entries `capacity` slots may hold: two thirds, so that a probe for an
    /// absent key ends after about five slots and a present one is found in about two.
    static func limit(_ capacity: Int) -> Int { capacity * 2 / 3 }

    /// Room for `expected` entries before the next rehash, with half the slots free.
    init(expected: Int = 0) {
        slots = ContiguousArray(repeating: nil, count: max(8, expected * 2))
    }

    /// The slot where `key`'s probe starts: the hash scaled to the capacity (no modulo,
    /// so any capacity works).
    @inline(__always)
    private func home(_ hash: UInt64) -> Int {
        Int(truncatingIfNeeded: hash.multipliedFullWidth(by: UInt64(slots.count)).high)
    }

    /// The slot that holds `key`, or the empty slot where it would go. Reads only the
    /// keys of the slots it passes: copying a slot would retain its value's buffers,
    /// each a cache miss of its own.
    @inline(__always)
    private func find(_ key: Key) -> (index: Int, found: Bool) {
        slots.withUnsafeBufferPointer { p in
            let n = p.count
            var i = home(key.flatHash)
            while let k = p[i]?.key {
                if k == key { return (i, true) }
                i += 1
                if i == n { i = 0 }
            }
            return (i, false)
        }
    }

    func contains(_ key: Key) -> Bool { count > 0 && find(key).found }

    subscript(key: Key) -> Value? {
        guard count > 0 else { return nil }
        let (i, found) = find(key)
        return found ? slots[i]!.value : nil
    }

    /// Sets `key` to `value`, or removes it when `value` is nil.
    mutating func set(_ key: Key, _ value: Value?) {
        if let value {
            if Self.limit(slots.count) <= count { grow(toHold: count + 1) }
            let (i, found) = find(key)
            slots[i] = (key, value)
            if !found { count += 1 }
        } else if count > 0 {
            let (i, found) = find(key)
            if found { remove(at: i) }
        }
    }

    /// Changes the value of `key` in place (a multi-valued index adding to its list),
    /// inserting `defaultValue` first when the key is absent.
    mutating func modify(_ key: Key, default defaultValue: @autoclosure () -> Value, _ body: (inout Value) -> Void) {
        if Self.limit(slots.count) <= count { grow(toHold: count + 1) }
        let (i, found) = find(key)
        if found {
            // Take the value out so that `body` changes a uniquely held array in place.
            var value = slots[i].take()!.value
            body(&value)
            slots[i] = (key, value)
        } else {
            var value = defaultValue()
            body(&value)
            slots[i] = (key, value)
            count += 1
        }
    }

    /// Backward-shift deletion: later members of the probe run move up into the hole
    /// unless their home lies cyclically after it, so no tombstones are ever needed.
    private mutating func remove(at index: Int) {
        let n = slots.count
        var hole = index
        var j = index
        while true {
            j += 1
            if j == n { j = 0 }
            guard let key = slots[j]?.key else { break }
            let h = home(key.flatHash)
            let stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j)
            if stays { continue }
            slots[hole] = slots[j]
            hole = j
        }
        slots[hole] = nil
        count -= 1
    }

    /// Rehashes every entry into a table with room for `entries` (twice as many slots).
    mutating func grow(toHold entries: Int) {
        var bigger = FlatTable(expected: entries)
        for case let slot? in slots {
            let (i, _) = bigger.find(slot.key)
            bigger.slots[i] = slot
        }
        bigger.count = count
        self = bigger
    }
}

extension PackedID: FlatHashable {
    /// Both words mixed (murmur3's finaliser): identifiers that differ only in their last
    /// digit land far apart.
    @inlinable public var flatHash: UInt64 {
        var h = hi &* 0x9E37_79B9_7F4A_7C15 ^ lo
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
    }
}

extension SearchKey: FlatHashable {
    /// Already a hash (FNV-1a), whose high bits are weak for short keys: mixed once more.
    @inlinable public var flatHash: UInt64 {
        var h = value
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        return h
    }
}
