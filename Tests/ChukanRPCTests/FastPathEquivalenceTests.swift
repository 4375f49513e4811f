import ChukanCore
import ChukanProto
import ChukanProtoC
import ChukanRegister
@testable import ChukanService
import Foundation
import NIOCore
import Testing

/// The shortcuts every inquiry takes, each against the slow way it replaces: the answer
/// written from the stored bytes against decoding, masking and encoding the record; the
/// Asia/Tokyo date by arithmetic against Foundation's calendar; 符号 hex without
/// `String(format:)`.
@Suite struct FastPathEquivalenceTests {
    static let clerk = Caller(principal: "clerk", kind: .system, tenant: "012041", roles: [.clerk], certificate: "clerk", staff: nil)
    static let numberClerk = Caller(principal: "nc", kind: .system, tenant: "012041", roles: [.numberClerk], certificate: "nc", staff: nil)

    /// Residents with every number field filled in some of them: former numbers, an
    /// opaque extract, removed entries.
    static func entries() -> [PersonEntry] {
        Array(SyntheticResidents(count: 400, seed: 77)).enumerated().map { i, base in
            var r = base
            if i % 3 == 0 { r.formerKojinBango = ["123456789018", r.kojinBango] }
            if i % 4 == 0 { r.replicaExtract = Array(r.kojinBango.utf8) + [0, 1, 2] }
            if i % 5 == 0 { r.kojinBango = "" }
            if i % 6 == 0 { r.restricted = true }  // the last field, 43
            return PersonEntry(record: r.encodedBytes, history: [], isRemoved: i % 7 == 0, removedOn: nil)
        }
    }

    func slowAnswer(_ entry: PersonEntry, for caller: Caller) throws -> [UInt8] {
        var r = LookupResponse()
        r.person = try InquiryService.view(entry, for: caller)
        return Array(r.encoded().readableBytesView)
    }

    func fastAnswer(_ entry: PersonEntry, for caller: Caller) throws -> (bytes: [UInt8], subject: String) {
        let a = try InquiryService.lookupResponse(entry, for: caller, allocator: ByteBufferAllocator())
        return (Array(a.bytes.readableBytesView), a.subject)
    }

    @Test func answersFromStoredBytesAreTheDecodedAnswers() throws {
        for entry in Self.entries() {
            let resident = try entry.resident()
            for caller in [Self.clerk, Self.numberClerk] {
                let slow = try slowAnswer(entry, for: caller)
                let fast = try fastAnswer(entry, for: caller)
                // Byte for byte: protobuf-c writes fields in number order, and the record
                // was written by it too.
                let same = fast.bytes == slow  // (not inside #expect: it would print the bytes)
                #expect(same, "the answer differs for a \(caller.principal)")
                #expect(try LookupResponse(protobuf: fast.bytes) == LookupResponse(protobuf: slow))
                #expect(fast.subject == resident.integratedAtenaNumber)
                if caller == Self.clerk {
                    let view = try LookupResponse(protobuf: fast.bytes).person!.resident!
                    #expect(view.kojinBango.isEmpty && view.formerKojinBango.isEmpty && view.replicaExtract.isEmpty)
                    if !resident.kojinBango.isEmpty {
                        let holdsNumber = fast.bytes.contains(subsequence: Array(resident.kojinBango.utf8))
                        #expect(!holdsNumber, "a clerk's answer holds the 個人番号")
                    }
                }
            }
        }
    }

    /// The fields copied are exactly `Resident`'s, and those left out for a clerk are the
    /// number fields by name: a field added to the schema fails here until it is placed.
    @Test func theCopiedFieldsAreTheResidentsFields() {
        let d = chukan__v1__resident__descriptor
        let fields = (0..<Int(d.n_fields)).map { d.fields[$0] }
        #expect(Set(fields.map { UInt64($0.id) }) == Set(PersonViewEncoder.knownFields))
        let byName = Dictionary(uniqueKeysWithValues: fields.map { (String(cString: $0.name), UInt64($0.id)) })
        let numbers = Set(["kojin_bango", "former_kojin_bango", "replica_extract"].compactMap { byName[$0] })
        #expect(numbers.count == 3)
        #expect(numbers.reduce(UInt64(0)) { $0 | 1 << $1 } == PersonViewEncoder.numberFields)
        #expect(byName["schema_version"] == PersonViewEncoder.schemaVersionField)
        #expect(byName["integrated_atena_number"] == PersonViewEncoder.integratedAtenaNumberField)
    }

    /// A record of a later schema version is answered by decoding (it may hold fields
    /// inside submessages that this version would drop).
    @Test func aLaterSchemaVersionIsAnsweredByDecoding() throws {
        var r = Array(SyntheticResidents(count: 1, seed: 5))[0]
        r.schemaVersion = ResidentValidation.schemaVersion + 1
        let entry = PersonEntry(record: r.encodedBytes, history: [], isRemoved: false, removedOn: nil)
        var out = ByteBuffer()
        #expect(throws: (any Error).self) { try PersonViewEncoder.writeLookupResponse(entry, withNumber: false, into: &out) }
        let same = try fastAnswer(entry, for: Self.clerk).bytes == slowAnswer(entry, for: Self.clerk)
        #expect(same)
    }

