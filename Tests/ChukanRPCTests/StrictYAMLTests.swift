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
    }

    /// The map's keys become text, so `1` and `"1"` (or `no` and `"no"`) are one key given
    /// twice: refused, rather than one silently replacing the other.
    @Test func keysThatReadAsTheSameTextAreDuplicates() {
        for text in ["1: a\n\"1\": b\n", "no: a\n'no': b\n", "x: 1\nx: 2\n", "!!int 1: a\n1: b\n"] {
            #expect(throws: YAMLFileError.self, "\(text)") { _ = try StrictYAML.document(text, source: "t", what: "test") }
        }
    }
}
