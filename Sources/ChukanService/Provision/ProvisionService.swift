import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanStore
import Foundation
import NIOCore

/// chukan.v1.Provision: 提供 to another agency through the national network, held
/// answers (自動応答不可) and their review, and disclosure (開示請求). docs/PROVISION.md
/// walks a request through the checks in the order `provide` makes them.
public struct ProvisionService: RPCService {
    public static let name = "chukan.v1.Provision"
    public let serviceName = ProvisionService.name
    let tenants: TenantManager
    let access: AccessControl
    let codes: CodeIssuers
    let rules: PermissionRules
    /// The national network's permit-signing key (public half); nil: 提供 is not configured.
    let networkKey: ECDSAP256Key?
    let sealer: AnswerSealer
    /// Held provisions being decided (`DecideHeld`), one decision at a time each.
    let decisions = KeyedLocks()

    public init(tenants: TenantManager, access: AccessControl, codes: CodeIssuers, rules: PermissionRules, networkKey: ECDSAP256Key?, sealer: AnswerSealer) {
        self.tenants = tenants
        self.access = access
        self.codes = codes
        self.rules = rules
        self.networkKey = networkKey
        self.sealer = sealer
    }

    var nowMs: Int64 { Int64(access.now().timeIntervalSince1970 * 1000) }

