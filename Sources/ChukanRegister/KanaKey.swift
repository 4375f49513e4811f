/// The search form of a kana name, as 清音化かな氏名 (本人確認情報 item 5): katakana,
/// full width, small kana made large, voiced and semi-voiced marks removed, spaces and
/// middle dots dropped. "ヤマダ　ジロウ", "やまだじろう" and "ﾔﾏﾀﾞ ｼﾞﾛｳ" all give "ヤマタシロウ".
public enum KanaKey {
    public static func normalize(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        forEachScalar(of: s) { out.append(Unicode.Scalar($0)!) }
        return String(out)
    }

    /// The scalars of `normalize(s)`, one by one, without building the string (index
    /// keys hash them straight away: a million of them at each snapshot load).
    @inline(__always)
    static func forEachScalar(of s: String, _ body: (UInt32) -> Void) {
        // Half-width katakana first: NFKC folds them to full width (with marks composed).
        for scalar in s.precomposedStringWithCompatibilityMappingForKana.unicodeScalars {
            var v = scalar.value
            if (0x3041...0x3096).contains(v) { v += 0x60 }  // hiragana → katakana
            if (0x30A0...0x30FF).contains(v) {
                v = katakana[Int(v - 0x30A0)]
                if v == 0 { continue }  // ・ and the sound marks
            } else if v == 0x3000 || v == 0x20 || v == 0xFF65 || v == 0x309B || v == 0x309C || v == 0x3099 || v == 0x309A {
                continue
            }
            body(v)
        }
    }

    /// The katakana block (U+30A0-30FF) mapped to its search form: unvoiced, small made
    /// large, 0 for what is dropped. A table, because a dictionary lookup per character
    /// cost more than the rest of building an index key.
    static let katakana: [UInt32] = (UInt32(0x30A0)...0x30FF).map { v in
        if v == 0x30FB { return 0 }
        var v = v
        if let plain = unvoiced[v] { v = plain }
        if let large = small[v] { v = large }
        return v
    }

    /// ガ→カ … ポ→ホ, ヴ→ウ.
    static let unvoiced: [UInt32: UInt32] = {
        var m: [UInt32: UInt32] = [:]
        // カ行 to ト: voiced form is the next code point.
        for base in stride(from: 0x30AB, through: 0x30C1, by: 2) { m[UInt32(base + 1)] = UInt32(base) }
        for (voiced, plain) in [(0x30C5, 0x30C4), (0x30C7, 0x30C6), (0x30C9, 0x30C8)] { m[UInt32(voiced)] = UInt32(plain) }
        // ハ行: バ = ハ+1, パ = ハ+2.
        for base in stride(from: 0x30CF, through: 0x30DB, by: 3) {
            m[UInt32(base + 1)] = UInt32(base)
            m[UInt32(base + 2)] = UInt32(base)
        }
        m[0x30F4] = 0x30A6  // ヴ → ウ
        m[0x30F7] = 0x30EF  // ヷ → ワ
        m[0x30FA] = 0x30F2  // ヺ → ヲ
        return m
    }()

    /// ァ→ア, ッ→ツ, ャ→ヤ, ヮ→ワ, ヵ→カ, ヶ→ケ.
    static let small: [UInt32: UInt32] = [
        0x30A1: 0x30A2, 0x30A3: 0x30A4, 0x30A5: 0x30A6, 0x30A7: 0x30A8, 0x30A9: 0x30AA,
        0x30C3: 0x30C4, 0x30E3: 0x30E4, 0x30E5: 0x30E6, 0x30E7: 0x30E8, 0x30EE: 0x30EF,
        0x30F5: 0x30AB, 0x30F6: 0x30B1,
    ]
}

extension String {
    /// NFKC for the half-width katakana block only (so ﾀﾞ becomes ダ); other text unchanged.
    var precomposedStringWithCompatibilityMappingForKana: String {
        guard unicodeScalars.contains(where: { (0xFF61...0xFF9F).contains($0.value) }) else { return self }
        var out = String.UnicodeScalarView()
        var pending: UInt32?
        func flush() {
            if let p = pending { out.append(Unicode.Scalar(p)!) }
            pending = nil
        }
        for s in unicodeScalars {
            let v = s.value
            if (0xFF61...0xFF9D).contains(v) || v == 0xFF70 {
                flush()
                pending = Self.halfWidthKatakana[v] ?? v
            } else if v == 0xFF9E || v == 0xFF9F {
                // Dakuten / handakuten: the marks are removed by KanaKey anyway; keep the base.
                flush()
            } else {
                flush()
                out.append(s)
            }
        }
        flush()
        return String(out)
    }

    static let halfWidthKatakana: [UInt32: UInt32] = {
        let half = Array("｡｢｣､･ｦｧｨｩｪｫｬｭｮｯｰｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝ".unicodeScalars)
        let full = Array("。「」、・ヲァィゥェォャュョッーアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン".unicodeScalars)
        var m: [UInt32: UInt32] = [:]
        for (h, f) in zip(half, full) { m[h.value] = f.value }
        return m
    }()
}
