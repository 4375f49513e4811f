import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import NIOCore

/// chukan.v1.Inquiry: 照会 in the tenant's own replica, for clerks (no 個人番号) and
/// number-clerks (with it). Every inquiry is recorded under the internal ids it found.
public struct InquiryService: RPCService {
    public static let name = "chukan.v1.Inquiry"
    public let serviceName = InquiryService.name
    static let readers: Set<Role> = [.clerk, .numberClerk]
    let tenants: TenantManager
    let access: AccessControl
    let codes: CodeIssuers

    public init(tenants: TenantManager, access: AccessControl, codes: CodeIssuers) {
        self.tenants = tenants
        self.access = access
        self.codes = codes
    }

    // An inquiry of one person or household reads the in-memory register and is done at
    // once: it runs on the connection's event loop (`performNow`), and its answer leaves
    // when its record is durable.
    public var methods: [String: MethodHandler] {
        [
            "Lookup": .unaryEncoded(LookupRequest.self) { request, context in
                let allocator = context.allocator
                return access.performNow(context, tenant: request.tenant, roles: Self.readers, subjectOf: { $0.subject }) { caller in
                    let entry = try find(request, caller: caller)
                    return try Self.lookupResponse(entry, for: caller, allocator: allocator)
                }.map(\.bytes)
            },
            "Household": .unaryFuture(HouseholdRequest.self) { request, context in
                access.performNow(context, tenant: request.tenant, roles: Self.readers, subjectOf: Self.subjects) { caller in
                    let version = try tenants.database(request.tenant).version
                    let members = version.state.household(try Self.identifier(request.householdNumber, field: "household_number"))
                    guard !members.isEmpty else { throw RPCError(.notFound, "no household with that 世帯番号") }
                    return try Self.page(members.map { ($0.id, $0.entry) }, size: request.pageSize, token: request.pageToken, for: caller)
                }
            },
            // A search may match many people (a common name): it runs as a task, off the
            // connection's event loop.
            "Search": .unaryAsync(SearchRequest.self) { request, context in
                try await access.perform(context, tenant: request.tenant, roles: Self.readers, subjectOf: Self.subjects) { caller in
                    // 4情報 (DOMAIN.md §4): a name and at least one more fact besides sex.
                    guard !request.kana.isEmpty, request.birthDate != nil || !request.address.isEmpty else {
                        throw RPCError.invalidArgument("a 4情報 search needs a kana name and a birth date or an address")
                    }
                    if let d = request.birthDate, let p = ResidentValidation.dateProblem(d) { throw RPCError.invalidArgument("birth_date: \(p)") }
                    let version = try tenants.database(request.tenant).version
                    var ids: [String] = []
                    if let d = request.birthDate { ids = version.state.search(kana: request.kana, birthDate: d) }
                    if !request.address.isEmpty {
                        let byAddress = version.state.search(kana: request.kana, address: request.address)
                        // Both given: both must match.
                        ids = request.birthDate == nil ? byAddress : ids.filter(Set(byAddress).contains)
                    }
                    let people = ids.compactMap { id in PackedID(id).flatMap { k in version.person(k).map { (k, $0) } } }
                    return try Self.page(people.sorted { $0.0 < $1.0 }, size: request.pageSize, token: request.pageToken, for: caller)
                }
            },
            "RequestNetworkInquiry": .unaryFuture(NetworkInquiryRequest.self) { request, context in
                // The request's legal_row is free text from the caller: it is not copied into the record (SECURITY.md §12.2).
                access.performNow(context, tenant: request.tenant, roles: Self.readers) { _ -> NetworkInquiryResponse in
                    // The resident register's own work uses its own data: no 情報照会 has a legal basis here.
                    throw RPCError(.failedPrecondition, "resident-register work has no legal basis for an information inquiry through the network")
                }
            },
        ]
    }

