/// Text a caller chose, made safe to put in an error, a log line or a record: at most
/// `limit` scalars, and whitespace, controls (C0 and C1) and format characters (bidi
/// overrides, zero-width joiners: they could make a line read other than it is) as "?".
/// `keepSpaces` leaves U+0020 as it is (messages; names must stay one word).
public func printableText(_ s: String, limit: Int = 128, keepSpaces: Bool = false) -> String {
    let cut = s.unicodeScalars.prefix(limit).map { scalar -> Character in
        if keepSpaces && scalar == " " { return " " }
        let category = scalar.properties.generalCategory
        return scalar.properties.isWhitespace || category == .control || category == .format ? "?" : Character(scalar)
    }
    return String(cut)
}
