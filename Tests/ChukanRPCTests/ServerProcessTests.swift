import ChukanCore
import ChukanRPC
import Foundation
import Testing

/// Runs the real `chukan serve` binary: signals, flags, stdout.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let output = Pipe()
    private(set) var port = 0

    init(_ args: [String]) throws {
        process.executableURL = URL(fileURLWithPath: builtProduct("chukan"))
        process.arguments = ["serve"] + args
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The first line says where it listens: "chukan: listening on [IPv4]127.0.0.1/127.0.0.1:PORT (mutual TLS)".
        var line = Data()
        let handle = output.fileHandleForReading
        while true {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty || byte == Data([0x0A]) { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let range = text.range(of: #":(\d+) \(mutual TLS\)"#, options: .regularExpression) else {
            throw RPCError.internal("unexpected first line from chukan serve: \(text)")
        }
        port = Int(text[range].dropFirst().prefix { $0.isNumber })!
    }

    func signal(_ s: Int32) { kill(process.processIdentifier, s) }

    /// Waits for exit; returns the status, or nil after `timeout`.
    func wait(timeout: Duration) async throws -> Int32? {
        let end = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > end { return nil }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    var remainingOutput: String { String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
}

@Suite(.serialized) struct ServerProcessTests {
    /// SIGHUP reloads the CRL without dropping live connections; SIGTERM drains and exits 0.
    @Test func sighupReloadsAndSigtermDrains() async throws {
        let pki = try TestPKI.make(clients: ["admin", "victim"])
        let server = try ServerProcess([
            "--port", "0", "--metrics-port", "0", "--cert", "\(pki.dir)/server.crt", "--key", "\(pki.dir)/server.key",
            "--client-ca", pki.caPath, "--crl", pki.crlPath, "--log-level", "error",
        ])
        defer { if server.process.isRunning { server.signal(SIGKILL) } }
        let connect = { (name: String) in
            try await RPCClient.connect(host: "127.0.0.1", port: server.port, tls: pki.clientTLS(name))
        }
        let live = try await connect("victim")
        #expect(try await live.health() == .serving)

        try pki.revoke("victim")
        server.signal(SIGHUP)
        // The reload is asynchronous: poll until a new victim connection is refused.
        var refused = false
        for _ in 0..<300 where !refused {
            try await Task.sleep(for: .milliseconds(30))
            do {
                let c = try await connect("victim")
                refused = await statusCode { _ = try await c.health() } == .unavailable
                await c.close()
            } catch { refused = true }
        }
        #expect(refused, "the revoked certificate is still accepted after SIGHUP")
        #expect(try await live.echo("kept") == "kept", "SIGHUP dropped a live connection")
        #expect(try await connect("admin").health() == .serving)

        // SIGTERM: a call in flight finishes... (Echo is instant, so check the exit and message.)
        server.signal(SIGTERM)
        let status = try await server.wait(timeout: .seconds(10))
        #expect(status == 0)
        #expect(server.remainingOutput.contains("chukan: stopped"))
    }

    @Test func badFlagsFailClearly() throws {
        let (rc, out) = try runProcess(builtProduct("chukan"), ["serve", "--port", "0", "--cert", "/nonexistent.crt", "--key", "/nonexistent.key", "--client-ca", "/nonexistent-ca.crt", "--metrics-port", "0"])
        #expect(rc != 0)
        #expect(out.contains("certificate chain /nonexistent.crt is missing or unreadable"))
        let (rc2, out2) = try runProcess(builtProduct("chukan"), ["serve", "--port", "0", "--metrics-port", "0"])
        #expect(rc2 != 0)
        #expect(out2.contains("tls.certificate and tls.key are required"))
        let (rc3, out3) = try runProcess(builtProduct("chukan"), ["serve", "--port", "0", "--metrics-port", "0", "--commit-window-us", "500"])
        #expect(rc3 != 0)
        #expect(out3.contains("--commit-window-us applies to the audit logs of a data directory: give --data and --keys too"))
        let (rc4, out4) = try runProcess(builtProduct("chukan"), ["serve", "--port", "70000", "--metrics-port", "0"])
        #expect(rc4 != 0 && out4.contains("listen.port (--port) must be 0-65535, not 70000"), "\(out4)")
        // chukanctl refuses a client setting that cannot work before it connects.
        let (rc5, out5) = try runProcess(builtProduct("chukanctl"), ["call", "health", "--timeout", "0"])
        #expect(rc5 != 0 && out5.contains("--timeout must be more than 0 and at most 86400 seconds"), "\(out5)")
        let (rc6, out6) = try runProcess(builtProduct("chukanctl"), ["call", "health", "--server", "127.0.0.1:70000"])
        #expect(rc6 != 0 && out6.contains("the port 1-65535"), "\(out6)")
        let (rc7, out7) = try runProcess(builtProduct("chukanctl"), ["audit", "query", "--tenant", "012041", "--from", "2026-13-45"])
        #expect(rc7 != 0 && out7.contains("must exist (2026-13-45 does not)"), "\(out7)")
        // Keys inside the data folder: a copy of the data would carry them.
        let pki = TestPKI.shared
        let data = NSTemporaryDirectory() + "chukan-keysinside-\(UUID().uuidString)"
        let (rc9, out9) = try runProcess(builtProduct("chukan"), [
            "serve", "--port", "0", "--metrics-port", "0", "--cert", "\(pki.dir)/server.crt", "--key", "\(pki.dir)/server.key",
            "--client-ca", pki.caPath, "--data", data, "--keys", "\(data)/keys"])
        #expect(rc9 != 0 && out9.contains("must not be data.directory") && out9.contains("or inside it"), "\(out9)")
        // A purge approved "as of" a later day would delete 除票 still within their retention.
        let (rc8, out8) = try runProcess(builtProduct("chukanctl"), ["purge", "--approve", "--today", "2199-01-01", "--tenant", "012041"])
        #expect(rc8 != 0 && out8.contains("--approve takes no date later than today"), "\(out8)")
    }

    /// Development private keys are created 0600 from their first byte and never replace
    /// a key already there.
    @Test func devKeysAreSecretAndNotOverwritten() throws {
        let dir = NSTemporaryDirectory() + "chukan-devkeys-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for command in ["network-key", "inquirer-key"] {
            let (rc, out) = try runProcess(builtProduct("chukanctl"), ["dev", command, "--out", dir])
            #expect(rc == 0, "\(out)")
            let name = command == "network-key" ? "network" : "inquirer"
            let mode = try FileManager.default.attributesOfItem(atPath: "\(dir)/\(name).key")[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let before = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name).key"))
            let (rc2, out2) = try runProcess(builtProduct("chukanctl"), ["dev", command, "--out", dir])
            #expect(rc2 != 0 && out2.contains("refusing to overwrite"), "\(out2)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name).key")) == before)
        }
    }

    @Test func chukanctlCertsInitRefusesToOverwrite() throws {
        let dir = NSTemporaryDirectory() + "chukan-certs-\(UUID().uuidString)"
        let (rc, out) = try runProcess(builtProduct("chukanctl"), ["certs", "init", dir, "--client", "alice"])
        #expect(rc == 0, "\(out)")
        for f in ["ca.crt", "server.crt", "server.key", "alice.crt", "alice.key", "crl.pem"] {
            #expect(FileManager.default.fileExists(atPath: "\(dir)/\(f)"))
        }
        let mode = try FileManager.default.attributesOfItem(atPath: "\(dir)/alice.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let (rc2, out2) = try runProcess(builtProduct("chukanctl"), ["certs", "init", dir])
        #expect(rc2 != 0)
        #expect(out2.contains("refusing to overwrite"))
    }
}
