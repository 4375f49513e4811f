import ChukanService
import Foundation
import Testing
import Yams

/// The configuration reader's YAML: values typed exactly as Yams' YAML 1.1 resolver types
/// them (without its regular expressions where they cannot match), keys compared as text.
@Suite struct StrictYAMLTests {
    /// Differential: `implicitTag` against Yams' default resolver, on edge cases and on
    /// random text from the characters the resolver's rules care about.
    @Test func untaggedScalarsGetYamsTypes() {
        func yams(_ s: String) -> Yams.Tag.Name { Resolver.default.resolveTag(of: .scalar(.init(s))) }
        var cases = ["", "~", "null", "Null", "NULL", "nULL", "yes", "Yes", "YES", "yES", "no", "on", "OFF", "y", "n",
                     "true", "false", "True", "tRUE", "<<", "=", "12", "-3", "+7", "0x1F", "0o17", "017", "0b101", "1_000",
                     "1:30", "1:30:00.5", "1.5", ".5", "1e3", ".inf", "-.Inf", ".NaN", "2026-04-01", "2026-4-1 9:00:00",
                     "2026-04-01T09:00:00Z", "yes\n", "no\u{2028}", "null\u{85}", "\n", "\u{2028}", "true\r\n", "市町村長",
                     "LG012041", "name-and-birth", "yes ", " yes", "nulls", "J0001", "-", ".", "+", "0", "00", "1:60"]
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("yesnotrufalNULlYOFTE~<=+-.0123456789_:abxoe \n\r\u{85}\u{2028}日")
        for _ in 0..<20_000 {
            cases.append(String((0..<Int.random(in: 0...7, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }))
        }
        for s in cases {
            #expect(StrictYAML.implicitTag(s) == yams(s), "\(s.debugDescription)")
        }
    }

    @Test func valuesHaveTheirYAMLTypes() throws {
        let text = """
            a: yes
            b: "yes"
            c: !!str yes
            d: 0x1F
            e: 1.5
            f: ~
            g: 12
            h: 市町村長
            i: 'no'
            j: 010
            k: !!int "12"
            """
        let map = try #require(try StrictYAML.document(text, source: "t", what: "test") as? [String: Any])
        #expect(map["a"] as? Bool == true)
        #expect(map["b"] as? String == "yes")
        #expect(map["c"] as? String == "yes")
        #expect(map["d"] as? Int == 31)
        #expect(map["e"] as? Double == 1.5)
        #expect(map.keys.contains("f") && map["f"] is NSNull)
        #expect(map["g"] as? Int == 12)
        #expect(map["h"] as? String == "市町村長")
        #expect(map["i"] as? String == "no")
        // As Yams reads them: a leading zero is octal, and a quoted scalar is never a number.
        #expect(map["j"] as? Int == 8)
        #expect(map["k"] as? String == "12")
    }

    /// The map's keys become text, so `1` and `"1"` (or `no` and `"no"`) are one key given
    /// twice: refused, rather than one silently replacing the other.
    @Test func keysThatReadAsTheSameTextAreDuplicates() {
        for text in ["1: a\n\"1\": b\n", "no: a\n'no': b\n", "x: 1\nx: 2\n", "!!int 1: a\n1: b\n"] {
            #expect(throws: YAMLFileError.self, "\(text)") { _ = try StrictYAML.document(text, source: "t", what: "test") }
        }
    }

    /// Found by fuzzing: Yams' duplicate-key check sorted nested complex keys with a
    /// comparison taking 2^depth steps (the fuzz inputs ran for over ten minutes). Keys that
    /// are not text are now refused at the first one, and nesting is bounded.
    @Test(.timeLimit(.minutes(1))) func nestedComplexKeysAreRefusedAtOnce() throws {
        let deep = String(repeating: "? - ", count: 300) + "a\n: b\n" + String(repeating: "? - ", count: 300) + "a\n: b\n"
        for text in [deep, "? [a, b]\n: 1\n", "a:\n  ? {x: 1}\n  : y\n"] {
            #expect {
                _ = try StrictYAML.document(text, source: "t", what: "test")
            } throws: { "\($0)".contains("is not plain text") }
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let folder = "\(root)/Fuzz/regressions/permission-list"
        let found = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("yams-duplicate-key-sort") }
        #expect(found.count == 2)
        for name in found {
            let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(name)")), as: UTF8.self)
            #expect(throws: YAMLFileError.self, "\(name)") { _ = try StrictYAML.document(text, source: "t", what: "test") }
        }
    }

    @Test func nestingIsBounded() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(try StrictYAML.document(ok, source: "t", what: "test") is [Any])
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect {
            _ = try StrictYAML.document(deep, source: "t", what: "test")
        } throws: { "\($0)".contains("nested more than 64 levels") }
        // Far deeper than any stack could recurse: refused at level 65, not a crash.
        let abyss = String(repeating: "[", count: 200_000)
        #expect(throws: YAMLFileError.self) { _ = try StrictYAML.document(abyss, source: "t", what: "test") }
    }

    @Test func errorsNameTheProblemAndNeverAValue() throws {
        let cases: [(String, String)] = [
            ("a: secret-1\nb: [\n", "test t is not valid YAML (line 3)"),
            ("a: &x secret-2\nb: *x\n", "aliases (*name) are not allowed"),
            ("a: secret-3\n---\nb: 1\n", "more than one document"),
            ("top:\n  inner:\n    x: secret-4\n    x: secret-5\n", "a key is given twice in one map (top.inner.x)"),
            ("list:\n  - {k: secret-6}\n  - ? [secret-7]\n    : v\n", "a key under list[1] is not plain text"),
            // libyaml's reader (not its scanner) refuses a control character: still a line.
            ("a: 1\nb: 2\nc: secret-8\u{07}\n", "test t is not valid YAML (line 3)"),
            // A key is shown escaped and cut short.
            ("\"k\\nx\": 1\n\"k\\nx\": 2\n", #"a key is given twice in one map ("k\nx")"#),
            ("m:\n  \(String(repeating: "k", count: 100)): 1\n  \(String(repeating: "k", count: 100)): 2\n", "(m.\(String(repeating: "k", count: 48))…)"),
        ]
        for (text, message) in cases {
            do {
                _ = try StrictYAML.document(text, source: "t", what: "test")
                Issue.record("accepted \(text.debugDescription)")
            } catch {
                #expect("\(error)".contains(message), "\(error)")
                #expect(!"\(error)".contains("secret"), "\(error)")
            }
        }
        #expect(try StrictYAML.document("", source: "t", what: "test") == nil)
        #expect(try StrictYAML.document("# only a comment\n", source: "t", what: "test") == nil)
        let nested = try #require(try StrictYAML.document("a:\n  - b: [1, two, {c: ~}]\n", source: "t", what: "test") as? [String: Any])
        let list = try #require(nested["a"] as? [Any])
        let inner = try #require((list.first as? [String: Any])?["b"] as? [Any])
        #expect(inner.count == 3 && inner[0] as? Int == 1 && inner[1] as? String == "two")
        #expect((inner[2] as? [String: Any])?["c"] is NSNull)
    }
}
