import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanService
import ChukanStore
import Foundation
import Testing

/// 照会 and 符号 over mutual TLS: who may ask what, masking of the 個人番号, the 4情報 rule,
/// paging, codes that are stable, 1:1 and opaque, and an audit record for every inquiry.
@Suite(.serialized) struct InquiryAndCodesTests {
    static let pki = try! TestPKI.make(clients: ["clerk", "number-clerk", "code-manager", "registrar", "clerk-chiyoda"])
    static let asahikawa = "012041", chiyoda = "131016"
    static let people: [Resident] = currentResidents(60, seed: 21)

    func start() async throws -> ServiceFixture {
        let policy = Policy(principals: [
            policyPrincipal("clerk", tenant: Self.asahikawa, [.clerk]),
            policyPrincipal("number-clerk", tenant: Self.asahikawa, [.numberClerk]),
            policyPrincipal("code-manager", tenant: Self.asahikawa, [.codeManager]),
            policyPrincipal("registrar", tenant: Self.asahikawa, [.registrar]),
            policyPrincipal("clerk-chiyoda", tenant: Self.chiyoda, [.clerk]),
        ])
        return try await ServiceFixture.start(
            pki: Self.pki, policy: policy, tenants: [Self.asahikawa, Self.chiyoda],
            residents: [Self.asahikawa: Self.people, Self.chiyoda: Array(Self.people.prefix(5))])
    }

    func lookup(_ c: RPCClient, _ kind: LookupRequestKeyKind, _ key: String, tenant: String = asahikawa) async throws -> PersonView {
        var r = LookupRequest()
        r.tenant = tenant
        r.keyKind = kind
        r.key = key
        return try await c.unary(service: "chukan.v1.Inquiry", method: "Lookup", request: r, as: LookupResponse.self).person!
    }

    func acquire(_ c: RPCClient, _ id: String, tenant: String = asahikawa) async throws -> String {
        var r = AcquireCodeRequest()
        r.tenant = tenant
        r.integratedAtenaNumber = id
        return try await c.unary(service: "chukan.v1.Codes", method: "AcquireCode", request: r, as: CodeResponse.self).fugo
    }

    @Test func inquiriesMaskTheNumberAndAreRecorded() async throws {
        let f = try await start()
        let clerk = try await f.client("clerk"), numberClerk = try await f.client("number-clerk")
        let p = Self.people[7]
        // A clerk finds the person by 宛名番号, 住民票コード and 統合宛名番号, without the 個人番号.
        for (kind, key) in [(LookupRequestKeyKind.atenaNumber, p.atenaNumber), (.juminhyoCode, p.juminhyoCode), (.integratedAtenaNumber, p.integratedAtenaNumber)] {
            let v = try await lookup(clerk, kind, key)
            #expect(v.integratedAtenaNumber == p.integratedAtenaNumber && v.resident?.kojinBango == "" && v.resident?.name == p.name)
        }
        // By 個人番号: a number-clerk only, and only a number-clerk sees it.
        #expect(await statusCode { _ = try await lookup(clerk, .kojinBango, p.kojinBango) } == .permissionDenied)
        #expect(try await lookup(numberClerk, .kojinBango, p.kojinBango).resident?.kojinBango == p.kojinBango)
        #expect(await statusCode { _ = try await lookup(clerk, .atenaNumber, "NOSUCH1") } == .notFound)
        #expect(await statusCode { _ = try await lookup(clerk, .atenaNumber, "not valid!") } == .invalidArgument)
        #expect(await statusCode { _ = try await lookup(clerk, .keyKindUnspecified, p.atenaNumber) } == .invalidArgument)
        // Another tenant's clerk cannot ask here, whatever it sends.
        let other = try await f.client("clerk-chiyoda")
        #expect(await statusCode { _ = try await lookup(other, .atenaNumber, p.atenaNumber) } == .permissionDenied)
        // No outbound network inquiry for resident-register work.
        var net = NetworkInquiryRequest()
        net.tenant = Self.asahikawa
        net.work = "resident-register"
        net.legalRow = "free text a caller chose"  // not copied into the record
        #expect(await statusCode { _ = try await clerk.unary(service: "chukan.v1.Inquiry", method: "RequestNetworkInquiry", request: net, as: NetworkInquiryResponse.self) } == .failedPrecondition)
        // A registrar is not a reader.
        let registrar = try await f.client("registrar")
        #expect(await statusCode { _ = try await lookup(registrar, .atenaNumber, p.atenaNumber) } == .permissionDenied)
        for c in [clerk, numberClerk, other, registrar] { await c.close() }
        await f.stop()

        let records = try f.auditRecords(Self.asahikawa)
        let lookups = records.filter { $0.operation == "chukan.v1.Inquiry/Lookup" }
        #expect(lookups.count == 10)
        #expect(lookups.filter { $0.outcomeCode == 0 }.allSatisfy { $0.subject == p.integratedAtenaNumber })
        #expect(lookups.contains { $0.principal == "clerk-chiyoda" && $0.outcomeCode == UInt32(StatusCode.permissionDenied.rawValue) })
        #expect(records.contains { $0.operation == "chukan.v1.Inquiry/RequestNetworkInquiry" && $0.outcomeCode == UInt32(StatusCode.failedPrecondition.rawValue) && $0.legalRow.isEmpty })
        // No record carries a 個人番号, whichever key the inquiry used.
        let numbers = Set(Self.people.map(\.kojinBango))
        #expect(!records.contains { r in [r.subject, r.outcomeDetail, r.operation, r.principal].contains { numbers.contains($0) } })
        #expect(try AuditLog.verify(directory: "\(f.root)/data/\(Self.asahikawa)/audit", keyRing: TenantKeyRing.load(tenant: Self.asahikawa, directory: f.keys)).firstBad == nil)
    }

