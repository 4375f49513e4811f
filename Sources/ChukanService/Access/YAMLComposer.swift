import CYaml
import Foundation
import Yams

/// libyaml's event parser over a UTF-8 buffer the caller keeps alive. A class, since
/// libyaml's string input points back into the parser struct, which must not move.
final class YAMLEventReader {
    private let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
    private let ready: Bool
    private let buffer: UnsafeBufferPointer<UInt8>

    init(_ buffer: UnsafeBufferPointer<UInt8>) {
        self.buffer = buffer
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

    /// Where the error is (1-based), to point the operator at the line: the scanner and
    /// parser mark it; the reader (bad UTF-8, a control character) gives a byte offset.
    var problemLine: Int? {
        guard ready else { return nil }
        let p = parser.pointee
        switch p.error {
        case YAML_SCANNER_ERROR, YAML_PARSER_ERROR:
            return Int(p.problem_mark.line) + 1
        case YAML_READER_ERROR:
            let offset = min(Int(p.problem_offset), buffer.count)
            return buffer[..<offset].reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
        default:
            return nil
        }
    }
}

/// Builds maps (`[String: Any]`), lists (`[Any]`) and typed scalars from the events, with an
/// explicit stack rather than recursion, so depth is a counted limit, not the thread's stack.
struct YAMLComposer {
    /// An error naming the file and the problem (never a value).
    let fail: (String) -> YAMLFileError
    /// The text is not YAML; the line where libyaml stopped, if known.
    let invalid: (Int?) -> YAMLFileError

    /// A map or list being read. A class so that adding to it never copies what it holds;
    /// it knows its parent and its place there, so a path is built only for an error.
    private final class Open {
        let parent: Open?
        /// Its key in the parent map, or its index in the parent list.
        let place: String?
        let index: Int
        var map: [String: Any]?
        var list: [Any]?
        /// In a map: the key read, whose value comes next.
        var key: String?
        init(parent: Open?, isMap: Bool) {
            self.parent = parent
            place = parent?.key
            index = parent?.list?.count ?? 0
            if isMap { map = [:] } else { list = [] }
        }
        var value: Any { map ?? list ?? [] }
        var awaitsKey: Bool { map != nil && key == nil }
        /// `rows[0].item_groups`-style, keys escaped and cut short.
        var path: String {
            guard let parent else { return "" }
            let above = parent.path
            if let place { return above.isEmpty ? StrictYAML.shown(place) : "\(above).\(StrictYAML.shown(place))" }
            return "\(above)[\(index)]"
        }
        var keyPlace: String { parent == nil ? "the top" : path }
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
            guard budget >= 0 else { throw fail("more than \(StrictYAML.maximumNodes) values") }
        }
        func open(isMap: Bool) throws {
            if let top = stack.last, top.awaitsKey { throw fail("a key under \(top.keyPlace) is not plain text") }
            guard stack.count < StrictYAML.maximumDepth else {
                throw fail("nested more than \(StrictYAML.maximumDepth) levels deep")
            }
            try count()
            stack.append(Open(parent: stack.last, isMap: isMap))
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
                    guard top.map![text] == nil else {
                        let at = top.path
                        throw fail("a key is given twice in one map (\(at.isEmpty ? "" : at + ".")\(StrictYAML.shown(text)))")
                    }
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
