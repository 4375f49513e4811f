import ChukanProto
@testable import ChukanRegister
import Testing

/// The index keys read straight from the wire format (`IndexKeys(encoded:)`, what a load
/// and every write use) against the same keys read from protobuf-c's full unpack.
@Suite struct IndexKeyReaderTests {
    /// Synthetic residents, and each changed the ways records differ: 除票, former
    /// numbers, no name, an address with a 外字 substitute, partial birth dates, a field
    /// met twice (the wire format merges it), NULs, long identifiers.
    func records() -> [[UInt8]] {
        var out: [[UInt8]] = []
        for (i, r) in SyntheticResidents(count: 1_500, seed: 11).enumerated() {
            out.append(r.encodedBytes)
            var v = r
            switch i % 6 {
            case 0:
                v.formerKojinBango = ["123456789018", "not-an-id!", ""]
                v.removalReason = .shibou
                v.removedOn = CalendarDate(2020, 2, 29)
            case 1:
                v.name = nil
                v.birthDate = nil
            case 2:
                let text = v.address?.address?.text ?? ""
                v.address?.address?.substitute = "旭川市" + text
                v.birthDate?.precision = .yearOnly
            case 3:
                v.atenaNumber = "ABCDEFGHIJKLMNOPQ"  // 17: not an identifier
                v.householdNumber = ""
            case 4:
                v.address = nil
                v.kojinBango = "12345\u{0}6789018"  // protobuf-c's C string ends at the NUL
            default:
                // The name twice: the second occurrence merges into the first (its kana
                // stays). The removal date twice: the later one wins whole, its absent
                // year as 0 (protobuf-c's merge; the `record` fuzz target found this).
                var extra = Resident()
                extra.name = Name()
                extra.name?.kanji = JText()
                extra.name?.kanji?.text = "別名"
                v.removalReason = .tenshutsu
                v.removedOn = CalendarDate(2023, 3, 31)
                extra.removedOn = CalendarDate(0, 5, 0)
                out.append(v.encodedBytes + extra.encodedBytes)
            }
            out.append(v.encodedBytes)
        }
        return out
    }

    @Test func readsWhatProtobufCReads() throws {
        let all = records()
        for bytes in all {
            let read = try IndexKeys(encoded: bytes)
            let unpacked = try IndexKeys(unpacking: bytes)
            #expect(read == unpacked)
        }
        #expect(all.count > 3_000)
    }

    /// Damaged bytes: wherever protobuf-c reads a record, the reader reads the same keys;
    /// truncated varints and lengths past the end are errors, not traps.
    @Test func damagedRecordsNeverDisagreeWithProtobufC() {
        var rng = SplitMix64(seed: 3)
        var agreed = 0, refused = 0
        for (n, record) in records().prefix(600).enumerated() {
            var damaged = record
            if n % 2 == 0 {
                damaged = Array(record.prefix(Int(rng.next(UInt64(record.count)))))
            } else {
                for _ in 0..<(1 + Int(rng.next(3))) {
                    damaged[Int(rng.next(UInt64(record.count)))] ^= UInt8(truncatingIfNeeded: 1 + rng.next(255))
                }
            }
            let read = try? IndexKeys(encoded: damaged)
            guard let unpacked = try? IndexKeys(unpacking: damaged) else {
                refused += 1
                continue
            }
            #expect(read == unpacked, "record \(n): protobuf-c reads it, the reader must read the same")
            agreed += 1
        }
        #expect(agreed > 100 && refused > 100, "both kinds of damage were tried (\(agreed) read, \(refused) refused)")
        // An overlong tag of field 0 is an unknown field to protobuf-c, not an error
        // (found by the `record` fuzz target; a one-byte tag of field 0 is refused by both).
        #expect(RegisterState.indexKeyReadersAgree([0x82, 0x00, 0x02, 0x08, 0x01, 0x12, 0x01, 0x41]) == true)
        #expect(RegisterState.indexKeyReadersAgree([0x02, 0x00]) == nil)
        for bad: [UInt8] in [[0x12], [0x12, 0x05, 0x41], [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], [0x13], [0x00]] {
            #expect(throws: WireFormatError.self) { try IndexKeys(encoded: bad) }
        }
    }
}
