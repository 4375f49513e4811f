import ArgumentParser
import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanService
import ChukanStore
import ChukanTLS
import Foundation
import Synchronization

/// The soak: a mixed workload against a real server process — 照会, register writes,
/// 符号取得 and 提供 at once, a snapshot every so often, and the server killed with SIGKILL
/// and restarted every few minutes — then, with the server stopped, a check that every
/// write and every 提供 the server acknowledged is still there and the audit trail's chain
/// verifies. Exits 1 when anything acknowledged is missing. `SoakTests` runs a short one;
/// docs/RELIABILITY.md gives the figures of a 30-minute one.
struct Soak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mixed workload with snapshots and SIGKILL restarts, then a check that nothing acknowledged was lost.")
    @Option(help: "Seconds of workload.") var seconds: Double = 1800
    @Option(help: "Seconds between SIGKILLs of the server.") var killEvery: Double = 180
    @Option(help: "Seconds between online snapshots.") var snapshotEvery: Double = 60
    @Option(help: "Folder for the run (certificates, data, keys); made fresh.") var work = "Benchmarks/out/soak"
    @Option(help: "The chukan server binary.") var chukan = ".build/release/chukan"
    @Option(help: "The chukanctl binary.") var chukanctl = ".build/release/chukanctl"
    @Option(name: .customLong("permission-list"), help: "The permission list.") var permissionList = "config/permission-list.yaml"
    @Option(help: "Port on 127.0.0.1.") var port = 17743
    @Option(name: .customLong("pause-ms"), help: "Pause of each worker between calls (0: flat out; the test suite's soak paces itself so that other tests keep their CPU).")
    var pauseMs = 0
    @Flag(help: "Print one JSON object at the end.") var json = false

    static let tenant = "012041"

    func run() async throws {
        let setup = try prepare()
        let server = ServerProcess(command: [chukan, "serve", "--port", "\(port)", "--metrics-port", "0", "--log-level", "error",
            "--cert", "\(work)/certs/server.crt", "--key", "\(work)/certs/server.key", "--client-ca", "\(work)/certs/ca.crt",
            "--data", "\(work)/data", "--keys", "\(work)/keys", "--policy", "\(work)/policy.yaml",
            "--permission-list", permissionList, "--network-key", "\(work)/provision/network.pub", "--development"])
        try server.start()
        try await waitServing()
        let ledger = Ledger()
        let deadline = Date().addingTimeInterval(seconds)
        let started = Date()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await writer(ledger, deadline) }
            group.addTask { try await reader(ledger, deadline) }
            group.addTask { try await coder(ledger, deadline) }
            group.addTask { try await provider(setup, ledger, deadline) }
            group.addTask { try await snapshotter(ledger, deadline) }
            group.addTask {
                // The killer: SIGKILL, restart, wait until the tenant serves again.
                var next = Date().addingTimeInterval(killEvery)
                while Date() < deadline {
                    try await Task.sleep(for: .milliseconds(200))
                    guard Date() >= next, Date() < deadline.addingTimeInterval(-5) else { continue }
                    server.kill()
                    ledger.count(\.kills)
                    try server.start()
                    try await waitServing()
                    next = Date().addingTimeInterval(killEvery)
                }
            }
            try await group.waitForAll()
        }
        server.stop()
        let report = try check(ledger)
        let elapsed = Date().timeIntervalSince(started)
        let figures = ledger.figures
        if json {
            var o: [String: Any] = figures.mapValues { $0 }
            o["seconds"] = Int(elapsed)
            o["missing_writes"] = report.missingWrites
            o["missing_provisions"] = report.missingProvisions
            o["audit_records"] = report.auditRecords
            o["audit_chain"] = report.chain
            let data = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("soak: \(Int(elapsed)) s, \(figures["kills"] ?? 0) SIGKILLs, \(figures["snapshots"] ?? 0) snapshots")
            print("  acknowledged: \(figures["writes"] ?? 0) writes, \(figures["lookups"] ?? 0) lookups, \(figures["codes"] ?? 0) codes, \(figures["provisions"] ?? 0) provisions (\(figures["failed_calls"] ?? 0) calls failed while the server was down or restarting)")
            print("  after the run: \(report.missingWrites) acknowledged writes missing, \(report.missingProvisions) acknowledged provisions without a record, audit chain \(report.chain) (\(report.auditRecords) records)")
        }
        if report.missingWrites > 0 || report.missingProvisions > 0 || report.chain != "intact" { throw ExitCode(1) }
    }

    // MARK: setup

    struct Setup: Sendable {
        let networkKey: ECDSAP256Key
        let inquirers: [[UInt8]]
    }

    func prepare() throws -> Setup {
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try ctl(["certs", "init", "\(work)/certs", "--client", "admin", "--client", "registrar", "--client", "clerk", "--client", "codes", "--client", "gateway"])
        try ctl(["tenant", "add", "--data", "\(work)/data", "--keys", "\(work)/keys", "--tenant", Self.tenant])
        try ctl(["dev", "network-key", "--out", "\(work)/provision"])
        try """
            version: 1
            principals:
              - { name: admin, kind: system, certificate_cn: admin, roles: [platform-operator] }
              - { name: registrar, kind: system, tenant: "\(Self.tenant)", certificate_cn: registrar, roles: [registrar] }
              - { name: clerk, kind: system, tenant: "\(Self.tenant)", certificate_cn: clerk, roles: [clerk] }
              - { name: codes, kind: system, tenant: "\(Self.tenant)", certificate_cn: codes, roles: [code-manager] }
              - { name: gateway, kind: system, tenant: "\(Self.tenant)", certificate_cn: gateway, roles: [network-gateway] }
            """.write(toFile: "\(work)/policy.yaml", atomically: true, encoding: .utf8)
        let key = try ECDSAP256Key(pem: String(contentsOfFile: "\(work)/provision/network.key", encoding: .utf8))
        return Setup(networkKey: key, inquirers: try (0..<4).map { _ in try X25519Key.generate().publicKey })
    }

    func ctl(_ arguments: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: chukanctl)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ValidationError("chukanctl \(arguments.prefix(2).joined(separator: " ")) failed") }
    }

    func client(_ name: String) async throws -> RPCClient {
        let tls = try TLSContext(.client(trustRootsPath: "\(work)/certs/ca.crt", serverHostname: "localhost",
                                         certificateChainPath: "\(work)/certs/\(name).crt", privateKeyPath: "\(work)/certs/\(name).key"))
        return try await RPCClient.connect(host: "127.0.0.1", port: port, tls: tls)
    }

    func waitServing() async throws {
        for _ in 0..<1200 {
            if let c = try? await client("admin") {
                let status = try? await c.unary(service: "chukan.v1.Health", method: "Check", request: HealthCheckRequest(tenant: Self.tenant),
                                                as: HealthCheckResponse.self, timeout: .seconds(2))
                await c.close()
                if status?.status == .serving { return }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ValidationError("the server did not serve the tenant within 2 minutes")
    }

    // MARK: the workload

    /// Runs `call` with a connection of principal `name` until the deadline; a failed call
    /// (the server was killed) drops the connection, and the next call makes a new one.
    func loop(_ name: String, _ ledger: Ledger, _ deadline: Date, pause: Duration = .zero,
              _ call: @Sendable (RPCClient) async throws -> Void) async throws {
        var c: RPCClient?
        while Date() < deadline {
            do {
                if c == nil { c = try await client(name) }
                try await call(c!)
            } catch {
                ledger.count(\.failedCalls)
                if let old = c { await old.close() }
                c = nil
                try await Task.sleep(for: .milliseconds(100))
            }
            if pause > .zero { try await Task.sleep(for: pause) }
        }
        if let c { await c.close() }
    }

    /// 記載 of new residents, each with an idempotency key: a write whose answer was lost
    /// in a kill is sent again and applied once.
    func writer(_ ledger: Ledger, _ deadline: Date) async throws {
        let people = SyntheticResidents(count: 2_000_000, seed: 77).makeIterator()
        let source = Locked(people)
        let pending = Locked<Resident?>(nil)
        try await loop("registrar", ledger, deadline, pause: .milliseconds(pauseMs)) { c in
            let r: Resident = try pending.withLock { p in
                if let again = p { return again }
                guard var next = source.withLock({ $0.next() }) else { throw CancellationError() }
                next.removalReason = .reasonUnspecified
                next.removedOn = nil
                p = next
                return next
            }
            var w = WriteRequest()
            w.tenant = Self.tenant
            w.idempotencyKey = "soak-\(r.integratedAtenaNumber)"
            var e = RegisterEvent()
            e.reason = .tennyu
            e.resident = r
            w.event = e
            _ = try await c.unary(service: "chukan.v1.Register", method: "Record", request: w, as: WriteResponse.self, timeout: .seconds(10))
            pending.withLock { $0 = nil }
            ledger.wrote(r)
        }
    }

    func reader(_ ledger: Ledger, _ deadline: Date) async throws {
        try await loop("clerk", ledger, deadline, pause: .milliseconds(pauseMs)) { c in
            guard let id = ledger.someWritten() else { try await Task.sleep(for: .milliseconds(50)); return }
            var r = LookupRequest()
            r.tenant = Self.tenant
            r.keyKind = .integratedAtenaNumber
            r.key = id
            _ = try await c.unary(service: "chukan.v1.Inquiry", method: "Lookup", request: r, as: LookupResponse.self, timeout: .seconds(10))
            ledger.count(\.lookups)
        }
    }

    func coder(_ ledger: Ledger, _ deadline: Date) async throws {
        try await loop("codes", ledger, deadline, pause: .milliseconds(pauseMs)) { c in
            guard let id = ledger.someWritten() else { try await Task.sleep(for: .milliseconds(50)); return }
            var r = AcquireCodeRequest()
            r.tenant = Self.tenant
            r.integratedAtenaNumber = id
            let code = try await c.unary(service: "chukan.v1.Codes", method: "AcquireCode", request: r, as: CodeResponse.self, timeout: .seconds(10))
            ledger.coded(id, code.fugo)
        }
    }

    /// 提供 under 項 48 (市町村長, covers 除票) with a fresh permit each time.
    func provider(_ setup: Setup, _ ledger: Ledger, _ deadline: Date) async throws {
        let counter = Atomic<Int>(0)
        try await loop("gateway", ledger, deadline, pause: .milliseconds(pauseMs)) { c in
            guard let (_, fugo) = ledger.someCoded() else { try await Task.sleep(for: .milliseconds(50)); return }
            let n = counter.add(1, ordering: .relaxed).newValue
            var p = ProvisionPermit()
            p.permitId = "SOAK-\(ProcessInfo.processInfo.processIdentifier)-\(n)"
            p.inquirer = "LG011002"
            p.tenant = Self.tenant
            p.legalRow = 48
            p.fugo = fugo
            p.itemGroup = n % 2 == 0 ? .nameAndBirth : .address
            p.inquirerPublicKey = setup.inquirers[n % setup.inquirers.count]
            p.issuedUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
            p.expiresUnixMs = p.issuedUnixMs + 600_000
            var r = ProvideRequest()
            r.tenant = Self.tenant
            r.inquirer = p.inquirer
            r.legalRow = p.legalRow
            r.fugo = fugo
            r.itemGroup = p.itemGroup
            r.inquirerPublicKey = p.inquirerPublicKey
            r.route = "SOAK"
            r.permit = try Permits.sign(p, with: setup.networkKey)
            do {
                _ = try await c.unary(service: "chukan.v1.Provision", method: "Provide", request: r, as: ProvideResponse.self, timeout: .seconds(10))
                ledger.provided(p.permitId)
            } catch let e as RPCError where e.message.hasPrefix("HELD:") {
                ledger.count(\.held)  // a restricted person: held, and recorded as such
            }
        }
    }

    func snapshotter(_ ledger: Ledger, _ deadline: Date) async throws {
        try await loop("admin", ledger, deadline, pause: .milliseconds(Int64(snapshotEvery * 1000))) { c in
            var r = TenantRequest()
            r.tenant = Self.tenant
            _ = try await c.unary(service: "chukan.v1.Admin", method: "CreateSnapshot", request: r, as: SnapshotResponse.self, timeout: .seconds(120))
            ledger.count(\.snapshots)
        }
    }

    // MARK: the check

    struct Report {
        var missingWrites = 0
        var missingProvisions = 0
        var auditRecords = 0
        var chain = ""
    }

    /// With the server stopped: the register as recovery finds it, and the audit trail.
    func check(_ ledger: Ledger) throws -> Report {
        let ring = try TenantKeyRing.load(tenant: Self.tenant, directory: "\(work)/keys")
        let db = try TenantDatabase.open(directory: "\(work)/data/\(Self.tenant)", keyRing: ring)
        defer { db.close() }
        var report = Report()
        let state = db.current
        for (id, record) in ledger.written() {
            guard let entry = state.person(id), let r = try? entry.resident(), r.kojinBango == record.kojinBango, r.name == record.name else {
                report.missingWrites += 1
                continue
            }
        }
        let auditDirectory = "\(work)/data/\(Self.tenant)/audit"
        let verification = try AuditLog.verify(directory: auditDirectory, keyRing: ring)
        report.chain = verification.firstBad.map { "BROKEN: \($0)" } ?? "intact"
        let records = try AuditLog.read(directory: auditDirectory, keyRing: ring)
        report.auditRecords = records.count
        let recorded = Set(records.filter { $0.operation == "chukan.v1.Provision/Provide" && $0.outcomeCode == 0 }.map(\.permitId))
        report.missingProvisions = ledger.provisions().filter { !recorded.contains($0) }.count
        return report
    }
}

/// What the server acknowledged, and counts.
final class Ledger: Sendable {
    struct Counts {
        var lookups = 0, codes = 0, kills = 0, snapshots = 0, failedCalls = 0, held = 0
    }

    private struct State {
        var counts = Counts()
        var writtenIDs: [String] = []
        var writtenRecords: [String: Resident] = [:]
        var codes: [(String, String)] = []
        var provided: [String] = []
    }

    private let state = Locked(State())

    func count(_ field: WritableKeyPath<Counts, Int>) { state.withLock { $0.counts[keyPath: field] += 1 } }

    func wrote(_ r: Resident) {
        state.withLock { s in
            if s.writtenRecords.updateValue(r, forKey: r.integratedAtenaNumber) == nil { s.writtenIDs.append(r.integratedAtenaNumber) }
        }
    }

    func coded(_ id: String, _ fugo: String) {
        state.withLock { s in
            s.counts.codes += 1
            if s.codes.count < 10_000 { s.codes.append((id, fugo)) }
        }
    }

    func provided(_ permit: String) { state.withLock { $0.provided.append(permit) } }

    func someWritten() -> String? { state.withLock { $0.writtenIDs.randomElement() } }
    func someCoded() -> (String, String)? { state.withLock { $0.codes.randomElement() } }
    func written() -> [String: Resident] { state.withLock { $0.writtenRecords } }
    func provisions() -> [String] { state.withLock { $0.provided } }

    var figures: [String: Int] {
        state.withLock { s in
            ["writes": s.writtenRecords.count, "lookups": s.counts.lookups, "codes": s.counts.codes, "provisions": s.provided.count,
             "held": s.counts.held, "kills": s.counts.kills, "snapshots": s.counts.snapshots, "failed_calls": s.counts.failedCalls]
        }
    }
}

/// The server as a child process, killed with SIGKILL and started again.
final class ServerProcess: Sendable {
    let command: [String]
    private let process = Locked<Process?>(nil)

    init(command: [String]) { self.command = command }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: command[0])
        p.arguments = Array(command.dropFirst())
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        process.withLock { $0 = p }
    }

    func kill() {
        guard let p = process.withLock({ $0 }) else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    func stop() {
        guard let p = process.withLock({ $0 }) else { return }
        p.terminate()
        p.waitUntilExit()
    }
}
