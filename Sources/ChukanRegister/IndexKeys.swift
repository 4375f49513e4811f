import CProtobufC
import ChukanProto
import ChukanProtoC

/// The fields of a record that the indexes use, read straight from protobuf-c's struct:
/// rebuilding the indexes of a snapshot needs these, not the whole `Resident`, and
/// building the whole value for a million records costs more than all the rest of a load.
/// Identifiers are packed (`PackedID`) and search keys hashed (`SearchKey`) here, once.
struct IndexKeys {
    var atena: PackedID?
    var juminhyo: PackedID?
    var kojinBango: PackedID?
    var formerKojinBango: [PackedID] = []
    var household: PackedID?
    /// Hashes of 清音化 kana + birth date and of kana + folded address (nil without a
    /// kana name), computed without building either string.
    var kanaBirth: SearchKey?
    var kanaAddress: SearchKey?
    /// What they were made from, for the strings a search compares to rule out a hash
    /// collision.
    private var kana = ""
    private var birth: CalendarDate?
    private var address = ""
    var kanaBirthString: String? {
        guard kanaBirth != nil, let birth else { return nil }
        return RegisterState.kanaBirthKey(normalizedKana: KanaKey.normalize(kana), birth: birth)
    }
    var kanaAddressString: String? {
        guard kanaAddress != nil else { return nil }
        return RegisterState.kanaAddressKey(normalizedKana: KanaKey.normalize(kana), address: address)
    }
    var removed = false
    var removedOn: CalendarDate?

    init(_ r: Resident) {
        atena = PackedID(r.atenaNumber)
        juminhyo = PackedID(r.juminhyoCode)
        kojinBango = PackedID(r.kojinBango)
        formerKojinBango = r.formerKojinBango.compactMap(PackedID.init)
        household = PackedID(r.householdNumber)
        var address = ""
        if let a = r.address?.address { address = a.substitute.isEmpty ? a.text : a.substitute }
        setSearchKeys(kana: r.name?.kana ?? "", birth: r.birthDate, address: address)
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
                k.atena = PackedID(cString: m.atena_number)
                k.juminhyo = PackedID(cString: m.juminhyo_code)
                k.kojinBango = PackedID(cString: m.kojin_bango)
                k.formerKojinBango = (0..<m.n_former_kojin_bango).compactMap { PackedID(cString: m.former_kojin_bango[$0]) }
                k.household = PackedID(cString: m.household_number)
                var address = ""
                if let a = m.address?.pointee.address?.pointee {
                    let substitute = a.substitute.protoString
                    address = substitute.isEmpty ? a.text.protoString : substitute
                }
                k.setSearchKeys(kana: m.name?.pointee.kana.protoString ?? "", birth: m.birth_date.map { Self.date($0.pointee) }, address: address)
                k.removed = m.removal_reason.rawValue != 0
                k.removedOn = m.removed_on.map { Self.date($0.pointee) }
                return k
            }
        }
    }

    /// The same keys as `SearchKey(RegisterState.kanaBirthKey(…))` and
    /// `SearchKey(RegisterState.kanaAddressKey(…))`, hashed as they are read.
    private mutating func setSearchKeys(kana: String, birth: CalendarDate?, address: String) {
        guard !kana.isEmpty else { return }
        (self.kana, self.birth, self.address) = (kana, birth, address)
        var prefix = SearchKeyHasher()
        KanaKey.forEachScalar(of: kana) { prefix.append(scalar: $0) }
        prefix.append(byte: UInt8(ascii: "|"))
        if let birth {
            var h = prefix
            h.append(birth.year, width: 4)
            h.append(birth.month, width: 2)
            h.append(birth.day, width: 2)
            kanaBirth = h.key
        }
        if !address.isEmpty {
            var h = prefix
            RegisterState.forEachFoldedScalar(of: address) { h.append(scalar: $0) }
            kanaAddress = h.key
        }
    }

    /// Every 個人番号 the person is found by: current and former.
    var allKojinBango: [PackedID] { (kojinBango.map { [$0] } ?? []) + formerKojinBango }

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
