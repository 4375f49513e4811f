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
    /// The fields that carry the 個人番号 (5, 7 and 42), left out for callers without
    /// number rights: a bit each, tested per field of every answer (a `Set` hashed each).
    static let numberFields: UInt64 = 1 << 5 | 1 << 7 | 1 << 42
    static let schemaVersionField: UInt64 = 1
    static let integratedAtenaNumberField: UInt64 = 6

    /// `LookupResponse { person = 1 }` for `entry`; returns the 団体内統合宛名番号 (the
    /// audit record's subject). One pass over the record measures what is kept and notes
    /// the runs left out (the number fields: a few); the copy then takes the runs between
    /// them whole. Throws when the record is not well-formed protobuf.
    static func writeLookupResponse(_ entry: PersonEntry, withNumber: Bool, into out: inout ByteBuffer) throws -> String {
        try entry.record.withUnsafeBytes { record in
            try withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: maxGaps) { gaps in
                var id: UnsafeRawBufferPointer?
                let (residentLength, gapCount) = try scan(record, withNumber: withNumber, id: &id, gaps: gaps)
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
                if let gapCount {
                    var from = 0
                    for gap in gaps.prefix(gapCount) {
                        if from < gap.lowerBound { out.writeBytes(UnsafeRawBufferPointer(rebasing: record[from..<gap.lowerBound])) }
                        from = gap.upperBound
                    }
                    if from < record.count { out.writeBytes(UnsafeRawBufferPointer(rebasing: record[from...])) }
                } else {
                    try copyKept(record, withNumber: withNumber, into: &out)
                }
                return id.map { String(decoding: $0, as: UTF8.self) } ?? ""
            }
        }
    }

    /// Runs left out that `scan` notes; a record with more is copied field by field.
    static let maxGaps = 8

    /// The kept fields, copied in runs (a field left out ends one): for a record with
    /// more gaps than `scan` notes.
    private static func copyKept(_ record: UnsafeRawBufferPointer, withNumber: Bool, into out: inout ByteBuffer) throws {
        var reader = WireReader(record)
        var run = 0
        var start = 0
        while let (number, type) = try reader.nextField() {
            try reader.skip(type)
            if !keeps(number, withNumber: withNumber) {
                if run < start { out.writeBytes(UnsafeRawBufferPointer(rebasing: record[run..<start])) }
                run = reader.position
            }
            start = reader.position
        }
        if run < start { out.writeBytes(UnsafeRawBufferPointer(rebasing: record[run..<start])) }
    }

    /// Length of the kept fields; the 団体内統合宛名番号 as decoding reads it (the last
    /// occurrence, up to a NUL); and the runs of fields left out, in order, adjacent ones
    /// joined, in `gaps` — their count, or nil when there were more than it holds.
    private static func scan(
        _ record: UnsafeRawBufferPointer, withNumber: Bool, id: inout UnsafeRawBufferPointer?, gaps: UnsafeMutableBufferPointer<Range<Int>>
    ) throws -> (kept: Int, gaps: Int?) {
        var reader = WireReader(record)
        var start = 0
        var kept = 0
        var gapCount: Int? = 0
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
            if keeps(number, withNumber: withNumber) {
                kept += reader.position - start
            } else if let n = gapCount {
                if n > 0 && gaps[n - 1].upperBound == start {
                    gaps[n - 1] = gaps[n - 1].lowerBound..<reader.position
                } else if n < gaps.count {
                    gaps[n] = start..<reader.position
                    gapCount = n + 1
                } else {
                    gapCount = nil
                }
            }
            start = reader.position
        }
        return (kept, gapCount)
    }

    @inline(__always)
    private static func keeps(_ number: UInt64, withNumber: Bool) -> Bool {
        knownFields.contains(number) && (withNumber || numberFields & (1 << number) == 0)
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
