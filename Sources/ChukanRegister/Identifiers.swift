import ChukanCore

/// Checks on the identifiers of DOMAIN.md §4. Each returns nil when the value is valid,
/// or the reason, which never quotes the value (it may be a 個人番号).
public enum Identifiers {
    /// 個人番号: 12 digits, the last a check digit (総務省令第85号 §5): for the first 11
    /// digits, P(n) is the n-th digit from the right and Q(n) = n+1 for n ≤ 6, n-5 for
    /// n ≥ 7; r = Σ P(n)·Q(n) mod 11; the check digit is 0 if r ≤ 1, else 11 − r.
    public static func myNumberProblem(_ s: String) -> String? {
        let digits = s.utf8.map { Int($0) - 48 }
        guard digits.count == 12, digits.allSatisfy({ (0...9).contains($0) }) else { return "must be 12 digits" }
        guard digits[11] == myNumberCheckDigit(Array(digits[0..<11])) else { return "check digit does not match" }
        return nil
    }

    /// The check digit for the first 11 digits of a 個人番号.
    public static func myNumberCheckDigit(_ first11: [Int]) -> Int {
        var sum = 0
        for n in 1...11 {
            let p = first11[11 - n]
            let q = n <= 6 ? n + 1 : n - 5
            sum += p * q
        }
        let r = sum % 11
        return r <= 1 ? 0 : 11 - r
    }

    /// 地方公共団体コード: 6 digits, the last a check digit: the first five digits
    /// weighted 6,5,4,3,2; the check digit is (11 − sum mod 11) mod 10. Asahikawa: 012041.
    public static func localGovernmentCodeProblem(_ s: String) -> String? {
        let digits = s.utf8.map { Int($0) - 48 }
        guard digits.count == 6, digits.allSatisfy({ (0...9).contains($0) }) else { return "must be 6 digits" }
        guard digits[5] == localGovernmentCheckDigit(Array(digits[0..<5])) else { return "check digit does not match" }
        return nil
    }

    public static func localGovernmentCheckDigit(_ first5: [Int]) -> Int {
        let sum = zip(first5, [6, 5, 4, 3, 2]).map(*).reduce(0, +)
        return (11 - sum % 11) % 10
    }

    /// 住民票コード: 11 digits.
    public static func juminhyoCodeProblem(_ s: String) -> String? {
        s.utf8.count == 11 && s.utf8.allSatisfy({ (48...57).contains($0) }) ? nil : "must be 11 digits"
    }

    /// 宛名番号, 世帯番号, 団体内統合宛名番号: 1-16 ASCII digits or letters.
    public static func internalNumberProblem(_ s: String) -> String? {
        guard !s.isEmpty else { return "is required" }
        guard s.utf8.count <= 16, s.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }) else {
            return "must be 1-16 ASCII letters or digits"
        }
        return nil
    }
}