    @Test func fourFactsSearchAndHouseholdPaging() async throws {
        let f = try await start()
        let clerk = try await f.client("clerk")
        let p = Self.people[3]
        func search(_ configure: (inout SearchRequest) -> Void) async throws -> PersonPage {
            var r = SearchRequest()
            r.tenant = Self.asahikawa
            configure(&r)
            return try await clerk.unary(service: "chukan.v1.Inquiry", method: "Search", request: r, as: PersonPage.self)
        }
        // A name alone is not enough (DOMAIN.md §4).
        #expect(await statusCode { _ = try await search { $0.kana = p.name!.kana } } == .invalidArgument)
        #expect(await statusCode { _ = try await search { $0.birthDate = p.birthDate } } == .invalidArgument)
        let byBirth = try await search { $0.kana = p.name!.kana; $0.birthDate = p.birthDate }
        #expect(byBirth.people.contains { $0.integratedAtenaNumber == p.integratedAtenaNumber })
        #expect(byBirth.people.allSatisfy { $0.resident?.kojinBango == "" })
        let byAddress = try await search { $0.kana = p.name!.kana; $0.address = p.address!.address!.text }
        #expect(byAddress.people.contains { $0.integratedAtenaNumber == p.integratedAtenaNumber })
        let both = try await search { $0.kana = p.name!.kana; $0.birthDate = CalendarDate(1801, 1, 1); $0.address = p.address!.address!.text }
        #expect(both.people.isEmpty)

        // A household, one member per page.
        let household = Self.people.filter { $0.householdNumber == p.householdNumber }
        var seen: [String] = []
        var token = ""
        repeat {
            var r = HouseholdRequest()
            r.tenant = Self.asahikawa
            r.householdNumber = p.householdNumber
            r.pageSize = 1
            r.pageToken = token
            let page = try await clerk.unary(service: "chukan.v1.Inquiry", method: "Household", request: r, as: PersonPage.self)
            #expect(page.total == UInt32(household.count) && page.people.count == 1)
            seen += page.people.map(\.integratedAtenaNumber)
            token = page.nextPageToken
        } while !token.isEmpty
        #expect(seen.sorted() == household.map(\.integratedAtenaNumber).sorted())
        var bad = HouseholdRequest()
        bad.tenant = Self.asahikawa
        bad.householdNumber = p.householdNumber
        bad.pageSize = 500
        #expect(await statusCode { _ = try await clerk.unary(service: "chukan.v1.Inquiry", method: "Household", request: bad, as: PersonPage.self) } == .invalidArgument)
        await clerk.close()
        await f.stop()
    }

    /// Keyset paging: a member who leaves the household between two pages makes the next
    /// page neither skip nor repeat anyone (with offsets as tokens, it skipped one).
    @Test func aWriteBetweenPagesSkipsNoOne() async throws {
        let f = try await start()
        let clerk = try await f.client("clerk")
        let household = try #require(Dictionary(grouping: Self.people, by: \.householdNumber).values.filter { $0.count >= 2 }.max { $0.count < $1.count })
        func page(_ token: String) async throws -> PersonPage {
            var r = HouseholdRequest()
            r.tenant = Self.asahikawa
            r.householdNumber = household[0].householdNumber
            r.pageSize = 1
            r.pageToken = token
            return try await clerk.unary(service: "chukan.v1.Inquiry", method: "Household", request: r, as: PersonPage.self)
        }
        let first = try await page("")
        let firstID = try #require(first.people.first?.integratedAtenaNumber)
        // The member just shown moves to a household of their own.
        var e = RegisterEvent()
        e.kind = .changeHousehold
        e.reason = .setaiHenko
        e.person = firstID
        e.householdNumber = "HMOVED1"
        e.relationship = "世帯主"
        e.eventDate = CalendarDate(2026, 11, 1)
        try await f.tenants.database(Self.asahikawa).apply(e)
        var seen = [firstID]
        var token = first.nextPageToken
        while !token.isEmpty {
            let p = try await page(token)
            seen += p.people.map(\.integratedAtenaNumber)
            token = p.nextPageToken
        }
        #expect(seen.sorted() == household.map(\.integratedAtenaNumber).sorted())
        #expect(await statusCode { _ = try await page("not a token!") } == .invalidArgument)
        await clerk.close()
        await f.stop()
    }

