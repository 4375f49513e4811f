import HashTreeCollections

/// The map a register version keeps each index (and its persons) in: a large flat
/// hash table that versions share untouched (`FlatTable`), plus the changes made since
/// it was built, in a small persistent hash trie (`TreeDictionary`, nil marking a
/// removed key). A write copies only the short path it changes in the small trie, so
/// versions stay cheap to make and to hold; a lookup checks the small trie, mostly in
/// cache, then probes the flat table, usually one cache line — where one big trie costs
/// a cache miss per level.
///
/// A lookup of a key that was not changed — nearly all of them — should not pay for
/// the trie's four or five levels of cache misses: a small Bloom filter of the changed
/// keys (8 bits a key, two bits in one word, about 5 % false positives) answers "not
/// changed" first. It is a value like the rest, so a version never sees another's bits;
/// a writer copies it (tens of KB) once per version it publishes.
///
/// When the changes outgrow a sixteenth of the table, the writer folds them into a new
/// table (`compact`): a copy of the slots plus the changes, or a rehash when it must
/// grow. That costs one pass over the table every size/16 writes (amortised, a few
/// slot copies a write); readers holding older versions keep the table they had.
public struct LayeredMap<Key: FlatHashable, Value: Sendable>: Sendable, Sequence {
    private var base: FlatTable<Key, Value>
    private var changes: TreeDictionary<Key, Value?> = [:]
    /// Bloom filter of the keys in `changes`; sized for `changeLimit` at each compaction.
    private var changed: ContiguousArray<UInt64> = []
    public private(set) var count: Int

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
    public var pendingChanges: Int { changes.count }

    /// Whether `key` is present, without copying its value.
    public func contains(_ key: Key) -> Bool {
        if mayHaveChanged(key), let changed = changes[key] { return changed != nil }
        return base.contains(key)
    }

    /// Changes are folded into a new table beyond this many.
    private var changeLimit: Int { Swift.max(1024, base.count >> 4) }

    /// The filter's word for `key` and its two bits (from hash bits the table's home slot,
    /// which takes the high ones, does not use).
    @inline(__always)
    private static func filterPosition(_ key: Key, words: Int) -> (word: Int, bits: UInt64) {
        let h = key.flatHash
        return (Int(truncatingIfNeeded: h >> 12) & (words - 1), 1 << (h & 63) | 1 << ((h >> 6) & 63))
    }

    @inline(__always)
    private func mayHaveChanged(_ key: Key) -> Bool {
        guard !changes.isEmpty else { return false }
        let (word, bits) = Self.filterPosition(key, words: changed.count)
        return changed[word] & bits == bits
    }

    private mutating func noteChanged(_ key: Key) {
        if changed.isEmpty {
            // 8 bits a key up to the limit, in a power of two of words.
            var words = 16
            while words * 64 < changeLimit * 8 { words <<= 1 }
            changed = ContiguousArray(repeating: 0, count: words)
        }
        let (word, bits) = Self.filterPosition(key, words: changed.count)
        changed[word] |= bits
    }

    public subscript(key: Key) -> Value? {
        get {
            if mayHaveChanged(key), let changed = changes[key] { return changed }
            return base[key]
        }
        set {
            let had = contains(key)
            if let newValue {
                noteChanged(key)
                changes.updateValue(newValue, forKey: key)
                if !had { count += 1 }
            } else if had {
                if base.contains(key) {
                    noteChanged(key)
                    changes.updateValue(nil, forKey: key)
                } else {
                    changes.removeValue(forKey: key)
                }
                count -= 1
            }
            if changes.count > changeLimit { compact() }
        }
    }

    /// Folds the changes into a new table. Public so that a loader can leave a fully
    /// flat map behind; writers need not call it.
    public mutating func compact() {
        guard !changes.isEmpty else { return }
        var table = base
        base = FlatTable()  // this value's reference dropped: a table no version shares changes in place
        if FlatTable<Key, Value>.limit(table.slots.count) < count {
            table.grow(toHold: count)
        }
        for (key, value) in changes { table.set(key, value) }
        changes = [:]
        changed = []
        base = table
    }

    public struct Iterator: IteratorProtocol {
        private let map: LayeredMap
        private var slot = 0
        private var changed: TreeDictionary<Key, Value?>.Iterator

        init(_ map: LayeredMap) {
            self.map = map
            changed = map.changes.makeIterator()
        }

        /// The table's entries not overridden by a change (the filter answers for most
        /// without the trie), then the changes that set a value.
        public mutating func next() -> (key: Key, value: Value)? {
            while slot < map.base.slots.count {
                defer { slot += 1 }
                if let entry = map.base.slots[slot], !map.mayHaveChanged(entry.key) || map.changes[entry.key] == nil { return entry }
            }
            while let (key, value) = changed.next() {
                if let value { return (key, value) }
            }
            return nil
        }
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
