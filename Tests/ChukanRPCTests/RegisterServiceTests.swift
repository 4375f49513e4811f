import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanService
import ChukanStore
import Foundation
import Testing

/// 副本 sync over mutual TLS: the registrar writes, each operation by its own method; a
/// retried write with the same idempotency key is applied once, across a restart too.
@Suite(.serialized) struct RegisterServiceTests {
    static let pki = try! TestPKI.make(clients: ["registrar", "clerk", "registrar-2", "approver", "both"])
    static let tenant = "012041"
    static let people: [Resident] = currentResidents(10, seed: 31)
    static let policy = Policy(principals: [
        policyPrincipal("registrar", tenant: tenant, [.registrar]), policyPrincipal("clerk", tenant: tenant, [.clerk]),
        policyPrincipal("registrar-2", tenant: tenant, [.registrar]), policyPrincipal("approver", tenant: tenant, [.approver]),
        policyPrincipal("both", tenant: tenant, [.registrar, .approver]),
    ])

    func write(_ c: RPCClient, _ method: String, key: String = "", _ configure: (inout RegisterEvent) -> Void) async throws -> WriteResponse {
        var e = RegisterEvent()
        e.eventDate = CalendarDate(2026, 11, 1)
        e.notifiedOn = CalendarDate(2026, 11, 2)
        configure(&e)
        var r = WriteRequest()
        r.tenant = Self.tenant
        r.idempotencyKey = key
        r.event = e
        return try await c.unary(service: "chukan.v1.Register", method: method, request: r, as: WriteResponse.self)
    }