    @Test func codesAreStableOneToOneAndOpaque() async throws {
        let f = try await start()
        let manager = try await f.client("code-manager"), clerk = try await f.client("clerk")
        let ids = Self.people.prefix(20).map(\.integratedAtenaNumber)
        var codes: [String] = []
        for id in ids { codes.append(try await acquire(manager, id)) }
        #expect(Set(codes).count == ids.count)
        #expect(codes.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) })
        #expect(try await acquire(manager, ids[0]) == codes[0], "a second call returns the same 符号")
        // Opaque: no identifier of the person shows in it.
        for (i, p) in Self.people.prefix(20).enumerated() {
            #expect(![p.integratedAtenaNumber, p.kojinBango, p.juminhyoCode, p.atenaNumber].contains { codes[i].contains($0) })
        }
        // Back to the person; a 個人番号 change leaves the 符号 as it was.
        var back = LookupCodeRequest()
        back.tenant = Self.asahikawa
        back.fugo = codes[4]
        #expect(try await manager.unary(service: "chukan.v1.Codes", method: "LookupCode", request: back, as: CodeResponse.self).integratedAtenaNumber == ids[4])
        var change = RegisterEvent()
        change.kind = .changeKojinBango
        change.reason = .kojinBangoHenko
        change.person = ids[4]
        change.kojinBango = newNumber()
        change.eventDate = CalendarDate(2026, 11, 1)
        try await f.tenants.database(Self.asahikawa).apply(change)
        #expect(try await acquire(manager, ids[4]) == codes[4])
        // A clerk finds the person by 符号.
        #expect(try await lookup(clerk, .fugo, codes[4]).integratedAtenaNumber == ids[4])
        // Errors: unknown person, malformed code, another tenant's code, a role without rights.
        #expect(await statusCode { _ = try await acquire(manager, "NOSUCHPERSON") } == .notFound)
        back.fugo = "xyz"
        #expect(await statusCode { _ = try await manager.unary(service: "chukan.v1.Codes", method: "LookupCode", request: back, as: CodeResponse.self) } == .invalidArgument)
        #expect(await statusCode { _ = try await acquire(clerk, ids[0]) } == .permissionDenied)
        let issuers = CodeIssuers(keyDirectory: f.keys)
        let chiyodaCode = try issuers.issuer(Self.chiyoda).code(for: PackedID(ids[0])!)
        #expect(chiyodaCode != codes[0], "a 符号 is per tenant")
        back.fugo = chiyodaCode
        #expect(await statusCode { _ = try await manager.unary(service: "chukan.v1.Codes", method: "LookupCode", request: back, as: CodeResponse.self) } == .notFound)
        // A lost code key is an error, never silently replaced (that would change every 符号).
        let empty = NSTemporaryDirectory() + "chukan-nokeys-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        #expect(throws: RPCError.self) { _ = try CodeIssuers(keyDirectory: empty).issuer(Self.asahikawa) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty).isEmpty)
        // Lower-case hex is the same 符号.
        back.fugo = codes[2].lowercased()
        #expect(try await manager.unary(service: "chukan.v1.Codes", method: "LookupCode", request: back, as: CodeResponse.self).integratedAtenaNumber == ids[2])
        // A fresh issuer (a restart) gives the same codes: the key file is the state.
        #expect(try CodeIssuers(keyDirectory: f.keys).issuer(Self.asahikawa).code(for: PackedID(ids[7])!) == codes[7])
        await manager.close()
        await clerk.close()
        await f.stop()
        let acquisitions = try f.auditRecords(Self.asahikawa).filter { $0.operation == "chukan.v1.Codes/AcquireCode" }
        #expect(acquisitions.filter { $0.outcomeCode == 0 }.count == ids.count + 2)
    }

    /// A valid 個人番号 that none of the synthetic people holds.
    func newNumber() -> String {
        let first11 = [9, 9, 9, 9, 8, 8, 8, 8, 7, 7, 7]
        return first11.map(String.init).joined() + String(Identifiers.myNumberCheckDigit(first11))
    }
}