    public var methods: [String: MethodHandler] {
        [
            // 提供 runs on the connection's event loop (its work is CPU, ~0.15 ms of it, and a
            // task would only add hops); a held one is saved by a task (`provide`).
            "Provide": .unaryFuture(ProvideRequest.self) { request, context in
                let notes = AuditNotes()
                notes.note { r in
                    r.inquirer = PermissionList.agencyCodeProblem(request.inquirer) == nil ? request.inquirer : ""
                    r.itemGroup = UInt32(bitPattern: request.itemGroup.rawValue)
                    r.legalRow = request.legalRow == 0 ? "" : String(request.legalRow)
                }
                return access.performFuture(context, tenant: request.tenant, roles: [.networkGateway], notes: notes) { _ in
                    try provide(request, notes: notes, on: context.eventLoop)
                }
            },
            "FetchHeld": .unaryAsync(HeldRequest.self) { request, context in
                let notes = AuditNotes()
                return try await access.perform(context, tenant: request.tenant, roles: [.networkGateway], notes: notes) { _ in
                    let p = try held(request, notes: notes)
                    switch p.state {
                    case .held: throw ProvisionRefusal.held.error("still held for review; pending_id=\(p.pendingId)")
                    case .refused: throw ProvisionRefusal.refused.error("an approver refused this provision")
                    case .released:
                        var r = ProvideResponse()
                        r.answer = p.answer
                        r.pendingId = p.pendingId
                        return r
                    case .stateUnspecified: throw RPCError(.internal, "held provision in no state")
                    }
                }
            },
            "ListHeld": .unaryAsync(ListHeldRequest.self) { request, context in
                try await access.perform(context, tenant: request.tenant, roles: [.approver], subject: "held provisions") { _ in
                    let db = try tenants.database(request.tenant)
                    var list = HeldList()
                    list.held = db.version.state.pending.values
                        .filter { request.all || $0.state == .held }
                        .sorted { ($0.heldUnixMs, $0.pendingId) < ($1.heldUnixMs, $1.pendingId) }
                        .map { var p = $0; p.answer = nil; return p }
                    return list
                }
            },
            "ReviewHeld": .unaryAsync(HeldRequest.self) { request, context in
                let notes = AuditNotes()
                return try await access.perform(context, tenant: request.tenant, roles: [.approver], notes: notes) { _ in
                    let db = try tenants.database(request.tenant)
                    var p = try held(request, notes: notes)
                    var review = HeldReview()
                    review.wouldSend = try payload(for: p, in: db.current)
                    review.wouldSendSha256 = Self.reviewDigest(review.wouldSend!)
                    p.answer = nil
                    review.pending = p
                    return review
                }
            },
            "DecideHeld": .unaryAsync(HeldRequest.self) { request, context in
                let notes = AuditNotes()
                return try await access.perform(context, tenant: request.tenant, roles: [.approver], notes: notes) { caller in
                    guard request.note.utf8.count <= 200 else { throw RPCError.invalidArgument("note: at most 200 bytes") }
                    let db = try tenants.database(request.tenant)
                    // One decision at a time per held provision: two approvers at once must not
                    // both pass the state check and both record a decision.
                    return try await decisions.serialized("\(request.tenant)/\(request.pendingId)") {
                        var p = try held(request, notes: notes)
                        guard p.state == .held else { throw RPCError(.failedPrecondition, "held provision \(p.pendingId) was already \(p.state == .released ? "released" : "refused")") }
                        if request.refuse {
                            p.state = .refused
                        } else {
                            // The list may have changed while the provision waited.
                            guard let row = rules.current?.row(p.legalRow), row.agencies.contains(p.inquirer), row.itemGroups.contains(p.itemGroup) else {
                                throw RPCError(.failedPrecondition, "the permission list in force no longer allows this provision; refuse it")
                            }
                            // So may the person: a 除票 now, under a row for current residents only.
                            if let entry = db.version.state.person(p.person), entry.isRemoved && !row.removedResidents {
                                throw RPCError(.failedPrecondition, "the person is no longer a current resident and 項 \(row.legalRow) covers current residents only; refuse it")
                            }
                            // What leaves is what the approver saw: a record changed since the review
                            // (an address, a household member) needs a new review.
                            guard !request.reviewedSha256.isEmpty else {
                                throw RPCError.invalidArgument("reviewed_sha256: a release names the review it approves (ReviewHeld's would_send_sha256)")
                            }
                            let answer = try payload(for: p, in: db.current)
                            guard Self.reviewDigest(answer) == request.reviewedSha256 else {
                                throw RPCError(.failedPrecondition, "the answer is not the one reviewed: the record changed since, or another review was named; review it again")
                            }
                            p.answer = try sealer.seal(answer.encodedBytes, to: p.inquirerPublicKey, permitID: p.permitId)
                            p.state = .released
                        }
                        p.decidedBy = RegisterService.who(caller)
                        p.decidedUnixMs = nowMs
                        p.note = request.note
                        // The decision is in the trail before it takes effect: the call's own record
                        // comes after the save, and a crash between the two would leave a decision
                        // nobody is recorded as having made.
                        var deciding = AccessControl.record(context, caller: caller, subject: "")
                        notes.apply(to: &deciding)  // the person, pending id and permit `held` noted
                        deciding.outcomeDetail = p.state == .released ? "deciding: release" : "deciding: refuse"
                        try await access.audit.record(deciding, tenant: caller.tenant)
                        try await Self.save(p, db)
                        p.answer = nil
                        return p
                    }
                }
            },
            "Disclose": .unaryAsync(DiscloseRequest.self) { request, context in
                try await access.perform(context, tenant: request.tenant, roles: [.auditor], subjectOf: { (d: Disclosure) in d.person?.integratedAtenaNumber ?? "" }) { _ in
                    let db = try tenants.database(request.tenant)
                    let version = db.version
                    // Each kind of key is checked as that kind: a 符号 is 32 hex digits, the others 1-16 characters.
                    let key = request.key
                    let entry: PersonEntry? = switch request.keyKind {
                    case .atenaNumber: version.state.byAtena(try InquiryService.identifier(key))
                    case .integratedAtenaNumber: version.state.person(try InquiryService.identifier(key))
                    case .juminhyoCode: version.state.byJuminhyo(try InquiryService.identifier(key))
                    case .kojinBango: version.state.byKojinBango(try InquiryService.identifier(key))
                    case .fugo: try codes.issuer(request.tenant).person(for: key).flatMap { version.state.person($0) }
                    case .keyKindUnspecified: throw RPCError.invalidArgument("key_kind: is required")
                    }
                    guard let entry else { throw RPCError(.notFound, "no person with that key") }
                    let resident = try entry.resident()
                    var d = Disclosure()
                    var view = PersonView()
                    view.integratedAtenaNumber = resident.integratedAtenaNumber
                    view.removed = entry.isRemoved
                    view.resident = resident
                    d.person = view
                    d.provisions = try db.audit.readAll()
                        .filter { $0.subject == resident.integratedAtenaNumber && Self.disclosed.contains($0.operation) }
                        .map(Self.entry)
                    d.producedUnixMs = nowMs
                    return d
                }
            },
            "ReloadRules": .unaryAsync(RulesRequest.self) { _, context in
                try await access.perform(context, tenant: nil, roles: [.platformOperator], subject: "permission list") { _ in
                    let list = try rules.reload()
                    var s = RulesSummary()
                    s.version = list.version
                    s.rows = UInt32(list.rows.count)
                    s.illustrative = list.illustrative
                    return s
                }
            },
        ]
    }