    /// A field this version does not know is dropped as decoding drops it, even when it
    /// holds a number (a record of a later schema version).
    @Test func unknownFieldsAreNotCopied() throws {
        let base = Array(SyntheticResidents(count: 1, seed: 3))[0]
        let number = Array(base.kojinBango.utf8)
        var record = base.encodedBytes
        record += [0xA2, 0x03, UInt8(number.count)] + number  // field 52, length-delimited
        let entry = PersonEntry(record: record, history: [], isRemoved: false, removedOn: nil)
        for caller in [Self.clerk, Self.numberClerk] {
            let same = try fastAnswer(entry, for: caller).bytes == slowAnswer(entry, for: caller)
            #expect(same, "the answer differs for a \(caller.principal)")
        }
        let holdsNumber = try fastAnswer(entry, for: Self.clerk).bytes.contains(subsequence: number)
        #expect(!holdsNumber, "a clerk's answer holds the unknown field's number")
    }

    /// More runs to leave out than the one pass notes (an unknown field after every known
    /// one): the copy goes field by field, and the answer is still the decoded one.
    @Test func moreGapsThanNotedAreCopiedFieldByField() throws {
        var base = Array(SyntheticResidents(count: 1, seed: 9))[0]
        base.formerKojinBango = ["123456789018"]
        let encoded = base.encodedBytes
        var record: [UInt8] = []
        var fields = 0
        try encoded.withUnsafeBytes { bytes in
            var reader = WireReader(bytes)
            var start = 0
            while let (_, type) = try reader.nextField() {
                try reader.skip(type)
                record += bytes[start..<reader.position]
                record += [0xA0, 0x03, 0x01]  // field 52, varint 1
                fields += 1
                start = reader.position
            }
        }
        #expect(fields > PersonViewEncoder.maxGaps)
        let entry = PersonEntry(record: record, history: [], isRemoved: false, removedOn: nil)
        for caller in [Self.clerk, Self.numberClerk] {
            let same = try fastAnswer(entry, for: caller).bytes == slowAnswer(entry, for: caller)
            #expect(same, "the answer differs for a \(caller.principal)")
        }
        let holdsNumber = try fastAnswer(entry, for: Self.clerk).bytes.contains(subsequence: Array(base.kojinBango.utf8))
        #expect(!holdsNumber, "a clerk's answer holds the 個人番号")
    }

    /// A record that is not protobuf is answered as decoding answers it: with its error.
    @Test func aBrokenRecordFailsAsDecodingFails() throws {
        let entry = PersonEntry(record: [0x2A, 0x40, 0x31], history: [], isRemoved: false, removedOn: nil)
        #expect(throws: (any Error).self) { try slowAnswer(entry, for: Self.clerk) }
        #expect(throws: (any Error).self) { try fastAnswer(entry, for: Self.clerk) }
    }

    @Test func tokyoDatesByArithmeticAreTheCalendarsDates() {
        var rng = SystemRandomNumberGenerator()
        var instants: [Double] = [StaffRules.fixedOffsetSince, StaffRules.fixedOffsetSince + 1, 0, -1, 951_836_400 - 1, 951_836_400]
        // Either side of Tokyo midnight, and anywhere from 1952 to 2200.
        for _ in 0..<2000 {
            let day = Double(Int.random(in: -6575...84000, using: &rng)) * 86_400 - 9 * 3600
            instants += [day - 0.5, day, day + 0.5]
            instants.append(Double.random(in: StaffRules.fixedOffsetSince...7_258_118_400, using: &rng))
        }
        for t in instants {
            let d = Date(timeIntervalSince1970: t)
            #expect(StaffRules.tokyoDate(d) == StaffRules.calendarTokyoDate(d), "at \(t)")
        }
        // Before 1952 (daylight saving in 1948-51) the calendar answers.
        let summer1950 = Date(timeIntervalSince1970: -614_000_000)
        #expect(StaffRules.tokyoDate(summer1950) == StaffRules.calendarTokyoDate(summer1950))
    }

    @Test func codesAreHexOfTheCipherAndReadBack() throws {
        let issuer = try LocalCodeIssuer(key: Array(repeating: 7, count: 32))
        for id in ["1", "00000000000001", "ABCDEFGHIJKLMNOP", "9999999999999999"] {
            let person = try #require(PackedID(id))
            let code = issuer.code(for: person)
            #expect(code == issuer.cipher.forward(person.bytes).map { String(format: "%02X", $0) }.joined())
            #expect(issuer.person(for: code) == person)
            #expect(issuer.person(for: code.lowercased()) == person)
            #expect(issuer.person(for: String(code.dropLast())) == nil)
            #expect(issuer.person(for: code + "0") == nil)
            #expect(issuer.person(for: "+" + String(code.dropFirst())) == nil)
            #expect(issuer.person(for: String(code.dropLast()) + "G") == nil)
        }
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence s: [UInt8]) -> Bool {
        guard !s.isEmpty, s.count <= count else { return false }
        return (0...(count - s.count)).contains { i in self[i..<i + s.count].elementsEqual(s) }
    }
}
