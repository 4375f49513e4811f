import CProtobufC
import ChukanProto
import ChukanProtoC

/// The fields of a record that the indexes use, read straight from protobuf-c's struct:
/// rebuilding the indexes of a snapshot needs these, not the whole `Resident`, and
/// building the whole value for a million records costs more than all the rest of a load.
/// Identifiers are packed (`PackedID`) and search keys hashed (`SearchKey`) here, once.
struct IndexKeys: Equatable {
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

    /// Reads the keys of an encoded `chukan.v1.Resident` straight from its wire format
    /// (`WireReader`): a load reads them for every record, and unpacking the whole record
    /// with protobuf-c for a handful of fields — every string and submessage allocated and
    /// freed — was half of a snapshot load. Gives what `init(unpacking:)` gives wherever
    /// protobuf-c reads the record (tests hold them equal, for damaged records too), and
    /// refuses malformed wire format; fields it does not read are only stepped over, so
    /// it may read a damaged record protobuf-c would refuse. What it reads is the
    /// register's own encoding (a snapshot's chunks are authenticated first).
    init(encoded bytes: [UInt8]) throws {
        var k = IndexKeys()
        var kana = "", addressText = "", addressSubstitute = ""
        var birth = DateFields(), removedOn = DateFields()
        try bytes.withUnsafeBytes { raw in
            var r = WireReader(raw)
            while let (field, type) = try r.nextField() {
                switch field {
                case 2, 3, 4, 5, 7:
                    try WireReader.expect(type, .lengthDelimited, field: field)
                    let id = try Self.packedID(&r)
                    switch field {
                    case 2: k.atena = id
                    case 3: k.household = id
                    case 4: k.juminhyo = id
                    case 5: k.kojinBango = id
                    default: if let id { k.formerKojinBango.append(id) }
                    }
                case 8:  // Name: kana = 1
                    try WireReader.expect(type, .lengthDelimited, field: field)
                    var name = WireReader(try r.lengthDelimited())
                    while let (f, t) = try name.nextField() {
                        if f == 1 {
                            try WireReader.expect(t, .lengthDelimited, field: f)
                            kana = try name.string()
                        } else {
                            try name.skip(t)
                        }
                    }
                case 9, 31:  // CalendarDate
                    try WireReader.expect(type, .lengthDelimited, field: field)
                    var date = WireReader(try r.lengthDelimited())
                    if field == 9 { try birth.read(&date) } else { try removedOn.read(&date) }
                case 15:  // Address: address = 4, a JText (text = 1, substitute = 2)
                    try WireReader.expect(type, .lengthDelimited, field: field)
                    var address = WireReader(try r.lengthDelimited())
                    while let (f, t) = try address.nextField() {
                        guard f == 4 else {
                            try address.skip(t)
                            continue
                        }
                        try WireReader.expect(t, .lengthDelimited, field: f)
                        var text = WireReader(try address.lengthDelimited())
                        while let (g, u) = try text.nextField() {
                            switch g {
                            case 1, 2:
                                try WireReader.expect(u, .lengthDelimited, field: g)
                                if g == 1 { addressText = try text.string() } else { addressSubstitute = try text.string() }
                            default: try text.skip(u)
                            }
                        }
                    }
                case 30:  // removal_reason
                    try WireReader.expect(type, .varint, field: field)
                    k.removed = UInt32(truncatingIfNeeded: try r.varint()) != 0
                default:
                    try r.skip(type)
                }
            }
        }
        k.setSearchKeys(kana: kana, birth: birth.date, address: addressSubstitute.isEmpty ? addressText : addressSubstitute)
        k.removedOn = removedOn.date
        self = k
    }

    /// A string field read as an identifier, as `PackedID(cString:)` reads protobuf-c's.
    private static func packedID(_ r: inout WireReader) throws -> PackedID? {
        let bytes = try r.cStringBytes()
        return PackedID.pack(bytes.bindMemory(to: UInt8.self))
    }

    /// A `CalendarDate` read field by field. protobuf-c merges a message met twice, but
    /// a proto3 number of the later one always wins — an absent one as 0 — so a date is
    /// its last occurrence, whole (the `record` fuzz target found this).
    private struct DateFields {
        var present = false
        var year: UInt32 = 0, month: UInt32 = 0, day: UInt32 = 0, precision: UInt32 = 0

        mutating func read(_ r: inout WireReader) throws {
            self = DateFields()
            present = true
            while let (f, t) = try r.nextField() {
                guard (1...4).contains(f) else {
                    try r.skip(t)
                    continue
                }
                try WireReader.expect(t, .varint, field: f)
                let v = UInt32(truncatingIfNeeded: try r.varint())
                switch f {
                case 1: year = v
                case 2: month = v
                case 3: day = v
                default: precision = v
                }
            }
        }

        var date: CalendarDate? {
            guard present else { return nil }
            var d = CalendarDate(year, month, day)
            d.precision = CalendarDatePrecision(rawValue: Int32(bitPattern: precision)) ?? .full
            return d
        }
    }

    /// The same keys read by unpacking the whole record with protobuf-c: what
    /// `init(encoded:)` must agree with (tests compare the two).
    init(unpacking bytes: [UInt8]) throws {
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

extension RegisterState {
    /// Whether the two readers of a record's index keys agree on `bytes`: the wire-format
    /// reader a load uses and protobuf-c's full unpack. nil when protobuf-c refuses the
    /// bytes (the wire-format reader may then read or refuse them). For the fuzz target
    /// `record`, which makes a disagreement a crash.
    public static func indexKeyReadersAgree(_ bytes: [UInt8]) -> Bool? {
        guard let unpacked = try? IndexKeys(unpacking: bytes) else { return nil }
        return (try? IndexKeys(encoded: bytes)) == unpacked
    }
}
