import ChukanCore
import ChukanDev
import ChukanProto
import ChukanRPC
import ChukanService
import ChukanStore
import ChukanTLS
import Foundation
import Logging
import NIOPosix
import Testing

/// Every Admin call against every kind of principal, over mutual TLS: the policy decides,
/// and every decision lands in the right audit stream, durably, chain intact.
@Suite(.serialized) struct AccessControlTests {
    static let pki: TestPKI = {
        let pki = try! TestPKI.make(clients: [
            "operator", "admin-asahikawa", "admin-chiyoda", "registrar-asahikawa", "terminal-asahikawa", "stranger",
        ])
        // A certificate of the CA whose subject holds two common names, the operator's first:
        // which one the policy meant would be a guess, so it is known by its fingerprint alone.
        try! DevCA(dir: pki.dir).issue(name: "two-names", commonName: "operator/CN=intruder", serverNames: nil, days: 30)
        return pki
    }()
    static let asahikawa = "012041", chiyoda = "131016"

    static func policy() -> Policy {
        func p(_ name: String, _ kind: Policy.Kind, _ tenant: String?, _ roles: Set<Role>) -> Policy.Principal {
            policyPrincipal(name, kind, tenant: tenant, roles)
        }
        return Policy(principals: [
            p("operator", .system, nil, [.platformOperator]),
            p("admin-asahikawa", .system, asahikawa, [.tenantAdmin]),
            p("admin-chiyoda", .system, chiyoda, [.tenantAdmin]),
            p("registrar-asahikawa", .system, asahikawa, [.registrar]),
            p("terminal-asahikawa", .terminal, asahikawa, []),
        ])
    }

    func start() async throws -> ServiceFixture {
        try await ServiceFixture.start(pki: Self.pki, policy: Self.policy(), tenants: [Self.asahikawa, Self.chiyoda])
    }

    enum Call: CaseIterable {
        case list, snapshotOwn, snapshotOther, addInvalid, removeUnknown, reloadPolicy
    }

    func invoke(_ call: Call, as client: RPCClient) async -> StatusCode? {
        await statusCode {
            switch call {
            case .list: _ = try await client.unary(service: "chukan.v1.Admin", method: "ListTenants", request: ListTenantsRequest(), as: ListTenantsResponse.self)
            case .snapshotOwn, .snapshotOther:
                var r = TenantRequest()
                r.tenant = call == .snapshotOwn ? Self.asahikawa : Self.chiyoda
                _ = try await client.unary(service: "chukan.v1.Admin", method: "CreateSnapshot", request: r, as: SnapshotResponse.self)
            case .addInvalid:
                var r = TenantRequest()
                r.tenant = "012040"  // wrong check digit
                _ = try await client.unary(service: "chukan.v1.Admin", method: "AddTenant", request: r, as: TenantStatus.self)
            case .removeUnknown:
                var r = TenantRequest()
                r.tenant = "462012"
                _ = try await client.unary(service: "chukan.v1.Admin", method: "RemoveTenant", request: r, as: TenantStatus.self)
            case .reloadPolicy:
                _ = try await client.unary(service: "chukan.v1.Admin", method: "ReloadPolicy", request: ReloadPolicyRequest(), as: ReloadPolicyResponse.self)
            }
        }
    }

