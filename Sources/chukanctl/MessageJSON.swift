import ChukanCore
import ChukanProto
import ChukanService
import Foundation

/// A generated message as JSON-ready values, by reflection: field names in snake_case as
/// in the .proto, enums by case name, bytes as hex, unset messages and empty values left
/// out. For printing answers and disclosures; not a wire format.
func jsonValue(_ value: Any) -> Any? {
    let mirror = Mirror(reflecting: value)
    switch value {
    case let s as String: return s.isEmpty ? nil : s
    case let b as Bool: return b ? true : nil
    case let n as UInt32: return n == 0 ? nil : Int64(n)
    case let n as Int32: return n == 0 ? nil : Int64(n)
    case let n as UInt64: return n == 0 ? nil : n
    case let n as Int64: return n == 0 ? nil : n
    case let n as Int: return n == 0 ? nil : n
    case let d as Double: return d == 0 ? nil : d
    case let bytes as [UInt8]: return bytes.isEmpty ? nil : Hex.encode(bytes)
    default: break
    }
    if mirror.displayStyle == .optional {
        guard let child = mirror.children.first else { return nil }
        return jsonValue(child.value)
    }
    if mirror.displayStyle == .collection {
        let items = mirror.children.compactMap { jsonValue($0.value) }
        return items.isEmpty ? nil : items
    }
    // An item group by its permission-list name, as --group and audit query spell it.
    if let group = value as? ItemGroup { return group == .itemGroupUnspecified ? nil : group.listName }
    if mirror.displayStyle == .enum || (mirror.children.isEmpty && mirror.displayStyle != .struct) {
        let name = String(describing: value)
        return name.hasSuffix("Unspecified") ? nil : name
    }
    var out: [String: Any] = [:]
    for child in mirror.children {
        guard let label = child.label, let v = jsonValue(child.value) else { continue }
        out[snakeCase(label)] = v
    }
    return out.isEmpty ? nil : out
}

func snakeCase(_ s: String) -> String {
    var out = ""
    for c in s {
        if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) }
    }
    return out
}

/// A JSON-ready value on one line for people: maps in braces with sorted keys, lists in brackets.
func plainText(_ v: Any) -> String {
    if let d = v as? [String: Any] { return "{" + d.sorted(by: { $0.key < $1.key }).map { "\($0.key): \(plainText($0.value))" }.joined(separator: ", ") + "}" }
    if let a = v as? [Any] { return "[" + a.map(plainText).joined(separator: ", ") + "]" }
    return "\(v)"
}
