import Foundation
import Yams

/// Reads a YAML file for configuration: a misspelt key would silently leave a default in
/// force, so keys not in `allowed` (nested maps list theirs) are refused. Errors name
/// the file and the key, never a value.
public enum StrictYAML {
    public static func load(path: String, allowed: [String: Any], what: String) throws -> Any? {
        try parse(read(path: path, what: what), source: path, allowed: allowed, what: what)
    }

    public static func parse(_ text: String, source path: String, allowed: [String: Any], what: String) throws -> Any? {
        let node = try document(text, source: path, what: what)
        if let unknown = unknownKeys(node, allowed: allowed, at: "").first {
            throw YAMLFileError("\(what) \(path): unknown key \(unknown)")
        }
        return node
    }

    /// The YAML document as maps (with text keys), lists and scalars, read from libyaml's
    /// events (the C parser inside Yams) rather than from Yams' node tree: Yams traps on a
    /// key that is not plain text (`Yams.load`), and its duplicate-key check sorts nested
    /// keys with a comparison that takes 2^depth steps (both found by fuzzing). Here a key
    /// must be a scalar, refused at once otherwise; keys are compared as text (`1` and `"1"`
    /// are one key, given twice); aliases are refused; one document only; nesting and node
    /// count are bounded. Values get YAML 1.1's types (`implicitTag`, Yams' constructor).
    public static func document(_ text: String, source path: String, what: String) throws -> Any? {
        let fail = { (problem: String) in YAMLFileError("\(what) \(path): \(problem)") }
        var bytes = Array(text.utf8)
        if bytes.isEmpty { bytes.append(0x0A) }  // libyaml wants a buffer; an empty one is an empty stream
        return try bytes.withUnsafeBufferPointer { buffer in
            try YAMLComposer(fail: fail, invalid: { line in
                YAMLFileError("\(what) \(path) is not valid YAML" + (line.map { " (line \($0))" } ?? ""))
            }).compose(YAMLEventReader(buffer))
        }
    }

    /// Yams' `Constructor.default` builds a new constructor (and its tables) on each use.
    /// Its tables are immutable after init, so one is shared.
    nonisolated(unsafe) static let constructor = Constructor.default

    /// More nodes than any configuration, policy or permission list holds.
    static let maximumNodes = 1_000_000
    /// Deeper than any of them nests (the policy file's deepest value is 3 levels down).
    static let maximumDepth = 64

    /// A scalar's value with its YAML 1.1 type: `tag` is the event's (nil when untagged and
    /// plain, so implicit), `quoted` when it is untagged but quoted (so text).
    static func typedScalar(_ value: String, tag: String?, quoted: Bool, style: Node.Scalar.Style) -> Any {
        let name = quoted ? Tag.Name.str : tag.map(Tag.Name.init(rawValue:))
        // Yams multiplies YAML 1.1 base-60 integers (`1:30:00`) without an overflow
        // check, so a long one traps (found by the policy fuzz target): a base-60 integer
        // stays text (and then fails the schema's type check like any other wrong value).
        let resolved = name ?? implicitTag(value)
        if resolved == .int && value.contains(":") { return value }
        return constructor.any(from: .scalar(.init(value, Tag(resolved, .basic, constructor), style)))
    }

    /// The type YAML 1.1 gives an untagged plain scalar — exactly what Yams' default resolver
    /// says, whose seven regular expressions are most of a parse's time. Text that starts
    /// with a letter can only be one of the bool and null words; text that starts with
    /// anything but a digit, sign, dot, `~`, `<`, `=` or a line break is text. The rest, and
    /// letters followed by a line break (ICU's `$` matches before a final one), go to Yams.
    public static func implicitTag(_ text: String) -> Tag.Name {
        guard let first = text.utf8.first else { return .null }
        let isLetter = (0x41...0x5A).contains(first) || (0x61...0x7A).contains(first)
        if isLetter {
            if text.utf8.allSatisfy({ (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) {
                return boolWords.contains(text) ? .bool : nullWords.contains(text) ? .null : .str
            }
            // Only a final line break could still let a word match.
            guard let last = text.utf8.last, lineBreakEnds.contains(last) else { return .str }
        } else if !regexStarts.contains(first) {
            return .str
        }
        return Resolver.default.resolveTag(of: .scalar(.init(text, Tag(.implicit, .default, constructor))))
    }

    private static let boolWords: Set<String> = ["yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE",
                                                 "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF"]
    private static let nullWords: Set<String> = ["null", "Null", "NULL"]
    /// First bytes of text a rule other than bool's and null's words may match: digits,
    /// `+ - . ~ < =`, and line breaks (ASCII ones, and the lead bytes of U+0085, U+2028/9).
    private static let regexStarts: Set<UInt8> = Set(Array("0123456789+-.~<=".utf8) + [0x0A, 0x0B, 0x0C, 0x0D, 0xC2, 0xE2])
    /// Last bytes of a line break: ASCII ones, and of U+0085, U+2028, U+2029.
    private static let lineBreakEnds: Set<UInt8> = [0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0xA8, 0xA9]

    public static func read(path: String, what: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw YAMLFileError("\(what) \(path) is missing or unreadable")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw YAMLFileError("\(what) \(path) is not UTF-8") }
        return text
    }

    /// A key as an error message shows it: escaped (a key may hold a line break) and cut
    /// short. Keys are names the schema defines, not values.
    static func shown(_ key: String) -> String {
        let cut = key.count > 48 ? String(key.prefix(48)) + "…" : key
        return cut.unicodeScalars.contains { $0.properties.generalCategory == .control || $0 == "\u{2028}" || $0 == "\u{2029}" }
            ? cut.debugDescription : cut
    }

    static func unknownKeys(_ node: Any?, allowed: [String: Any], at prefix: String) -> [String] {
        guard let map = node as? [String: Any] else { return [] }
        var out: [String] = []
        for (key, value) in map.sorted(by: { $0.key < $1.key }) {
            let path = prefix.isEmpty ? shown(key) : "\(prefix).\(shown(key))"
            guard let rule = allowed[key] else { out.append(path); continue }
            if let nested = rule as? [String: Any] { out += unknownKeys(value, allowed: nested, at: path) }
        }
        return out
    }
}

public struct YAMLFileError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}