    /// Two removals of one tenant at once (a retry of one that timed out): one removes it,
    /// the other is refused; nothing is written into the closed tenant's folder, and the
    /// tenant does not come back at the next start.
    @Test func aTenantIsRemovedOnce() async throws {
        let f = try await start()
        let tenants = f.tenants
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<2 { group.addTask { (try? tenants.remove(Self.asahikawa, force: true)) != nil } }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == 1, "\(outcomes)")
        #expect(tenants.state(Self.asahikawa) == nil)
        #expect(!FileManager.default.fileExists(atPath: "\(f.root)/data/\(Self.asahikawa)"))
        await f.stop()
        let again = TenantManager(configuration: .init(dataDirectory: "\(f.root)/data", keyDirectory: f.keys))
        again.startAll()
        #expect(!again.tenants.contains(Self.asahikawa) && again.tenants.contains(Self.chiyoda))
        again.closeAll()
    }

    /// A reloaded policy applies from the next call, on connections already open: a
    /// principal it no longer names is refused there; the operator's reload is recorded.
    @Test func aReloadedPolicyAppliesToOpenConnections() async throws {
        let path = NSTemporaryDirectory() + "chukan-policy-\(UUID().uuidString).yaml"
        func write(_ admins: Bool) throws {
            try """
                version: 1
                principals:
                  - {name: operator, kind: system, certificate_cn: operator, roles: [platform-operator]}
                """.appending(admins ? "\n  - {name: admin-asahikawa, kind: system, tenant: \"012041\", certificate_cn: admin-asahikawa, roles: [tenant-admin]}\n" : "\n")
                .write(toFile: path, atomically: true, encoding: .utf8)
        }
        try write(true)
        let f = try await ServiceFixture.start(pki: Self.pki, policy: try Policy.load(path: path), tenants: [Self.asahikawa], policyPath: path)
        let op = try await f.client("operator"), admin = try await f.client("admin-asahikawa")
        #expect(await invoke(.snapshotOwn, as: admin) == nil)
        try write(false)
        let reloaded = try await op.unary(service: "chukan.v1.Admin", method: "ReloadPolicy", request: ReloadPolicyRequest(), as: ReloadPolicyResponse.self)
        #expect(reloaded.principals == 1)
        #expect(await invoke(.snapshotOwn, as: admin) == .unauthenticated, "a principal the policy no longer names")
        await op.close()
        await admin.close()
        await f.stop()
        #expect(try f.platformRecords().contains { $0.operation == "chukan.v1.Admin/ReloadPolicy" && $0.outcomeCode == 0 })
    }

    /// The platform stream keeps the tenant an operator's call named only when it is a
    /// valid code; the answer quotes no other text the caller sent.
    @Test func thePlatformTrailKeepsOnlyValidTenantCodes() async throws {
        let f = try await start()
        let op = try await f.client("operator")
        var r = TenantRequest()
        r.tenant = "01204\u{1B}[31m forged text"
        var message = ""
        do {
            _ = try await op.unary(service: "chukan.v1.Admin", method: "CreateSnapshot", request: r, as: SnapshotResponse.self)
        } catch let e as RPCError {
            message = e.message
        }
        #expect(!message.isEmpty && !message.contains("forged"), "\(message)")
        r.tenant = "462012"  // valid, not held
        #expect(await statusCode { _ = try await op.unary(service: "chukan.v1.Admin", method: "CreateSnapshot", request: r, as: SnapshotResponse.self) } == .notFound)
        await op.close()
        await f.stop()
        let snapshots = try f.platformRecords().filter { $0.operation == "chukan.v1.Admin/CreateSnapshot" }
        #expect(snapshots.map(\.tenant) == ["", "462012"], "\(snapshots.map(\.tenant))")
        #expect(!snapshots.contains { $0.outcomeDetail.contains("forged") || $0.subject.contains("forged") })
    }

    @Test func roleByCallMatrix() async throws {
        let f = try await start()
        let denied = StatusCode.permissionDenied
        // nil: the call was allowed and succeeded; a code: what came back.
        let expected: [String: [Call: StatusCode?]] = [
            // The operator is allowed everything; the calls then fail on their own merits.
            "operator": [.list: nil, .snapshotOwn: nil, .snapshotOther: nil, .addInvalid: .invalidArgument, .removeUnknown: .notFound, .reloadPolicy: .failedPrecondition],
            "admin-asahikawa": [.list: nil, .snapshotOwn: nil, .snapshotOther: denied, .addInvalid: denied, .removeUnknown: denied, .reloadPolicy: denied],
            "admin-chiyoda": [.list: nil, .snapshotOwn: denied, .snapshotOther: nil, .addInvalid: denied, .removeUnknown: denied, .reloadPolicy: denied],
            "registrar-asahikawa": Dictionary(uniqueKeysWithValues: Call.allCases.map { ($0, denied) }),
            "terminal-asahikawa": Dictionary(uniqueKeysWithValues: Call.allCases.map { ($0, denied) }),
            "stranger": Dictionary(uniqueKeysWithValues: Call.allCases.map { ($0, .unauthenticated) }),
            "two-names": Dictionary(uniqueKeysWithValues: Call.allCases.map { ($0, .unauthenticated) }),
        ]
        for (name, calls) in expected.sorted(by: { $0.key < $1.key }) {
            let client = try await f.client(name)
            for call in Call.allCases {
                let got = await invoke(call, as: client)
                #expect(got == calls[call]!, "\(name) \(call): got \(String(describing: got))")
            }
            await client.close()
        }
        // A tenant administrator lists its own tenant only.
        let admin = try await f.client("admin-asahikawa")
        let list = try await admin.unary(service: "chukan.v1.Admin", method: "ListTenants", request: ListTenantsRequest(), as: ListTenantsResponse.self)
        #expect(list.tenants.map(\.tenant) == [Self.asahikawa])
        await admin.close()
        await f.stop()

        // Every call is in the trail: operator actions and strangers on the platform stream,
        // the rest in the tenant's stream — including attempts on it by other tenants' principals.
        let platform = try AuditLog.read(directory: AuditTrail.platformDirectory(dataDirectory: "\(f.root)/data"),
                                         keyRing: TenantKeyRing.load(tenant: AuditTrail.platformStream, directory: f.keys))
        let asahikawa = try AuditLog.read(directory: "\(f.root)/data/\(Self.asahikawa)/audit", keyRing: TenantKeyRing.load(tenant: Self.asahikawa, directory: f.keys))
        let chiyoda = try AuditLog.read(directory: "\(f.root)/data/\(Self.chiyoda)/audit", keyRing: TenantKeyRing.load(tenant: Self.chiyoda, directory: f.keys))
        let all = platform + asahikawa + chiyoda
        #expect(all.count == Call.allCases.count * expected.count + 1)
        #expect(platform.filter { $0.principal == "operator" }.count == Call.allCases.count)
        #expect(platform.filter { $0.certificate == "stranger" && $0.outcomeCode == UInt32(StatusCode.unauthenticated.rawValue) }.count
                == Call.allCases.count, "a certificate the policy does not name is refused in the platform stream, whatever tenant it names")
        #expect(!(asahikawa + chiyoda).contains { $0.certificate == "stranger" })
        #expect(asahikawa.contains { $0.principal == "admin-chiyoda" && $0.operation == "chukan.v1.Admin/CreateSnapshot"
                                     && $0.outcomeCode == UInt32(denied.rawValue) })
        #expect(asahikawa.contains { $0.principal == "terminal-asahikawa" && $0.terminal == "terminal-asahikawa" })
        #expect(chiyoda.contains { $0.principal == "admin-chiyoda" && $0.outcomeCode == 0 && $0.operation == "chukan.v1.Admin/CreateSnapshot" })
        for stream in [AuditTrail.platformDirectory(dataDirectory: "\(f.root)/data"), "\(f.root)/data/\(Self.asahikawa)/audit"] {
            let tenant = stream.contains("_platform") ? AuditTrail.platformStream : Self.asahikawa
            let v = try AuditLog.verify(directory: stream, keyRing: TenantKeyRing.load(tenant: tenant, directory: f.keys))
            #expect(v.firstBad == nil && v.records > 0)
        }
    }

    /// A principal bound by fingerprint is found from the peer's fingerprint in any of the
    /// forms one may write it; a certificate bound by CN still by its CN.
    @Test func principalsAreFoundByFingerprintOrName() throws {
        let print = (0..<32).map { String(format: "%02x", ($0 * 37 + 5) % 256) }.joined()
        let policy = Policy(principals: [
            Policy.Principal(name: "by-cn", kind: .system, tenant: "012041", roles: [.clerk], certificateCN: "clerk", certificateSHA256: nil),
            Policy.Principal(name: "by-print", kind: .terminal, tenant: "012041", roles: [], certificateCN: nil, certificateSHA256: print),
        ])
        let colons = stride(from: 0, to: 64, by: 2).map { i in
            String(print.dropFirst(i).prefix(2)).uppercased()
        }.joined(separator: ":")
        #expect(policy.principal(commonName: "x", fingerprintSHA256: print)?.name == "by-print")
        #expect(policy.principal(commonName: nil, fingerprintSHA256: colons)?.name == "by-print")
        #expect(policy.principal(commonName: "clerk", fingerprintSHA256: String(repeating: "0", count: 64))?.name == "by-cn")
        let another = String(print.dropLast()) + (print.hasSuffix("0") ? "1" : "0")
        #expect(policy.principal(commonName: "other", fingerprintSHA256: another) == nil)
    }

    @Test func policyFilesAreValidatedWhole() throws {
        let dir = NSTemporaryDirectory() + "chukan-policy-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func load(_ text: String) -> String? {
            let path = "\(dir)/p.yaml"
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
            do {
                _ = try Policy.load(path: path)
                return nil
            } catch { return "\(error)" }
        }
        let good = """
            version: 1
            principals:
              - {name: op, kind: system, certificate_cn: op, roles: [platform-operator]}
              - {name: clerk-terminal, kind: terminal, tenant: "012041", certificate_sha256: "\(String(repeating: "ab", count: 32))"}
              - {name: gw, kind: system, tenant: "012041", certificate_cn: gw, roles: [network-gateway]}
            """
        #expect(load(good) == nil)
        let cases: [(String, String)] = [
            (good.replacingOccurrences(of: "\"012041\", certificate_sha256", with: "012041, certificate_sha256"), "quoted"),
            (good.replacingOccurrences(of: "network-gateway", with: "superuser"), "unknown role"),
            (good.replacingOccurrences(of: "certificate_cn: gw", with: "certificate_cn: op"), "used twice"),
            (good.replacingOccurrences(of: "kind: system, certificate_cn: op", with: "kind: system, tenant: \"012041\", certificate_cn: op"), "platform-operator"),
            (good.replacingOccurrences(of: "tenant: \"012041\", certificate_cn: gw", with: "tenant: \"012040\", certificate_cn: gw"), "tenant"),
            (good.replacingOccurrences(of: "version: 1", with: "version: 1\nadmins: []"), "unknown key admins"),
            (good.replacingOccurrences(of: "[network-gateway]}", with: "[network-gateway], colour: blue}"), "unknown key principals[2].colour"),
            (good.replacingOccurrences(of: "[network-gateway]", with: "[]").replacingOccurrences(of: "kind: terminal", with: "kind: terminal, roles: [clerk]"), "terminal has no roles"),
            (good.replacingOccurrences(of: "[network-gateway]", with: "[network-gateway, approver]"), "network-gateway is a role of its own"),
            (good.replacingOccurrences(of: "[network-gateway]", with: "[clerk, network-gateway]"), "network-gateway is a role of its own"),
            // A principal named as staff act in the trail ("staff:<id>") could pass for a member.
            (good.replacingOccurrences(of: "{name: gw,", with: "{name: \"staff:alice\","), "may not contain ':'"),
        ]
        for (text, why) in cases {
            let error = load(text)
            #expect(error?.contains(why) == true, "expected a refusal mentioning \(why), got \(String(describing: error))")
        }
    }
}
