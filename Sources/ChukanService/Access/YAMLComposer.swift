import CYaml
import Foundation
import Yams

/// libyaml's event parser over a UTF-8 buffer the caller keeps alive. A class, since
/// libyaml's string input points back into the parser struct, which must not move.
final class YAMLEventReader {
    private let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
    private let ready: Bool

    init(_ buffer: UnsafeBufferPointer<UInt8>) {
        ready = yaml_parser_initialize(parser) == 1
        if ready {
            yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
            yaml_parser_set_input_string(parser, buffer.baseAddress, buffer.count)
        }
    }

    deinit {
        if ready { yaml_parser_delete(parser) }
        parser.deallocate()
    }

    /// The next event, which the caller frees with `yaml_event_delete`; false on a syntax error.
    func next(_ event: inout yaml_event_t) -> Bool {
        ready && yaml_parser_parse(parser, &event) == 1
    }

    /// Where the syntax error is (1-based), to point the operator at the line.
    var problemLine: Int? { ready ? Int(parser.pointee.problem_mark.line) + 1 : nil }
}

/// Builds maps (`[String: Any]`), lists (`[Any]`) and typed scalars from the events, with an
/// explicit stack rather than recursion, so depth is a counted limit, not the thread's stack.
struct YAMLComposer {
    /// An error naming the file and the problem (never a value).
    let fail: (String) -> YAMLFileError
    /// The text is not YAML; the line where libyaml stopped, if known.
    let invalid: (Int?) -> YAMLFileError

    /// A map or list being read. A class so that adding to it never copies what it holds.
    private final class Open {
        let at: String
        var map: [String: Any]?
        var list: [Any]?
        /// In a map: the key read, whose value comes next.
        var key: String?
        init(at: String, isMap: Bool) {
            self.at = at
            if isMap { map = [:] } else { list = [] }
        }
        var value: Any { map ?? list ?? [] }
        /// Where the next value sits, for error messages.
        var childPath: String {
            if let key { return at.isEmpty ? key : "\(at).\(key)" }
            return "\(at)[\(list?.count ?? 0)]"
        }
        var awaitsKey: Bool { map != nil && key == nil }
        var keyPlace: String { at.isEmpty ? "the top" : at }
    }

    func compose(_ reader: YAMLEventReader) throws -> Any? {
        var stack: [Open] = []
        var root: Any?
        var documents = 0
        var budget = StrictYAML.maximumNodes
        var event = yaml_event_t()

        func place(_ value: Any) {
            guard let top = stack.last else { root = value; return }
            if let key = top.key {
                top.map![key] = value
                top.key = nil
            } else {
                top.list!.append(value)
            }
        }
        func count() throws {
            budget -= 1
            guard budget > 0 else { throw fail("more than \(StrictYAML.maximumNodes) values") }
        }
        func open(isMap: Bool) throws {
            if let top = stack.last, top.awaitsKey { throw fail("a key under \(top.keyPlace) is not plain text") }
            guard stack.count < StrictYAML.maximumDepth else {
                throw fail("nested more than \(StrictYAML.maximumDepth) levels deep")
            }
            try count()
            stack.append(Open(at: stack.last?.childPath ?? "", isMap: isMap))
        }

        while true {
            guard reader.next(&event) else { throw invalid(reader.problemLine) }
            defer { yaml_event_delete(&event) }
            switch event.type {
            case YAML_STREAM_START_EVENT, YAML_DOCUMENT_END_EVENT:
                continue
            case YAML_STREAM_END_EVENT:
                return root
            case YAML_DOCUMENT_START_EVENT:
                documents += 1
                guard documents == 1 else { throw fail("more than one document") }
            case YAML_ALIAS_EVENT:
                throw fail("aliases (*name) are not allowed")
            case YAML_SCALAR_EVENT:
                try count()
                let scalar = event.data.scalar
                let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
                if let top = stack.last, top.awaitsKey {
                    // Keys compare as text, whatever their tag or quotes: `1` and `"1"` are one key.
                    guard top.map![text] == nil else { throw fail("a key is given twice in one map (\(top.at.isEmpty ? text : "\(top.at).\(text)"))") }
                    top.key = text
                    continue
                }
                let tag = scalar.tag.map { String(cString: $0) }
                let style = Node.Scalar.Style(rawValue: numericCast(scalar.style.rawValue)) ?? .any
                place(StrictYAML.typedScalar(text, tag: tag, quoted: scalar.quoted_implicit == 1, style: style))
            case YAML_SEQUENCE_START_EVENT:
                try open(isMap: false)
            case YAML_MAPPING_START_EVENT:
                try open(isMap: true)
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let done = stack.popLast() else { throw invalid(nil) }
                place(done.value)
            default:
                throw invalid(nil)
            }
        }
    }
}
