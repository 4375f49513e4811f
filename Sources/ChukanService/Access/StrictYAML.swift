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

    /// The YAML document as maps, lists and scalars. A key given twice in one map is
    /// refused (by Yams' parser), and said so: which of the two a reader would keep is luck.
    public static func document(_ text: String, source path: String, what: String) throws -> Any? {
        do {
            return try Yams.load(yaml: text)
        } catch let YamlError.duplicatedKeysInMapping(duplicates, _) {
            throw YAMLFileError("\(what) \(path): a key is given twice in one map (\(duplicates.prefix(3).joined(separator: ", ")))")
        } catch {
            throw YAMLFileError("\(what) \(path) is not valid YAML")
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