    /// The person a Lookup names, by the kind of key it gives.
    func find(_ request: LookupRequest, caller: Caller) throws -> PersonEntry {
        let version = try tenants.database(request.tenant).version
        let entry: PersonEntry?
        switch request.keyKind {
        case .atenaNumber: entry = version.byAtena(try Self.identifier(request.key))
        case .integratedAtenaNumber: entry = version.person(try Self.identifier(request.key))
        case .juminhyoCode: entry = version.byJuminhyo(try Self.identifier(request.key))
        case .fugo: entry = try codes.issuer(request.tenant).person(for: request.key).flatMap { version.person($0) }
        case .kojinBango:
            guard caller.roles.contains(.numberClerk) else {
                throw RPCError.permissionDenied("an inquiry by 個人番号 needs the role number-clerk")
            }
            entry = version.byKojinBango(try Self.identifier(request.key))
        case .keyKindUnspecified:
            throw RPCError.invalidArgument("key_kind: is required")
        }
        guard let entry else { throw RPCError(.notFound, "no person with that key") }
        return entry
    }

    /// An encoded answer and the audit subject it names.
    struct EncodedAnswer: Sendable {
        var bytes: ByteBuffer
        var subject: String
    }

    /// The encoded `LookupResponse`: written from the stored bytes (`PersonViewEncoder`);
    /// a record those cannot be read from is decoded instead, which answers for it.
    static func lookupResponse(_ entry: PersonEntry, for caller: Caller, allocator: ByteBufferAllocator) throws -> EncodedAnswer {
        var out = allocator.buffer(capacity: entry.record.count + 48)
        if let subject = try? PersonViewEncoder.writeLookupResponse(entry, withNumber: caller.roles.contains(.numberClerk), into: &out) {
            return EncodedAnswer(bytes: out, subject: subject)
        }
        out.clear()
        var r = LookupResponse()
        r.person = try view(entry, for: caller)
        r.encode(into: &out)
        return EncodedAnswer(bytes: out, subject: r.person?.integratedAtenaNumber ?? "")
    }

    static func identifier(_ key: String, field: String = "key") throws -> String {
        guard PackedID(key) != nil else { throw RPCError.invalidArgument("\(field): must be 1-16 ASCII letters or digits") }
        return key
    }

    /// The record as the caller may see it: the 個人番号 only for a number-clerk.
    static func view(_ entry: PersonEntry, for caller: Caller) throws -> PersonView {
        var resident = try entry.resident()
        if !caller.roles.contains(.numberClerk) {
            resident.kojinBango = ""
            resident.formerKojinBango = []
            resident.replicaExtract = []  // opaque: it may hold the number too
        }
        var v = PersonView()
        v.integratedAtenaNumber = resident.integratedAtenaNumber
        v.removed = entry.isRemoved
        v.resident = resident
        return v
    }

    /// One page of `people` (sorted by 団体内統合宛名番号). The token is the last id the page
    /// before returned, and a page starts after it (keyset paging): each page is read from the
    /// register as it is then, and a write between pages neither skips nor repeats anyone —
    /// a person who joins or leaves behind the token is simply not on the later pages.
    static func page(_ people: [(id: PackedID, entry: PersonEntry)], size: UInt32, token: String, for caller: Caller) throws -> PersonPage {
        let pageSize = size == 0 ? 20 : Int(size)
        guard (1...100).contains(pageSize) else { throw RPCError.invalidArgument("page_size: must be 1-100") }
        var rest = people[...]
        if !token.isEmpty {
            guard let after = PackedID(token) else { throw RPCError.invalidArgument("page_token: not a token of this result") }
            rest = rest.drop { $0.id <= after }
        }
        let chosen = rest.prefix(pageSize)
        var p = PersonPage()
        p.total = UInt32(people.count)
        p.people = try chosen.map { try view($0.entry, for: caller) }
        if rest.count > pageSize, let last = chosen.last { p.nextPageToken = last.id.string }
        return p
    }

    /// Audit subject of a page: the internal ids it returned.
    @Sendable static func subjects(_ page: PersonPage) -> String {
        page.people.map(\.integratedAtenaNumber).joined(separator: ",")
    }
}
