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

    /// The YAML document as maps (with text keys), lists and scalars. Built from Yams' node
    /// tree here rather than by `Yams.load`, which traps on a key that is not plain text
    /// (found by fuzzing: a config file must get an error, never stop the server). A key
    /// given twice in one map is refused (by Yams' parser), aliases are refused, and the
    /// document is bounded in nodes.
    public static func document(_ text: String, source path: String, what: String) throws -> Any? {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let YamlError.duplicatedKeysInMapping(duplicates, _) {
            throw YAMLFileError("\(what) \(path): a key is given twice in one map (\(duplicates.prefix(3).joined(separator: ", ")))")
        } catch {
            throw YAMLFileError("\(what) \(path) is not valid YAML")
        }
        guard let root else { return nil }
        var budget = maximumNodes
        return try plain(root, at: "", budget: &budget) { YAMLFileError("\(what) \(path): \($0)") }
    }

    /// More nodes than any configuration, policy or permission list holds.
    static let maximumNodes = 1_000_000

    private static func plain(_ node: Node, at key: String, budget: inout Int, _ fail: (String) -> YAMLFileError) throws -> Any {
        budget -= 1
        guard budget > 0 else { throw fail("more than \(maximumNodes) values") }
        switch node {
        case let .scalar(scalar):
            // Yams multiplies YAML 1.1 base-60 integers (`1:30:00`) without an overflow
            // check, so a long one traps (found by the policy fuzz target). Integers are
            // read here: decimal ones by `Int`, a base-60 one stays text (and then fails the
            // schema's type check like any other wrong value).
            if node.tag.rawValue == Tag.Name.int.rawValue {
                if let n = Int(scalar.string) { return n }
                if scalar.string.contains(":") { return scalar.string }
            }
            return Constructor.default.any(from: node)
        case let .mapping(map):
            var out: [String: Any] = [:]
            for (k, v) in map {
                guard case .scalar = k, let name = k.string else { throw fail("a key under \(key.isEmpty ? "the top" : key) is not plain text") }
                let at = key.isEmpty ? name : "\(key).\(name)"
                out[name] = try plain(v, at: at, budget: &budget, fail)
            }
            return out
        case let .sequence(items):
            var out: [Any] = []
            for (i, item) in items.enumerated() { out.append(try plain(item, at: "\(key)[\(i)]", budget: &budget, fail)) }
            return out
        case .alias:
            throw fail("aliases (*name) are not allowed")
        }
    }

    public static func read(path: String, what: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw YAMLFileError("\(what) \(path) is missing or unreadable")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw YAMLFileError("\(what) \(path) is not UTF-8") }
        return text
    }

    static func unknownKeys(_ node: Any?, allowed: [String: Any], at prefix: String) -> [String] {
        guard let map = node as? [String: Any] else { return [] }
        var out: [String] = []
        for (key, value) in map.sorted(by: { $0.key < $1.key }) {
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
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
