import ChukanCore
import ChukanProto
import ChukanRegister
import ChukanRPC
import Foundation
import Testing

/// A live server's data round-trips through `chukanctl snapshot` create (online), verify,
/// restore and a restart; tenants recover in the background; Admin is for admins only.
@Suite(.serialized) struct TenantServerTests {
    func ctl(_ args: [String]) throws -> String {
        let (rc, out) = try runProcess(builtProduct("chukanctl"), args)
        guard rc == 0 else { throw RPCError.internal("chukanctl \(args.joined(separator: " ")) failed: \(out)") }
        return out
    }

    @Test func snapshotRoundTripThroughALiveServer() async throws {
        let pki = TestPKI.shared
        let root = NSTemporaryDirectory() + "chukan-live-\(UUID().uuidString)"
        let store = ["--data", "\(root)/data", "--keys", "\(root)/keys", "--tenant", "012041"]
        _ = try ctl(["tenant", "add"] + store)
        // tenant add made the platform audit key too (a server with read-only keys can start).
        #expect(try FileManager.default.attributesOfItem(atPath: "\(root)/keys/000000.v1.key")[.posixPermissions] as? Int == 0o600)
        _ = try ctl(["data", "generate", "--count", "3000", "--seed", "9", "--out", "\(root)/residents.bin", "--json"])
        let imported = try ctl(["data", "import", "\(root)/residents.bin", "--json"] + store)
        #expect(imported.contains("\"accepted\":3000"))
        // Its 除票 were removed, not left as residents: all are due for purge in 2199.
        let removed = SyntheticResidents(count: 3000, seed: 9).filter { $0.removalReason != .reasonUnspecified }.count
        #expect(removed > 0)
        let due = try ctl(["purge", "--dry-run", "--today", "2199-12-31", "--json"] + store)
        #expect(due.contains("\"due\":\(removed)"), "\(due)")
        // A damaged file: what could be read is loaded, and the import says it is incomplete.
        var damaged = try Data(contentsOf: URL(fileURLWithPath: "\(root)/residents.bin"))
        damaged.append(contentsOf: [0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3])
        try damaged.write(to: URL(fileURLWithPath: "\(root)/damaged.bin"))
        let (damagedRC, damagedOut) = try runProcess(builtProduct("chukanctl"), ["data", "import", "\(root)/damaged.bin", "--json"] + store)
        #expect(damagedRC != 0 && damagedOut.contains("the import is incomplete"), "\(damagedOut)")
        // Run again, nothing of it is taken: not even a 除票 moving back in and out.
        #expect(damagedOut.contains("\"accepted\":0") && damagedOut.contains("the 除票 is already in the register"), "\(damagedOut)")

        let policy = "\(root)/policy.yaml"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try """
            version: 1
            principals:
              - { name: admin, kind: system, certificate_cn: admin, roles: [platform-operator] }
              - { name: importer, kind: system, tenant: "012041", certificate_cn: gateway, roles: [registrar] }
              - { name: approver, kind: system, tenant: "012041", certificate_cn: approver, roles: [approver] }
              - { name: number-clerk, kind: system, tenant: "012041", certificate_cn: clerk, roles: [clerk, number-clerk] }
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        func serve(data: String) throws -> ServerProcess {
            try ServerProcess([
                "--port", "0", "--metrics-port", "0", "--log-level", "error", "--cert", "\(pki.dir)/server.crt", "--key", "\(pki.dir)/server.key",
                "--client-ca", pki.caPath, "--data", data, "--keys", "\(root)/keys", "--policy", policy,
            ])
        }
        func waitServing(_ c: RPCClient) async throws {
            for _ in 0..<200 {
                let s = try await c.unary(service: "chukan.v1.Health", method: "Check", request: HealthCheckRequest(tenant: "012041"), as: HealthCheckResponse.self)
                if s.status == .serving { return }
                try await Task.sleep(for: .milliseconds(50))
            }
            Issue.record("tenant never became SERVING")
        }
        let server = try serve(data: "\(root)/data")
        defer { if server.process.isRunning { server.signal(SIGKILL) } }
        let admin = try await RPCClient.connect(host: "127.0.0.1", port: server.port, tls: pki.clientTLS("admin"))
        try await waitServing(admin)
        // The server holds the tenant's lock: an offline command on the same folder is refused.
        let (lockedRC, lockedOut) = try runProcess(builtProduct("chukanctl"), ["data", "import", "\(root)/residents.bin", "--json"] + store)
        #expect(lockedRC != 0 && lockedOut.contains("is a server or another chukanctl using this tenant?"), "\(lockedOut)")
        let list = try await admin.unary(service: "chukan.v1.Admin", method: "ListTenants", request: ListTenantsRequest(), as: ListTenantsResponse.self)
        #expect(list.tenants.map(\.tenant) == ["012041"])
        let records = list.tenants[0].records
        #expect(records == 3000)
        // Not the platform operator nor a tenant administrator: refused.
        let gateway = try await RPCClient.connect(host: "127.0.0.1", port: server.port, tls: pki.clientTLS("gateway"))
        #expect(await statusCode { _ = try await gateway.unary(service: "chukan.v1.Admin", method: "ListTenants", request: ListTenantsRequest(), as: ListTenantsResponse.self) } == .permissionDenied)
        #expect(await statusCode { _ = try await gateway.unary(service: "chukan.v1.Health", method: "Check", request: HealthCheckRequest(tenant: "131016"), as: HealthCheckResponse.self) } == .notFound)
        await gateway.close()
        await admin.close()
        // The bulk load through the running server (a client stream): these ids are taken.
        _ = try ctl(["data", "generate", "--count", "50", "--seed", "5", "--out", "\(root)/more.bin", "--json"])
        let streamed = try ctl(["call", "import", "\(root)/more.bin", "--json", "--server", "127.0.0.1:\(server.port)", "--ca", pki.caPath,
                                "--cert", "\(pki.dir)/gateway.crt", "--key", "\(pki.dir)/gateway.key"])
        #expect(streamed.contains("\"accepted\":0") && streamed.contains("\"rejected\":50") && streamed.contains("ALREADY_EXISTS"), "\(streamed)")

        let connection = ["--server", "127.0.0.1:\(server.port)", "--ca", pki.caPath]
        // A lookup by 個人番号 with the number on standard input ('-'), not in argv.
        let someone = try #require(SyntheticResidents(count: 3000, seed: 9).first { $0.removalReason == .reasonUnspecified })
        let (lookupRC, lookedUp) = try runProcess(builtProduct("chukanctl"), ["call", "lookup", "--by", "kojin", "-", "--json"] + connection
            + ["--cert", "\(pki.dir)/clerk.crt", "--key", "\(pki.dir)/clerk.key"], stdin: someone.kojinBango + "\n")
        #expect(lookupRC == 0 && lookedUp.contains(someone.integratedAtenaNumber), "\(lookedUp)")

        // An export through chukanctl: requested, approved by another, taken into a new file
        // that appears only once whole, 0600, never over an existing one.
        let asRegistrar = connection + ["--cert", "\(pki.dir)/gateway.crt", "--key", "\(pki.dir)/gateway.key"]
        let requested = try ctl(["call", "export", "--request", "reconciliation"] + asRegistrar)
        let exportID = try #require(requested.split(separator: " ").dropFirst().first.map { String($0.dropLast()) }, "\(requested)")
        _ = try ctl(["call", "export", "--approve", exportID] + connection + ["--cert", "\(pki.dir)/approver.crt", "--key", "\(pki.dir)/approver.key"])
        let taken = "\(root)/export.jsonl"
        try Data().write(to: URL(fileURLWithPath: taken))
        let (existsRC, existsOut) = try runProcess(builtProduct("chukanctl"), ["call", "export", "--take", exportID, "--out", taken] + asRegistrar)
        #expect(existsRC != 0 && existsOut.contains("exists; choose a new file"), "\(existsOut)")
        try FileManager.default.removeItem(atPath: taken)
        let took = try ctl(["call", "export", "--take", exportID, "--out", taken] + asRegistrar)
        #expect(took.contains("export: 3000 records written"), "\(took)")
        #expect(try FileManager.default.attributesOfItem(atPath: taken)[.posixPermissions] as? Int == 0o600)
        #expect(try String(contentsOfFile: taken, encoding: .utf8).split(separator: "\n").count == 3000)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.contains(".partial-") }.isEmpty)

        // Create (through the running server), verify without and with the key.
        let created = try ctl(["snapshot", "create", "--online", "--json", "--server", "127.0.0.1:\(server.port)", "--ca", pki.caPath,
                               "--cert", "\(pki.dir)/admin.crt", "--key", "\(pki.dir)/admin.key"] + store)
        let path = try #require((try JSONSerialization.jsonObject(with: Data(created.utf8)) as? [String: Any])?["path"] as? String)
        #expect(try ctl(["snapshot", "verify", path]).contains("checksums ok"))
        #expect(try ctl(["snapshot", "verify", path, "--with-key", "--keys", "\(root)/keys"]).contains("decrypts and loads"))
        let inspected = try ctl(["snapshot", "inspect", path, "--json"])
        #expect(inspected.contains("\"records\":3000") && !inspected.contains("旭川"))
        server.signal(SIGTERM)
        #expect(try await server.wait(timeout: .seconds(10)) == 0)

        // Restore into a fresh data directory and serve from it.
        let restoredStore = ["--data", "\(root)/restored", "--keys", "\(root)/keys", "--tenant", "012041"]
        _ = try ctl(["snapshot", "restore", path] + restoredStore)
        let second = try serve(data: "\(root)/restored")
        defer { if second.process.isRunning { second.signal(SIGKILL) } }
        let again = try await RPCClient.connect(host: "127.0.0.1", port: second.port, tls: pki.clientTLS("admin"))
        try await waitServing(again)
        let after = try await again.unary(service: "chukan.v1.Admin", method: "ListTenants", request: ListTenantsRequest(), as: ListTenantsResponse.self)
        #expect(after.tenants.first?.records == records)
        await again.close()
        second.signal(SIGTERM)
        #expect(try await second.wait(timeout: .seconds(10)) == 0)
        // A restore over existing data needs --force.
        let (rc, out) = try runProcess(builtProduct("chukanctl"), ["snapshot", "restore", path] + restoredStore)
        #expect(rc != 0 && out.contains("use --force"))
        // A rollback to one of the tenant's own snapshots (the file is in the folder moved aside).
        #expect(try ctl(["snapshot", "restore", path, "--force"] + store).contains("restored 012041"))
        #expect(try ctl(["snapshot", "inspect", path, "--json"]).contains("\"records\":3000"))
    }
}
