import CProtobufC
import ChukanProto
import ChukanProtoC

/// The fields of a record that the indexes use, read straight from protobuf-c's struct:
/// rebuilding the indexes of a snapshot needs these, not the whole `Resident`, and
/// building the whole value for a million records costs more than all the rest of a load.
struct IndexKeys {
    var atena = ""
    var juminhyo = ""
    var kojinBango = ""
    var formerKojinBango: [String] = []
    var household = ""
    var kana = ""
    var birth: CalendarDate?
    var address = ""
    var removed = false
    var removedOn: CalendarDate?

    init(_ r: Resident) {
        atena = r.atenaNumber
        juminhyo = r.juminhyoCode
        kojinBango = r.kojinBango
        formerKojinBango = r.formerKojinBango
        household = r.householdNumber
        kana = r.name?.kana ?? ""
        birth = r.birthDate
        if let a = r.address?.address { address = a.substitute.isEmpty ? a.text : a.substitute }
        removed = r.removalReason != .reasonUnspecified
        removedOn = r.removedOn
    }

    /// Reads the keys of an encoded `chukan.v1.Resident`.
    init(encoded bytes: [UInt8]) throws {
        self = try bytes.withUnsafeBytes { raw in
            try ProtobufC.withUnpacked(Resident.descriptorForKeys, as: Chukan__V1__Resident.self, name: Resident.protoName,
                                       bytes: raw, limit: ProtobufC.defaultDecodeLimit) { p in
                let m = p.pointee
                var k = IndexKeys()
                k.atena = m.atena_number.protoString
                k.juminhyo = m.juminhyo_code.protoString
                k.kojinBango = m.kojin_bango.protoString
                k.formerKojinBango = (0..<m.n_former_kojin_bango).map { m.former_kojin_bango[$0].protoString }
                k.household = m.household_number.protoString
                k.kana = m.name?.pointee.kana.protoString ?? ""
                k.birth = m.birth_date.map { Self.date($0.pointee) }
                if let a = m.address?.pointee.address?.pointee {
                    let substitute = a.substitute.protoString
                    k.address = substitute.isEmpty ? a.text.protoString : substitute
                }
                k.removed = m.removal_reason.rawValue != 0
                k.removedOn = m.removed_on.map { Self.date($0.pointee) }
                return k
            }
        }
    }

    private init() {}

    static func date(_ c: Chukan__V1__CalendarDate) -> CalendarDate {
        var d = CalendarDate(c.year, c.month, c.day)
        d.precision = CalendarDatePrecision(rawValue: Int32(bitPattern: c.precision.rawValue)) ?? .full
        return d
    }
}

extension Resident {
    nonisolated(unsafe) static let descriptorForKeys = protobufDescriptor(Chukan__V1__Resident.self, chukan__v1__resident__init)
}
