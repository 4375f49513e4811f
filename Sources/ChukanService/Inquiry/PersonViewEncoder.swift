import ChukanCore
import ChukanProto
import ChukanRegister
import NIOCore

/// Writes the `PersonView` of a stored record straight from the record's bytes, the way
/// `InquiryService.view` would encode it after decoding the record into a `Resident`,
/// masking it and encoding it again — without the decoding: each of the record's
/// top-level fields is copied or left out whole.
///
/// Copied are only the fields this version of `Resident` has (1-43), so a field it does
/// not know is dropped as decoding drops it; left out for a caller without number
/// rights are exactly the fields the mask empties: `kojin_bango` (5),
/// `former_kojin_bango` (7) and `replica_extract` (42, opaque, may hold the number).
/// Submessages are copied as they are: the register holds records this schema version
/// wrote (`PreparedResident`, and snapshots of them), so they hold nothing decoding would
/// drop. A record of a later schema version (a snapshot a newer build wrote) may, so it
/// is refused here and answered by decoding (`InquiryService.lookupResponse`).
/// `FastPathEquivalenceTests` checks byte for byte that both ways give the same answer.
enum PersonViewEncoder {
    /// Top-level fields of `Resident` this version knows.
    static let knownFields: ClosedRange<UInt64> = 1...43
    /// The fields that carry the 個人番号, left out for callers without number rights.
    static let numberFields: Set<UInt64> = [5, 7, 42]
    static let schemaVersionField: UInt64 = 1
    static let integratedAtenaNumberField: UInt64 = 6

    /// `LookupResponse { person = 1 }` for `entry`; returns the 団体内統合宛名番号 (the
    /// audit record's subject). Two passes over the record: one to measure, one to copy.
    /// Throws when the record is not well-formed protobuf.
    static func writeLookupResponse(_ entry: PersonEntry, withNumber: Bool, into out: inout ByteBuffer) throws -> String {
        try entry.record.withUnsafeBytes { record in
            var id: UnsafeRawBufferPointer?
            let residentLength = try scan(record, withNumber: withNumber, id: &id)
            let idLength = id?.count ?? 0
            // PersonView: integrated_atena_number = 1, removed = 2, resident = 3.
            let viewSize = (idLength > 0 ? 1 + varintSize(UInt64(idLength)) + idLength : 0)
                + (entry.isRemoved ? 2 : 0)
                + 1 + varintSize(UInt64(residentLength)) + residentLength
            out.writeInteger(UInt8(0x0A))
            writeVarint(UInt64(viewSize), into: &out)
            if idLength > 0 {
                out.writeInteger(UInt8(0x0A))
                writeVarint(UInt64(idLength), into: &out)
                out.writeBytes(id!)
            }
            if entry.isRemoved { out.writeBytes([0x10, 0x01]) }
            out.writeInteger(UInt8(0x1A))
            writeVarint(UInt64(residentLength), into: &out)
            var reader = WireReader(record)
            var start = 0
            while let (number, type) = try reader.nextField() {
                try reader.skip(type)
                if keeps(number, withNumber: withNumber) {
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: record[start..<reader.position]))
                }
                start = reader.position
            }
            return id.map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
    }

    /// Length of the kept fields, and the 団体内統合宛名番号 as decoding reads it (the last
    /// occurrence, up to a NUL).
    private static func scan(_ record: UnsafeRawBufferPointer, withNumber: Bool, id: inout UnsafeRawBufferPointer?) throws -> Int {
        var reader = WireReader(record)
        var start = 0
        var kept = 0
        while let (number, type) = try reader.nextField() {
            if number == schemaVersionField {
                try WireReader.expect(type, .varint, field: number)
                guard try reader.varint() <= UInt64(ResidentValidation.schemaVersion) else {
                    throw RPCError(.internal, "a record of a later schema version")  // answered by decoding
                }
            } else if number == integratedAtenaNumberField {
                try WireReader.expect(type, .lengthDelimited, field: number)
                id = try reader.cStringBytes()
            } else {
                try reader.skip(type)
            }
            if keeps(number, withNumber: withNumber) { kept += reader.position - start }
            start = reader.position
        }
        return kept
    }

    @inline(__always)
    private static func keeps(_ number: UInt64, withNumber: Bool) -> Bool {
        knownFields.contains(number) && (withNumber || !numberFields.contains(number))
    }

    static func varintSize(_ v: UInt64) -> Int {
        var v = v
        var n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    static func writeVarint(_ v: UInt64, into out: inout ByteBuffer) {
        var v = v
        while v >= 0x80 {
            out.writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.writeInteger(UInt8(v))
    }
}
