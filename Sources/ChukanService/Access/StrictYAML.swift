import Foundation
import Yams

/// Reads a YAML file for configuration: a misspelt key would silently leave a default in
/// force, so keys not in `allowed` (nested maps list theirs) are refused. Errors name
/// the file and the key, never a value.
public enum StrictYAML {
    public static func load(path: String, allowed: [String: Any], what: String) throws -> Any? {
        let text = try read(path: path, what: what)
        let node: Any?
        do {
            node = try Yams.load(yaml: text)
        } catch {
            throw YAMLFileError("\(what) \(path) is not valid YAML")
        }
        if let unknown = unknownKeys(node, allowed: allowed, at: "").first {
            throw YAMLFileError("\(what) \(path): unknown key \(unknown)")
        }
        return node
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
