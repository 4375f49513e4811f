import Synchronization

/// The map a register version keeps each index (and its persons) in: a large flat
/// hash table that versions share untouched (`FlatTable`), plus the changes made since
/// it was built, in a few small flat tables (layers, nil marking a removed key). A
/// lookup of a key that was not changed — nearly all of them — is one probe of the big
/// table, usually one cache line, after a Bloom filter of the changed keys (8 bits a
/// key, two bits in one word, about 5 % false positives) has said "not changed"; a
/// changed key is found in the layers, newest first.
///
/// Writes go into the newest layer, in place, while no other version holds it; once a
/// version that holds it is published, the next write seals it and opens a new one.
/// So a version costs the writer a copy of the short list of layers (the filter is
/// shared, see `ChangeFilter`), never a copy of what a write touches — a persistent
/// trie here copied a path of 32-wide nodes for every write and freed the old path with
/// the old version, which was most of a durable write's cost. Sealed layers are merged
/// while the older of the last two is at most twice the newer (a binary counter), so a
/// key is copied a few times before the table takes it and there are few layers.
///
/// When the changes outgrow a quarter of the table, the writer folds them into a new
/// table (`compact`): a copy of the slots plus the changes, or a rehash when it must
/// grow. That costs one pass over the table every size/4 writes (amortised, a few slot
/// copies a write); readers holding older versions keep the table they had.
public struct LayeredMap<Key: FlatHashable, Value: Sendable>: Sendable, Sequence {
    private var base: FlatTable<Key, Value>
    /// The changes since `base` was built, oldest first, each a small flat table (nil
    /// marking a removed key). Only the last may change, and only while no other version
    /// holds it; a writer that finds it shared starts a new one.
    private var deltas: ContiguousArray<Delta> = []
    /// Entries in all of `deltas` (a key changed in two counts twice).
    private var changedEntries = 0
    /// The keys in any of `deltas` (and perhaps in later versions' layers); made for
    /// `changeLimit` keys at the first change after a compaction.
    private var changed: ChangeFilter?
    public private(set) var count: Int

    /// One layer of changes. Changed only while uniquely referenced (the writer's open
    /// layer before a version that holds it is published); immutable once shared.
    final class Delta: @unchecked Sendable {
        var table: FlatTable<Key, Value?>
        init(_ table: FlatTable<Key, Value?>) { self.table = table }
    }

    public init() {
        base = FlatTable()
        count = 0
    }

    /// A map holding what `table` holds, with no changes beside it (a loader's).
    init(_ table: FlatTable<Key, Value>) {
        base = table
        count = table.count
    }

    public var isEmpty: Bool { count == 0 }

    /// Changes not yet folded into the table (for tests and figures).
    public var pendingChanges: Int { changedEntries }

    /// Layers of changes beside the table (for tests and figures).
    public var changeLayers: Int { deltas.count }

    /// Whether `key` is present, without copying its value.
    public func contains(_ key: Key) -> Bool {
        if let change = change(key) { return change != nil }
        return base.contains(key)
    }

    /// Changes are folded into a new table beyond this many.
    private var changeLimit: Int { Swift.max(1024, base.count >> 2) }

    @inline(__always)
    private func mayHaveChanged(_ key: Key) -> Bool {
        guard !deltas.isEmpty, let changed else { return false }
        return changed.mayContain(key.flatHash)
    }

    /// The newest change of `key`: nil when none, `.some(nil)` when it was removed.
    @inline(__always)
    private func change(_ key: Key) -> Value?? {
        guard mayHaveChanged(key) else { return nil }
        var i = deltas.count - 1
        while i >= 0 {
            if let change = deltas[i].table[key] { return change }
            i -= 1
        }
        return nil
    }

    private mutating func noteChanged(_ key: Key) {
        if changed == nil { changed = ChangeFilter(keys: changeLimit) }
        changed!.insert(key.flatHash)
    }

    public subscript(key: Key) -> Value? {
        get {
            if let change = change(key) { return change }
            return base[key]
        }
        set {
            let had = contains(key)
            if let newValue {
                record(key, newValue)
                if !had { count += 1 }
            } else if had {
                record(key, nil)  // a removal is kept as a change until the next compaction
                count -= 1
            }
            if changedEntries > changeLimit { compact() }
        }
    }

    /// Writes a change into the open layer, opening one when the last is shared.
    private mutating func record(_ key: Key, _ value: Value?) {
        noteChanged(key)
        if deltas.isEmpty || !isKnownUniquelyReferenced(&deltas[deltas.count - 1]) { openLayer() }
        let open = deltas[deltas.count - 1]
        let before = open.table.count
        open.table.set(key, .some(value))
        changedEntries += open.table.count - before
    }

