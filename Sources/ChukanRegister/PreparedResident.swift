import ChukanCore
import ChukanProto

/// The part of applying an event that depends on its resident alone — validation, the
/// stored record's encoding and its index keys — done before the event reaches the tenant's
/// single writer (on the caller's thread, `TenantDatabase.write`), so that the writer's
/// turn, which bounds a tenant's durable writes a second, is shorter. `apply` uses it only
/// where it stores the event's resident unchanged (記載 of a new person, 修正, 転居); where it
/// changes the resident first (a former resident moving back) it does the work itself.
public struct PreparedResident: Sendable {
    let kind: RegisterEventKind
    /// Why the resident is invalid (thrown where `apply` would have validated), or nil.
    let problem: RPCError?
    let record: [UInt8]
    let keys: IndexKeys
    /// The event's own encoding, for the log: the rest of the event with the resident's
    /// bytes above appended as field 5, so a write encodes its resident once, not twice
    /// (protobuf readers take fields in any order; the decoded event is the same).
    public let eventBytes: [UInt8]

    /// Nil for events whose stored record is not the event's resident.
    public init?(_ event: RegisterEvent) {
        guard [.record, .correct, .moveWithin].contains(event.kind), let r = event.resident else { return nil }
        do {
            try ResidentValidation.validate(r)
            problem = nil
        } catch let e as RPCError {
            problem = e
        } catch {
            return nil  // not an error validation throws; `apply` validates itself
        }
        kind = event.kind
        record = r.encodedBytes
        keys = IndexKeys(r)
        var rest = event
        rest.resident = nil
        var bytes = rest.encodedBytes
        bytes.reserveCapacity(bytes.count + 1 + 5 + record.count)
        bytes.append(Self.residentFieldTag)
        bytes.appendProtobufVarint(UInt64(record.count))
        bytes.append(contentsOf: record)
        eventBytes = bytes
    }

    /// `RegisterEvent.resident` is field 5, length-delimited (wire type 2).
    static let residentFieldTag: UInt8 = 5 << 3 | 2
}