    /// The operations a disclosure lists: each is a provision of the person's data, or a
    /// decision on one.
    static let disclosed: Set<String> = ["\(name)/Provide", "\(name)/FetchHeld", "\(name)/DecideHeld"]

    static func entry(_ r: AuditRecord) -> ProvisionEntry {
        var e = ProvisionEntry()
        e.timeUnixMs = r.timeUnixMs
        e.operation = String(r.operation.split(separator: "/").last ?? "")
        e.inquirer = r.inquirer
        e.legalRow = UInt32(r.legalRow) ?? 0
        e.itemGroup = ItemGroup(rawValue: Int32(bitPattern: r.itemGroup)) ?? .itemGroupUnspecified
        e.permitId = r.permitId
        e.pendingId = r.pendingId
        e.outcomeCode = r.outcomeCode
        e.outcomeDetail = r.outcomeDetail
        e.staff = r.staff.isEmpty ? r.principal : "staff:\(r.staff)"
        return e
    }

    /// 提供: every check, in order, each failure with its own reason; then the answer,
    /// or a hold — saved (a durable register write) by a task, whose future fails with
    /// the hold. The caller records the outcome (with `notes`) before anything leaves.
    func provide(_ request: ProvideRequest, notes: AuditNotes, on loop: any EventLoop) throws -> EventLoopFuture<ProvideResponse> {
        // 1. The request itself.
        if let p = PermissionList.agencyCodeProblem(request.inquirer) { throw RPCError.invalidArgument("inquirer: \(p)") }
        guard request.legalRow > 0 else { throw RPCError.invalidArgument("legal_row: is required") }
        guard Self.isFugo(request.fugo) else { throw RPCError.invalidArgument("fugo: must be 32 hex digits") }
        guard request.itemGroup != .itemGroupUnspecified, ItemGroup.listed.contains(request.itemGroup) else {
            throw RPCError.invalidArgument("item_group: is required")
        }
        guard request.inquirerPublicKey.count == X25519Key.size else {
            throw RPCError.invalidArgument("inquirer_public_key: must be an X25519 public key of 32 bytes")
        }
        guard request.route.utf8.count <= 512, request.route.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw RPCError.invalidArgument("route: at most 512 bytes of printable text")
        }
        notes.note { $0.route = request.route }
        guard let networkKey else { throw RPCError.unavailable("提供 is not configured on this server: no national network key") }
        guard let list = rules.current else { throw RPCError.unavailable("提供 is not configured on this server: no permission list") }
        let now = nowMs