    /// Seals the last layer and opens a new one. Sealed layers are merged while the
    /// older of the last two is at most twice the newer, so sizes at least double from
    /// newest to oldest: a key is copied a logarithmic number of times before it is
    /// folded into the table, and a lookup of a changed key checks few layers.
    private mutating func openLayer() {
        while deltas.count >= 2 && deltas[deltas.count - 2].table.count <= 2 * deltas[deltas.count - 1].table.count {
            let newer = deltas.removeLast(), older = deltas.removeLast()
            var merged = older.table
            merged.grow(toHold: older.table.count + newer.table.count)
            for case let slot? in newer.table.slots { merged.set(slot.key, .some(slot.value)) }
            changedEntries += merged.count - older.table.count - newer.table.count
            deltas.append(Delta(merged))
        }
        deltas.append(Delta(FlatTable(expected: 16)))
    }

    /// Folds the changes into a new table. Public so that a loader can leave a fully
    /// flat map behind; writers need not call it.
    public mutating func compact() {
        guard !deltas.isEmpty else { return }
        var table = base
        base = FlatTable()  // this value's reference dropped: a table no version shares changes in place
        if FlatTable<Key, Value>.limit(table.slots.count) < count {
            table.grow(toHold: count)
        }
        for delta in deltas {
            for case let slot? in delta.table.slots { table.set(slot.key, slot.value) }
        }
        deltas = []
        changedEntries = 0
        changed = nil
        base = table
    }

    public struct Iterator: IteratorProtocol {
        private let map: LayeredMap
        private var slot = 0
        /// The layer walked after the table, newest first, and the slot in it.
        private var layer: Int
        private var layerSlot = 0

        init(_ map: LayeredMap) {
            self.map = map
            layer = map.deltas.count - 1
        }

        /// The table's entries no change overrides (the filter answers for most without
        /// looking at the layers), then each layer's entries no newer layer overrides.
        public mutating func next() -> (key: Key, value: Value)? {
            while slot < map.base.slots.count {
                defer { slot += 1 }
                if let entry = map.base.slots[slot], map.change(entry.key) == nil { return entry }
            }
            while layer >= 0 {
                let slots = map.deltas[layer].table.slots
                while layerSlot < slots.count {
                    defer { layerSlot += 1 }
                    guard let entry = slots[layerSlot], let value = entry.value, !map.overridden(entry.key, newerThan: layer) else { continue }
                    return (entry.key, value)
                }
                layer -= 1
                layerSlot = 0
            }
            return nil
        }
    }

    /// Whether a layer newer than `layer` changes `key`.
    private func overridden(_ key: Key, newerThan layer: Int) -> Bool {
        var i = layer + 1
        while i < deltas.count {
            if deltas[i].table.contains(key) { return true }
            i += 1
        }
        return false
    }

    public func makeIterator() -> Iterator { Iterator(self) }

    public var underestimatedCount: Int { count }
}

extension LayeredMap: Equatable where Value: Equatable {
    /// Equal when they hold the same entries, however those are split between table and changes.
    public static func == (a: LayeredMap, b: LayeredMap) -> Bool {
        a.count == b.count && a.allSatisfy { b[$0.key] == $0.value }
    }
}

/// A Bloom filter of the keys changed since a table was built (8 bits a key, two bits
/// in one word, about 5 % false positives), shared by every version made from that
/// table rather than copied into each. The writer only ever sets bits, so a version may
/// see bits of changes made after it — a false positive: it looks in its own layers and
/// finds nothing — but never lacks a bit of its own changes: they were set before the
/// version was published, and publishing (a lock) orders them before any reader of it.
/// Bits are set and read with relaxed atomics, so readers never wait.
final class ChangeFilter: @unchecked Sendable {
    private let words: UnsafeMutablePointer<Atomic<UInt64>>
    private let mask: Int

    init(keys: Int) {
        var count = 16
        while count * 64 < keys * 8 { count <<= 1 }
        words = .allocate(capacity: count)
        for i in 0..<count { (words + i).initialize(to: Atomic(0)) }
        mask = count - 1
    }

    deinit {
        words.deinitialize(count: mask + 1)
        words.deallocate()
    }

    /// The word for `hash` and its two bits (hash bits a table's home slot, which takes
    /// the high ones, does not use).
    @inline(__always)
    private func position(_ hash: UInt64) -> (word: Int, bits: UInt64) {
        (Int(truncatingIfNeeded: hash >> 12) & mask, 1 << (hash & 63) | 1 << ((hash >> 6) & 63))
    }

    func insert(_ hash: UInt64) {
        let (word, bits) = position(hash)
        words[word].bitwiseOr(bits, ordering: .relaxed)
    }

    @inline(__always)
    func mayContain(_ hash: UInt64) -> Bool {
        let (word, bits) = position(hash)
        return words[word].load(ordering: .relaxed) & bits == bits
    }
}
