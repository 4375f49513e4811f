/// Request metadata: ordered key/value pairs, as ttrpc's `repeated KeyValue`.
/// Keys compare case-insensitively (they are usually lower-case, like HTTP/2 headers).
public struct Metadata: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var pairs: [(key: String, value: String)]

    public init() { pairs = [] }
    public init(_ pairs: [(String, String)]) { self.pairs = pairs.map { (key: $0.0, value: $0.1) } }
    public init(dictionaryLiteral elements: (String, String)...) { self.init(elements) }

    public var isEmpty: Bool { pairs.isEmpty }
    public var count: Int { pairs.count }

    public mutating func add(_ key: String, _ value: String) { pairs.append((key: key, value: value)) }

    /// The first value for `key`.
    public subscript(key: String) -> String? {
        pairs.first { $0.key.lowercased() == key.lowercased() }?.value
    }

    /// Every value for `key`, in order.
    public func values(for key: String) -> [String] {
        pairs.filter { $0.key.lowercased() == key.lowercased() }.map(\.value)
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: String)]> { pairs.makeIterator() }

    public static func == (a: Metadata, b: Metadata) -> Bool {
        a.pairs.count == b.pairs.count && zip(a.pairs, b.pairs).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for p in pairs { hasher.combine(p.key); hasher.combine(p.value) }
    }
}
