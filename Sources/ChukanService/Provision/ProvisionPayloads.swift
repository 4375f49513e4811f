import ChukanCore
import ChukanProto
import ChukanRegister

/// What an answer holds: the items of one group, taken from the person's record (and,
/// for the household, from the records of its current members). Nothing else of the
/// record is copied, and no group carries the 個人番号.
public enum ProvisionPayloads {
    public static func make(
        group: ItemGroup, person entry: PersonEntry, in state: RegisterState, permit: ProvisionPermit, nowUnixMs: Int64
    ) throws -> ProvisionPayload {
        try make(group: group, record: entry.resident(), removed: entry.isRemoved, in: state, permit: permit, nowUnixMs: nowUnixMs)
    }

    /// The same from a record already decoded.
    public static func make(
        group: ItemGroup, record r: Resident, removed: Bool, in state: RegisterState, permit: ProvisionPermit, nowUnixMs: Int64
    ) throws -> ProvisionPayload {
        var p = ProvisionPayload()
        p.schemaVersion = 1
        p.permitId = permit.permitId
        p.tenant = permit.tenant
        p.fugo = permit.fugo
        p.itemGroup = group
        p.removed = removed
        p.producedUnixMs = nowUnixMs
        switch group {
        case .nameAndBirth:
            var n = NameAndBirth()
            n.name = r.name
            n.birthDate = r.birthDate
            n.sex = r.sex
            n.alias = r.alias
            n.formerSurname = r.formerSurname
            n.foreignName = r.foreign?.name
            n.foreignNameKatakana = r.foreign?.nameKatakana ?? ""
            n.romanName = r.foreign?.romanName ?? ""
            p.nameAndBirth = n
        case .address:
            var a = CurrentAddress()
            a.address = r.address
            a.addressSetOn = r.addressSetOn
            p.address = a
        case .addressHistory:
            var h = AddressHistory()
            h.previousAddress = r.previousAddress
            h.plannedMoveOut = r.plannedMoveOut
            h.plannedMoveOutDate = r.plannedMoveOutDate
            h.confirmedMoveOut = r.confirmedMoveOut
            h.confirmedMoveOutDate = r.confirmedMoveOutDate
            p.addressHistory = h
        case .household:
            var h = HouseholdItems()
            h.householdNumber = r.householdNumber
            h.relationship = r.relationship
            for member in try householdMembers(of: r, in: state) {
                var m = HouseholdMember()
                m.name = member.name
                m.birthDate = member.birthDate
                m.sex = member.sex
                m.relationship = member.relationship
                h.members.append(m)
            }
            p.household = h
        case .residenceDates:
            var d = ResidenceDates()
            d.becameResidentOn = r.becameResidentOn
            d.recordReason = r.recordReason
            d.recordedOn = r.recordedOn
            d.removalReason = r.removalReason
            d.removedOn = r.removedOn
            p.residenceDates = d
        case .insuranceStatus:
            var i = InsuranceStatus()
            i.nationalHealthInsurance = r.nationalHealthInsurance
            i.lateElderlyMedical = r.lateElderlyMedical
            i.longTermCare = r.longTermCare
            i.nationalPension = r.nationalPension
            i.childAllowance = r.childAllowance
            p.insuranceStatus = i
        case .itemGroupUnspecified:
            throw RPCError.invalidArgument("item_group: is required")
        }
        return p
    }

    /// The household's current members (除票 excluded), the person included.
    static func householdMembers(of r: Resident, in state: RegisterState) throws -> [Resident] {
        guard !r.householdNumber.isEmpty else { return [] }
        return try state.household(r.householdNumber).filter { !$0.entry.isRemoved }.map { try $0.entry.resident() }
    }

    /// Why an answer must not leave without review (自動応答不可), or nil: the person's
    /// record carries a handling restriction (DV support and the like), or — for the
    /// household — a member's does, since the answer would name them.
    public static func holdReason(group: ItemGroup, person entry: PersonEntry, in state: RegisterState) throws -> String? {
        try holdReason(group: group, record: entry.resident(), in: state)
    }

    public static func holdReason(group: ItemGroup, record r: Resident, in state: RegisterState) throws -> String? {
        if r.restricted { return "the person's record carries a handling restriction" }
        if group == .household, try householdMembers(of: r, in: state).contains(where: \.restricted) {
            return "a member of the person's household carries a handling restriction"
        }
        return nil
    }
}
