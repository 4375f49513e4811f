import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanService
import ChukanStore
import ChukanTLS
import Foundation
import Logging
import NIOPosix
import Synchronization

/// A server with the tenant services (Admin, Inquiry, Codes, Register, Staff, Provision) on a loopback port, its
/// tenants serving, a policy given in code, and the audit trail in a temporary folder.
struct ServiceFixture {
    let root: String
    let pki: TestPKI
    let tenants: TenantManager
    let access: AccessControl
    let server: RPCServer
    let port: Int

    /// With `reusing`, the server starts on an earlier fixture's data (a restart).
    static func start(
        pki: TestPKI, policy: Policy, tenants names: [String], residents: [String: [Resident]] = [:], reusing: String? = nil,
        rules: StaffRules = ServiceFixture.fastRules, limits: TenantLimiter.Limits = .init(), now: @escaping @Sendable () -> Date = { Date() },
        provision: ProvisionSetup? = nil, policyPath: String? = nil, writeGate: (@Sendable () -> String?)? = nil
    ) async throws -> ServiceFixture {
        let root = reusing ?? NSTemporaryDirectory() + "chukan-services-\(UUID().uuidString)"
        var configuration = TenantManager.Configuration(dataDirectory: "\(root)/data", keyDirectory: "\(root)/keys")
        configuration.options.writeGate = writeGate
        let tenants = TenantManager(configuration: configuration)
        try FileManager.default.createDirectory(atPath: "\(root)/data", withIntermediateDirectories: true)
        if reusing == nil { for t in names { try tenants.add(t) } } else { tenants.startAll() }
        // Recovery runs on threads of its own; a loaded machine may take a while.
        for _ in 0..<6000 where tenants.tenants.contains(where: { tenants.state($0) != .serving }) { try await Task.sleep(for: .milliseconds(10)) }
        let notServing = tenants.tenants.filter { tenants.state($0) != .serving }
        guard notServing.isEmpty else { throw RPCError.unavailable("tenants \(notServing) never became SERVING") }
        for (t, people) in residents {
            let db = try tenants.database(t)
            for r in people {
                var e = RegisterEvent()
                e.kind = .record
                e.reason = .tennyu
                e.resident = r
                try await db.apply(e)
            }
        }
        let access = AccessControl(policy: policy, policyPath: policyPath, audit: try AuditTrail(tenants: tenants), rules: rules, limits: limits, now: now)
        var c = RPCServerConfiguration()
        c.port = 0
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let codes = CodeIssuers(keyDirectory: "\(root)/keys")
        let setup = try provision ?? ProvisionSetup.unconfigured()
        let server = RPCServer(
            configuration: c, tls: try ReloadableTLSContext(pki.serverTLS()),
            router: RPCRouter([
                HealthService(tenants: tenants), AdminService(tenants: tenants, access: access),
                InquiryService(tenants: tenants, access: access, codes: codes), CodesService(tenants: tenants, access: access, codes: codes),
                RegisterService(tenants: tenants, access: access), StaffService(tenants: tenants, access: access),
                ProvisionService(tenants: tenants, access: access, codes: codes, rules: setup.rules, networkKey: setup.networkKey, sealer: setup.sealer),
            ]),
            group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let address = try await server.start()
        return ServiceFixture(root: root, pki: pki, tenants: tenants, access: access, server: server, port: address.port!)
    }

    /// Staff rules with a cheap password hash: the tests sign in often.
    static let fastRules: StaffRules = {
        var r = StaffRules()
        r.passwordIterations = 1000
        return r
    }()

    func client(_ name: String) async throws -> RPCClient {
        try await RPCClient.connect(host: "127.0.0.1", port: port, tls: pki.clientTLS(name))
    }

    func stop() async {
        await server.shutdown()
        tenants.closeAll()
        access.audit.close()
    }

    var keys: String { "\(root)/keys" }

    /// A tenant's audit records, read back from disk.
    /// The platform stream's records (operator actions, refusals that belong to no tenant).
    func platformRecords() throws -> [AuditRecord] {
        try AuditLog.read(directory: AuditTrail.platformDirectory(dataDirectory: "\(root)/data"),
                          keyRing: TenantKeyRing.load(tenant: AuditTrail.platformStream, directory: keys))
    }

    func auditRecords(_ tenant: String) throws -> [AuditRecord] {
        try AuditLog.read(directory: "\(root)/data/\(tenant)/audit", keyRing: TenantKeyRing.load(tenant: tenant, directory: keys))
    }
}

func policyPrincipal(_ name: String, _ kind: Policy.Kind = .system, tenant: String?, _ roles: Set<Role>) -> Policy.Principal {
    Policy.Principal(name: name, kind: kind, tenant: tenant, roles: roles, certificateCN: name, certificateSHA256: nil)
}

/// A clock the test moves.
final class TestClock: Sendable {
    private let current: Mutex<Date>
    init(_ start: Date) { current = Mutex(start) }
    var now: Date { current.withLock { $0 } }
    func advance(_ seconds: Double) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

/// Synthetic residents, all current (the generator makes some 除票).
func currentResidents(_ count: Int, seed: UInt64) -> [Resident] {
    Array(SyntheticResidents(count: count, seed: seed)).map {
        var r = $0
        r.removalReason = .reasonUnspecified
        r.removedOn = nil
        return r
    }
}
