import ChukanCore
import ChukanProto
import ChukanRegister
import Testing

@Suite struct IdentifierTests {
    @Test func myNumberCheckDigit() {
        #expect(Identifiers.myNumberProblem("983205673214") == nil)  // DOMAIN.md's example
        #expect(Identifiers.myNumberProblem("983205673215") == "check digit does not match")
        #expect(Identifiers.myNumberProblem("98320567321") == "must be 12 digits")
        #expect(Identifiers.myNumberProblem("98320567321x") == "must be 12 digits")
        // r ≤ 1 gives check digit 0.
        for body in ["00000000000", "12345678901", "99999999999"] {
            let d = Identifiers.myNumberCheckDigit(body.utf8.map { Int($0) - 48 })
            #expect(Identifiers.myNumberProblem(body + String(d)) == nil)
        }
    }

    @Test func localGovernmentCodeCheckDigit() {
        for valid in ["012041", "131016", "011002", "010006", "271004"] {
            #expect(Identifiers.localGovernmentCodeProblem(valid) == nil, "\(valid)")
        }
        #expect(Identifiers.localGovernmentCodeProblem("012042") == "check digit does not match")
        #expect(Identifiers.localGovernmentCodeProblem("01204") == "must be 6 digits")
    }

    @Test func kanaKeyFoldsVoicingSmallKanaWidthAndScript() {
        #expect(KanaKey.normalize("ヤマダ　ジロウ") == "ヤマタシロウ")
        #expect(KanaKey.normalize("やまだ じろう") == "ヤマタシロウ")
        #expect(KanaKey.normalize("ﾔﾏﾀﾞ ｼﾞﾛｳ") == "ヤマタシロウ")
        #expect(KanaKey.normalize("キョウコ") == "キヨウコ")
        #expect(KanaKey.normalize("パッチ") == "ハツチ")
        #expect(KanaKey.normalize("ヴィ") == "ウイ")
    }

    @Test func syntheticResidentsAreValidUniqueAndDeterministic() throws {
        let people = Array(SyntheticResidents(count: 3000, seed: 7))
        #expect(people.count == 3000)
        for r in people { try ResidentValidation.validate(r) }
        #expect(Set(people.map(\.kojinBango)).count == 3000)
        #expect(Set(people.map(\.juminhyoCode)).count == 3000)
        #expect(Set(people.map(\.integratedAtenaNumber)).count == 3000)
        #expect(people.contains { $0.foreign != nil })
        #expect(people.contains { $0.removalReason != .reasonUnspecified })
        #expect(Set(people.map(\.householdNumber)).count < 2000)
        #expect(people.allSatisfy { $0.address?.address?.text.hasPrefix("北海道旭川市") == true })
        #expect(Array(SyntheticResidents(count: 50, seed: 7)) == Array(people.prefix(50)))
        #expect(Array(SyntheticResidents(count: 50, seed: 8)) != Array(people.prefix(50)))
        // Round trip through protobuf-c.
        for r in people.prefix(200) { #expect(try Resident(protobuf: r.encoded()) == r) }
    }
}