        // 2. The permit: the network's signature, its validity, and that it is for this request.
        let permit = try Permits.open(request.permit, networkKey: networkKey, nowUnixMs: now)
        guard permit.inquirer == request.inquirer else { throw ProvisionRefusal.permitInquirer.error("the permit is for another inquirer") }
        guard permit.tenant == request.tenant else { throw ProvisionRefusal.permitTenant.error("the permit is for another tenant") }
        guard permit.legalRow == request.legalRow else { throw ProvisionRefusal.permitRow.error("the permit is for another 項") }
        guard permit.fugo.uppercased() == request.fugo.uppercased() else { throw ProvisionRefusal.permitFugo.error("the permit is for another 符号") }
        guard permit.itemGroup == request.itemGroup else { throw ProvisionRefusal.permitItemGroup.error("the permit is for another item group") }
        // The answer goes to the key the network named, not to one a gateway could swap in.
        guard permit.inquirerPublicKey == request.inquirerPublicKey else { throw ProvisionRefusal.permitKey.error("the permit is for another inquirer key") }
        // A key no answer can be sealed to is refused before the permit is spent.
        try sealer.prepare(for: request.inquirerPublicKey)

        // 3. Used once: claimed in memory now, in the record before any answer leaves.
        // Whatever happens next, the permit is spent. The person is noted first, so a
        // replay is recorded under the person it named.
        let db = try tenants.database(request.tenant)
        let version = db.version
        let id = try codes.issuer(request.tenant).person(for: request.fugo)
        let entry = id.flatMap { version.person($0) }
        if let id, entry != nil { notes.note { $0.subject = id.string } }
        // An answer held for review must be saved; while the disk watch refuses writes it
        // could not be, and the permit would be spent with nothing kept. Refused before
        // the permit is noted in the record (a claim is read back from every record that
        // names one) and claimed; a permit already claimed takes its usual path.
        // The permit is named in the message (so the record still links to it), not in
        // the record's permit field (which claims it).
        if let refusal = db.writeRefusal, let entry, !db.audit.permits.isClaimed(permit.permitId),
           try ProvisionPayloads.holdReason(group: request.itemGroup, record: entry.resident(), in: version.state) != nil {
            throw RPCError.unavailable("\(refusal); permit \(permit.permitId) not spent: send it again once there is room")
        }
        notes.note { r in
            r.permitId = permit.permitId
            r.permitExpiresUnixMs = permit.expiresUnixMs
        }
        guard db.audit.permits.claim(permit.permitId, expiresUnixMs: permit.expiresUnixMs, nowUnixMs: now) else {
            // A retry of a request that was held (the first answer lost on the way) learns its
            // pending id again: the id reaches the gateway only in that answer.
            if let p = db.version.state.pending.values.first(where: { $0.permitId == permit.permitId && $0.inquirer == request.inquirer }) {
                notes.note { $0.pendingId = p.pendingId }
                throw ProvisionRefusal.held.error("this permit's request was held for review (自動応答不可; ask FetchHeld for the outcome); pending_id=\(p.pendingId)")
            }
            throw ProvisionRefusal.permitReplayed.error("the permit was used before")
        }

        // 4. The permission list: the row, its inquirers and its item groups.
        guard let row = list.row(request.legalRow) else {
            throw ProvisionRefusal.rowUnlisted.error("項 \(request.legalRow) is not in the permission list (version \(list.version))")
        }
        guard row.agencies.contains(request.inquirer) else { throw ProvisionRefusal.rowInquirer.error("項 \(row.legalRow) does not name this inquirer") }
        guard row.itemGroups.contains(request.itemGroup) else {
            throw ProvisionRefusal.rowItemGroup.error("項 \(row.legalRow) does not allow the item group \(request.itemGroup.listName)")
        }

        // 5. The person, current unless the row covers 除票.
        guard let id, let entry else { throw ProvisionRefusal.personUnknown.error("no person of this tenant has that 符号") }
        if entry.isRemoved && !row.removedResidents {
            throw ProvisionRefusal.personNotCurrent.error("項 \(row.legalRow) covers current residents only")
        }