    @Test func writesAreAppliedOnceAcrossRetriesAndRestarts() async throws {
        let f = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant])
        let registrar = try await f.client("registrar")
        let p = Self.people[0]
        let first = try await write(registrar, "Record", key: "rec-0001") { $0.reason = .tennyu; $0.resident = p }
        #expect(first.person == p.integratedAtenaNumber && !first.replayed)
        // The same request again: the first write's answer, nothing applied twice.
        let retry = try await write(registrar, "Record", key: "rec-0001") { $0.reason = .tennyu; $0.resident = p }
        #expect(retry.sequence == first.sequence && retry.replayed)
        // The same key for another request is refused.
        #expect(await statusCode { _ = try await write(registrar, "Record", key: "rec-0001") { $0.reason = .tennyu; $0.resident = Self.people[1] } } == .failedPrecondition)
        // Without a key a second 記載 of the same person is the rule's refusal.
        #expect(await statusCode { _ = try await write(registrar, "Record") { $0.reason = .tennyu; $0.resident = p } } == .failedPrecondition)
        // Each method writes its own kind only.
        #expect(await statusCode { _ = try await write(registrar, "Correct") { $0.kind = .record; $0.resident = p } } == .invalidArgument)
        // 転居 through its method; then a clerk reads it back at once.
        var moved = p
        moved.address = Self.people[5].address
        let move = try await write(registrar, "MoveWithin", key: "move-1") { $0.reason = .tenkyo; $0.resident = moved }
        #expect(move.sequence == first.sequence + 1)
        let clerk = try await f.client("clerk")
        var look = LookupRequest()
        look.tenant = Self.tenant
        look.keyKind = .integratedAtenaNumber
        look.key = p.integratedAtenaNumber
        #expect(try await clerk.unary(service: "chukan.v1.Inquiry", method: "Lookup", request: look, as: LookupResponse.self).person?.resident?.address == moved.address)
        // A clerk may not write; a bad record names its field.
        #expect(await statusCode { _ = try await write(clerk, "Record") { $0.reason = .tennyu; $0.resident = Self.people[2] } } == .permissionDenied)
        var broken = Self.people[3]
        broken.kojinBango = "123"
        do {
            _ = try await write(registrar, "Record") { $0.reason = .tennyu; $0.resident = broken }
            Issue.record("an invalid record was written")
        } catch let e as RPCError {
            #expect(e.code == .invalidArgument && e.message.contains("kojin_bango") && !e.message.contains("123"))
        }
        await registrar.close()
        await clerk.close()
        await f.stop()

        // After a restart the key is still remembered.
        let again = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant], reusing: f.root)
        let r2 = try await again.client("registrar")
        let late = try await write(r2, "MoveWithin", key: "move-1") { $0.reason = .tenkyo; $0.resident = moved }
        #expect(late.sequence == move.sequence && late.replayed)
        // And after a snapshot and another restart, too.
        _ = try again.tenants.database(Self.tenant).snapshot()
        await r2.close()
        await again.stop()
        let third = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant], reusing: f.root)
        let r3 = try await third.client("registrar")
        #expect(try await write(r3, "Record", key: "rec-0001") { $0.reason = .tennyu; $0.resident = p }.sequence == first.sequence)
        #expect(try third.tenants.database(Self.tenant).current.person(p.integratedAtenaNumber)?.history.count == 2)
        await r3.close()
        await third.stop()
        // Every write is in the audit trail under the person's internal id.
        let writes = try third.auditRecords(Self.tenant).filter { $0.operation.hasPrefix("chukan.v1.Register/") }
        #expect(writes.filter { $0.outcomeCode == 0 }.allSatisfy { $0.subject == p.integratedAtenaNumber })
        #expect(writes.count == 10)
        // The three retries answered with the first write's result say so: four writes were made.
        let replays = writes.filter { $0.outcomeDetail.hasPrefix("replayed: ") }.map(\.outcomeDetail)
        #expect(replays == ["replayed: the write of sequence \(first.sequence)", "replayed: the write of sequence \(move.sequence)", "replayed: the write of sequence \(first.sequence)"], "\(replays)")
        #expect(writes.filter { $0.outcomeCode == 0 && $0.outcomeDetail.isEmpty }.count == 2)
    }

    func ticket(_ c: RPCClient, _ method: String, _ id: String = "", purpose: String = "", refuse: Bool = false) async throws -> ExportTicket {
        var r = ExportRequest()
        r.tenant = Self.tenant
        r.exportId = id
        r.purpose = purpose
        r.refuse = refuse
        return try await c.unary(service: "chukan.v1.Register", method: method, request: r, as: ExportTicket.self)
    }

    func export(_ c: RPCClient, _ id: String) async throws -> [PersonView] {
        var r = ExportRequest()
        r.tenant = Self.tenant
        r.exportId = id
        var people: [PersonView] = []
        for try await chunk in c.serverStreaming(service: "chukan.v1.Register", method: "Export", request: r, as: ExportChunk.self) {
            people += chunk.people
        }
        return people
    }

    /// An approval is good for 24 hours: past that the export is refused, nothing is sent,
    /// and the ticket stays approved-but-stale (a new request is needed).
    @Test func anExportApprovalLapsesAfter24Hours() async throws {
        let clock = TestClock(Date(timeIntervalSince1970: 1_796_000_400))
        let f = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant], residents: [Self.tenant: Self.people], now: { clock.now })
        let registrar = try await f.client("registrar"), approver = try await f.client("approver")
        let asked = try await ticket(registrar, "RequestExport", purpose: "reconciliation")
        #expect(try await ticket(approver, "ApproveExport", asked.exportId).state == .approved)
        clock.advance(24 * 3600 + 1)
        do {
            _ = try await export(registrar, asked.exportId)
            Issue.record("a stale approval exported")
        } catch let e as RPCError {
            #expect(e.code == .failedPrecondition && e.message.contains("more than 24 hours old"), "\(e)")
        }
        #expect(try f.tenants.database(Self.tenant).current.exports[asked.exportId]?.state == .approved)
        await registrar.close()
        await approver.close()
        await f.stop()
    }

    @Test func anExportNeedsAnotherPersonsApprovalAndIsTakenOnce() async throws {
        let f = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant], residents: [Self.tenant: Self.people])
        let registrar = try await f.client("registrar"), other = try await f.client("registrar-2")
        let approver = try await f.client("approver"), both = try await f.client("both")
        #expect(await statusCode { _ = try await ticket(registrar, "RequestExport") } == .invalidArgument, "a purpose is required")
        let asked = try await ticket(registrar, "RequestExport", purpose: "annual reconciliation with the resident system")
        #expect(asked.state == .requested && asked.requestedBy == "registrar")
        // Not before approval; not approved by a registrar; not by the requester either.
        #expect(await statusCode { _ = try await export(registrar, asked.exportId) } == .failedPrecondition)
        #expect(await statusCode { _ = try await ticket(registrar, "ApproveExport", asked.exportId) } == .permissionDenied)
        let own = try await ticket(both, "RequestExport", purpose: "own")
        #expect(await statusCode { _ = try await ticket(both, "ApproveExport", own.exportId) } == .permissionDenied, "four eyes")
        #expect(try await ticket(approver, "ApproveExport", asked.exportId).state == .approved)
        // Only the requester takes it, once.
        #expect(await statusCode { _ = try await export(other, asked.exportId) } == .permissionDenied)
        let people = try await export(registrar, asked.exportId)
        #expect(people.count == Self.people.count)
        #expect(Set(people.map(\.integratedAtenaNumber)) == Set(Self.people.map(\.integratedAtenaNumber)))
        #expect(people.contains { $0.resident?.kojinBango == Self.people[0].kojinBango }, "the export is the whole record")
        #expect(await statusCode { _ = try await export(registrar, asked.exportId) } == .failedPrecondition)
        // A refused ticket exports nothing; tickets survive a restart.
        let refused = try await ticket(registrar, "RequestExport", purpose: "again")
        #expect(try await ticket(approver, "ApproveExport", refused.exportId, refuse: true).state == .refused)
        #expect(await statusCode { _ = try await export(registrar, refused.exportId) } == .failedPrecondition)
        // An id that is none of the server's (here a 個人番号 typed by mistake) is not found,
        // and reaches neither the answer nor the trail.
        let typo = Self.people[0].kojinBango
        do {
            _ = try await ticket(approver, "ApproveExport", typo)
            Issue.record("an unknown export id was approved")
        } catch let e as RPCError {
            #expect(e.code == .notFound && e.message == "no export with that export_id" && !e.message.contains(typo))
        }
        for c in [registrar, other, approver, both] { await c.close() }
        await f.stop()
        let g = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant], reusing: f.root)
        #expect(try g.tenants.database(Self.tenant).current.exports[asked.exportId]?.state == .used)
        await g.stop()
        let trail = try g.auditRecords(Self.tenant).filter { $0.operation == "chukan.v1.Register/Export" }
        #expect(trail.contains { $0.subject == asked.exportId && $0.outcomeCode == 0 && $0.outcomeDetail.isEmpty })
        // Recorded before the first chunk left, too: the stream's own record comes only at its end.
        let started = try #require(trail.first { $0.subject == asked.exportId && $0.outcomeDetail.hasPrefix("started: ") })
        #expect(trail.firstIndex { $0.sequence == started.sequence }! < trail.firstIndex { $0.subject == asked.exportId && $0.outcomeDetail.isEmpty }!)
        #expect(!(try g.auditRecords(Self.tenant)).contains { $0.subject.contains(Self.people[0].kojinBango) || $0.outcomeDetail.contains(Self.people[0].kojinBango) })
    }

    /// A 世帯変更: the person becomes head of a new household.
    static func movingHousehold(_ r: Resident, to household: String) -> WriteRequest {
        var change = RegisterEvent()
        change.kind = .changeHousehold
        change.reason = .setaiHenko
        change.person = r.integratedAtenaNumber
        change.householdNumber = household
        change.relationship = "世帯主"
        change.eventDate = CalendarDate(2026, 11, 1)
        var w = WriteRequest()
        w.tenant = tenant
        w.event = change
        return w
    }

    /// One resident, as an import streams it (a 記載 by 転入).
    static func importing(_ r: Resident) -> WriteRequest {
        var e = RegisterEvent()
        e.reason = .tennyu
        e.resident = r
        var w = WriteRequest()
        w.tenant = tenant
        w.event = e
        return w
    }

    /// A 除票 in an import is recorded, then removed — the removal checked before either
    /// is written, so one the register would refuse leaves no resident behind — and the
    /// same 除票 imported again is already there, its history unchanged.
    @Test func anImportedRemovedRecordEndsAsA除票() async throws {
        let f = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant])
        let registrar = try await f.client("registrar")
        var people: [Resident] = currentResidents(3, seed: 91)
        people[0].removalReason = .shibou
        people[0].removedOn = CalendarDate(2020, 5, 1)
        people[1].removalReason = .shibou
        people[1].removedOn = CalendarDate(2020, 5, 0)
        people[1].removedOn?.precision = .yearMonth
        people[2].removalReason = .tenshutsu
        people[2].removedOn = CalendarDate(2024, 2, 29)
        let call = try await registrar.clientStreaming(service: "chukan.v1.Register", method: "Import", sending: WriteRequest.self, receiving: ImportSummary.self)
        for r in people { try await call.send(Self.importing(r)) }
        // In the same stream, right behind it: the same 除票 again, and a change to the
        // person, who is a 除票 by then (record and removal are applied in one turn).
        try await call.send(Self.importing(people[0]))
        try await call.send(Self.movingHousehold(people[0], to: "HNEW2"))
        let summary = try await call.finish()
        #expect(summary.accepted == 2 && summary.rejected == 3, "\(summary)")
        #expect(summary.rejections == [
            "record 2: INVALID_ARGUMENT: resident.removed_on: a 除票 needs a full, real date",
            "record 4: ALREADY_EXISTS: the 除票 is already in the register",
            "record 5: FAILED_PRECONDITION: the person's record is a 除票",
        ], "\(summary.rejections)")
        let state = try f.tenants.database(Self.tenant).current
        let first = try #require(state.person(people[0].integratedAtenaNumber))
        #expect(first.isRemoved && first.removedOn == CalendarDate(2020, 5, 1) && first.history.map(\.kind) == [.record, .remove])
        #expect(state.person(people[1].integratedAtenaNumber) == nil)
        #expect(state.person(people[2].integratedAtenaNumber)?.isRemoved == true)
        // Run again: nothing moves back in and out.
        let again = try await registrar.clientStreaming(service: "chukan.v1.Register", method: "Import", sending: WriteRequest.self, receiving: ImportSummary.self)
        try await again.send(Self.importing(people[0]))
        let second = try await again.finish()
        #expect(second.accepted == 0 && second.rejections == ["record 1: ALREADY_EXISTS: the 除票 is already in the register"], "\(second)")
        #expect(try f.tenants.database(Self.tenant).current.person(people[0].integratedAtenaNumber)?.history.count == 2)
        await registrar.close()
        await f.stop()
    }

    @Test func aStreamedImportLoadsManyAndSaysWhatItRefused() async throws {
        let f = try await ServiceFixture.start(pki: Self.pki, policy: Self.policy, tenants: [Self.tenant])
        let registrar = try await f.client("registrar"), clerk = try await f.client("clerk")
        let many: [Resident] = currentResidents(600, seed: 77)
        let call = try await registrar.clientStreaming(service: "chukan.v1.Register", method: "Import", sending: WriteRequest.self, receiving: ImportSummary.self)
        for r in many { try await call.send(Self.importing(r)) }
        // Applied in order of arrival: the change of a person right behind their 記載.
        try await call.send(Self.movingHousehold(many[599], to: "HNEW1"))
        var broken = many[0]
        broken.juminhyoCode = "12"
        try await call.send(Self.importing(broken))       // invalid, and a 記載 of someone resident
        try await call.send(Self.importing(many[1]))      // already resident
        // Not a register operation: a staff account with every right must not ride in.
        var sneaky = WriteRequest()
        sneaky.tenant = Self.tenant
        var staffEvent = RegisterEvent()
        staffEvent.kind = .staffAdd
        var account = StaffAccount()
        account.staffId = "intruder"
        account.roles = ["tenant-admin"]
        staffEvent.staff = account
        sneaky.event = staffEvent
        try await call.send(sneaky)
        let summary = try await call.finish()
        #expect(summary.accepted == 601 && summary.rejected == 3, "\(summary)")
        #expect(summary.rejections.contains { $0.hasPrefix("record 604: INVALID_ARGUMENT: event.kind") })
        #expect(try f.tenants.database(Self.tenant).current.person(many[599].integratedAtenaNumber)?.resident().householdNumber == "HNEW1")
        #expect(try f.tenants.database(Self.tenant).current.staff["intruder"] == nil)
        #expect(summary.rejections.contains { $0.hasPrefix("record 602: INVALID_ARGUMENT") && $0.contains("juminhyo_code") && !$0.contains("\"12\"") })
        #expect(summary.rejections.contains { $0.hasPrefix("record 603: FAILED_PRECONDITION") })
        #expect(try f.tenants.database(Self.tenant).current.count == 600)
        // A clerk may not import; the refusal reaches the sender.
        let refused = try await clerk.clientStreaming(service: "chukan.v1.Register", method: "Import", sending: WriteRequest.self, receiving: ImportSummary.self)
        var code: StatusCode?
        do {
            for r in many.prefix(50) { try await refused.send(Self.importing(r)) }
            _ = try await refused.finish()
        } catch let e as RPCError {
            code = e.code
        }
        #expect(code == .permissionDenied)
        await registrar.close()
        await clerk.close()
        await f.stop()
        let imports = try f.auditRecords(Self.tenant).filter { $0.operation == "chukan.v1.Register/Import" }
        #expect(imports.contains { $0.outcomeCode == 0 && $0.subject == "import of 604 writes" })
    }
}