        // 6. 自動応答不可: held for an approver.
        let record = try entry.resident()
        if let reason = try ProvisionPayloads.holdReason(group: request.itemGroup, record: record, in: version.state) {
            var p = PendingProvision()
            p.pendingId = "P" + secureRandomHex(12)
            p.state = .held
            p.permitId = permit.permitId
            p.inquirer = request.inquirer
            p.legalRow = request.legalRow
            p.person = id.string
            p.fugo = request.fugo
            p.itemGroup = request.itemGroup
            p.inquirerPublicKey = request.inquirerPublicKey
            p.route = request.route
            p.reason = reason
            p.heldUnixMs = now
            return loop.makeFutureWithTask { [p] in
                try await Self.save(p, db)
                notes.note { $0.pendingId = p.pendingId }
                throw ProvisionRefusal.held.error("held for review (自動応答不可): \(reason); pending_id=\(p.pendingId)")
            }
        }

        // 7. The answer: the group's items, sealed to the inquirer.
        let payload = try ProvisionPayloads.make(group: request.itemGroup, record: record, removed: entry.isRemoved, in: version.state, permit: permit, nowUnixMs: now)
        var response = ProvideResponse()
        response.answer = try sealer.seal(payload.encodedBytes, to: request.inquirerPublicKey, permitID: permit.permitId)
        return loop.makeSucceededFuture(response)
    }

    /// The held provision a request names, noted for the record.
    func held(_ request: HeldRequest, notes: AuditNotes) throws -> PendingProvision {
        guard !request.pendingId.isEmpty, request.pendingId.utf8.count <= 64 else { throw RPCError.invalidArgument("pending_id: is required") }
        guard let p = try tenants.database(request.tenant).version.state.pending[request.pendingId] else {
            // Recorded only in the form this server issues: what a caller typed there (a
            // mistyped 個人番号, say) does not reach the trail.
            notes.note { $0.pendingId = Self.recordable(pendingID: request.pendingId) }
            throw RPCError(.notFound, "no held provision with that pending_id")
        }
        notes.note { r in
            r.subject = p.person
            r.pendingId = p.pendingId
            r.permitId = p.permitId
            r.inquirer = p.inquirer
            r.itemGroup = UInt32(bitPattern: p.itemGroup.rawValue)
            r.legalRow = String(p.legalRow)
        }
        return p
    }

    /// What a review shows, as a release names it: the payload's SHA-256 without its
    /// production time (protobuf-c packs fields in order, so equal payloads give equal bytes).
    static func reviewDigest(_ payload: ProvisionPayload) -> [UInt8] {
        var p = payload
        p.producedUnixMs = 0
        return SHA256.hash(p.encodedBytes)
    }

    /// What a held provision would send now, from the person's current record.
    func payload(for p: PendingProvision, in state: RegisterState) throws -> ProvisionPayload {
        guard let entry = state.person(p.person) else { throw RPCError(.notFound, "the person of this held provision is no longer in the register") }
        var permit = ProvisionPermit()
        permit.permitId = p.permitId
        permit.tenant = state.tenant
        permit.fugo = p.fugo
        return try ProvisionPayloads.make(group: p.itemGroup, person: entry, in: state, permit: permit, nowUnixMs: nowMs)
    }

    /// A pending id as the trail may hold it: only one of the form this server issues
    /// ("P" and 24 hex digits). Anything else a caller sent (a mistyped 個人番号, say) is
    /// left out of the record; a found provision's record names its person anyway.
    static func recordable(pendingID s: String) -> String {
        s.utf8.count == 25 && s.hasPrefix("P") && s.utf8.dropFirst().allSatisfy { (48...57).contains($0) || (97...102).contains($0) } ? s : ""
    }

    static func isFugo(_ s: String) -> Bool {
        s.utf8.count == 32 && s.utf8.allSatisfy { (48...57).contains($0) || (65...70).contains($0) || (97...102).contains($0) }
    }

    static func save(_ p: PendingProvision, _ db: TenantDatabase) async throws {
        var e = RegisterEvent()
        e.kind = .provisionHold
        e.pending = p
        try await db.apply(e)
    }
}
