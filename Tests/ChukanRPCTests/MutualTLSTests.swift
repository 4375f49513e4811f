import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanService
import ChukanTLS
import NIOCore
import Testing

/// A refusal may show as a failed handshake or (TLS 1.3: the client finishes first) as
/// the first call failing with UNAVAILABLE. Either way nothing gets through.
func expectRefused(_ s: TestServer, _ tls: @autoclosure () throws -> TLSContext, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    do {
        let c = try await RPCClient.connect(host: "127.0.0.1", port: s.port, tls: tls())
        let code = await statusCode { _ = try await c.health() }
        #expect(code == .unavailable, sourceLocation: sourceLocation)
        await c.close()
    } catch is TLSError {
        // refused during the handshake
    }
}

@Suite struct MutualTLSTests {
    @Test func clientWithoutCertificateIsRefused() async throws {
        let s = try await TestServer.start()
        try await expectRefused(s, s.pki.clientTLS(nil))
        #expect(try await s.client().health() == .serving)
        await s.stop()
    }

    @Test func certificateFromAnotherCAIsRefused() async throws {
        let s = try await TestServer.start()
        try await expectRefused(s, TestPKI.rogue.clientTLS("admin", trusting: s.pki.caPath))
        #expect(try await s.client().health() == .serving)
        await s.stop()
    }

    @Test func clientRefusesServerFromAnotherCA() async throws {
        let s = try await TestServer.start()
        await #expect(throws: TLSError.self) {
            _ = try await RPCClient.connect(host: "127.0.0.1", port: s.port, tls: TestPKI.rogue.clientTLS("admin"))
        }
        await s.stop()
    }

    /// A TLS 1.2-only client (OpenSSL's s_client) is refused by default and accepted,
    /// with an ECDHE + AEAD suite, when the server opts into 1.2.
    @Test func tls12IsRefusedUnlessOptedIn() async throws {
        let p = TestPKI.shared
        func sClient(_ port: Int) throws -> (Int32, String) {
            try runProcess("/usr/bin/env", ["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-tls1_2",
                                            "-CAfile", p.caPath, "-cert", "\(p.dir)/admin.crt", "-key", "\(p.dir)/admin.key"], stdin: "")
        }
        let strict = try await TestServer.start()
        let (rc, out) = try sClient(strict.port)
        #expect(rc != 0)
        #expect(out.contains("alert protocol version"))
        await strict.stop()

        var c = RPCServerConfiguration()
        c.port = 0
        let lax = RPCServer(configuration: c, tls: try ReloadableTLSContext(p.serverTLS(minimumVersion: .tls12)), router: RPCRouter([HealthService()]), group: .singletonMultiThreadedEventLoopGroup)
        let address = try await lax.start()
        let (rc2, out2) = try sClient(address.port!)
        #expect(rc2 == 0)
        #expect(out2.contains("Protocol  : TLSv1.2"))
        #expect(out2.contains("Cipher    : ECDHE-"))
        await lax.shutdown()
    }

    /// The verified certificate's subject reaches handlers as the caller's identity.
    @Test func peerIdentityReachesHandlers() async throws {
        struct WhoAmI: RPCService {
            let serviceName = "test.WhoAmI"
            var methods: [String: MethodHandler] {
                ["Get": .unary(EchoMessage.self) { _, ctx in
                    let p = ctx.peer
                    return EchoMessage(bytes: Array("\(p?.commonName ?? "-")|\(p?.subjectAlternativeNames.joined(separator: ",") ?? "")".utf8))
                }]
            }
        }
        var c = RPCServerConfiguration()
        c.port = 0
        let server = RPCServer(configuration: c, tls: try ReloadableTLSContext(TestPKI.shared.serverTLS()), router: RPCRouter([WhoAmI()]), group: .singletonMultiThreadedEventLoopGroup)
        let address = try await server.start()
        let client = try await RPCClient.connect(host: "127.0.0.1", port: address.port!, tls: TestPKI.shared.clientTLS("gateway"))
        let r = try await client.unary(service: "test.WhoAmI", method: "Get", request: EchoMessage(bytes: []), as: EchoMessage.self)
        #expect(String(buffer: r.payload) == "gateway|URI:chukan:principal:gateway")
        #expect(client.handshake.peer?.commonName == "localhost")
        #expect(client.handshake.peer?.subjectAlternativeNames.contains("IP:127.0.0.1") == true)
        await client.close()
        await server.shutdown()
    }

    /// A revoked certificate is refused once the CRL is reloaded; connections already
    /// open stay up; other clients are unaffected.
    @Test func revokedCertificateIsRefusedAfterReload() async throws {
        let pki = try TestPKI.make(clients: ["admin", "victim"])
        let s = try await TestServer.start(pki: pki, crl: true)
        let before = try await s.client("victim")
        #expect(try await before.health() == .serving)
        try pki.revoke("victim")
        try s.server.tls.reload()
        try await expectRefused(s, pki.clientTLS("victim"))
        #expect(try await before.echo("still open") == "still open")
        #expect(try await s.client("admin").health() == .serving)
        await before.close()
        await s.stop()
    }

    @Test func badReloadKeepsTheOldContext() async throws {
        let s = try await TestServer.start()
        var broken = s.pki.serverTLS()
        broken.privateKeyPath = "/nonexistent/key.pem"
        #expect(throws: TLSError.configuration("private key /nonexistent/key.pem is missing or unreadable")) {
            try s.server.tls.reload(broken)
        }
        #expect(try await s.client().health() == .serving)
        await s.stop()
    }

    @Test func healthOnlyListenerServesHealthAndNothingElse() async throws {
        let s = try await TestServer.start(requireClientCertificate: false, restrictTo: [HealthService.name])
        let c = try await s.client(nil)
        #expect(c.handshake.peer?.commonName == "localhost")
        #expect(try await c.health() == .serving)
        #expect(await statusCode { _ = try await c.echo("data?") } == .unimplemented)
        await c.close()
        await s.stop()
    }

    @Test func connectionLimit() async throws {
        let s = try await TestServer.start { $0.maxConnections = 2 }
        let a = try await s.client()
        let b = try await s.client()
        try await expectRefused(s, s.pki.clientTLS("admin"))
        #expect(try await a.echo("a") == "a")
        await b.close()
        // Once the server has counted the close, a new connection fits again.
        for _ in 0..<200 where s.server.openConnections > 1 { try await Task.sleep(for: .milliseconds(25)) }
        #expect(s.server.openConnections == 1)
        let c = try await s.client()
        #expect(try await c.echo("c") == "c")
        await a.close()
        await c.close()
        await s.stop()
    }

    @Test func configurationErrorsNameTheFile() throws {
        #expect(throws: TLSError.configuration("certificate chain /nope.crt is missing or unreadable")) {
            _ = try TLSContext(.server(certificateChainPath: "/nope.crt", privateKeyPath: "/nope.key", trustRootsPath: nil))
        }
        #expect(throws: TLSError.configuration("mutual TLS needs a CA bundle to verify client certificates")) {
            let p = TestPKI.shared
            _ = try TLSContext(.server(certificateChainPath: "\(p.dir)/server.crt", privateKeyPath: "\(p.dir)/server.key", trustRootsPath: nil))
        }
        #expect(throws: TLSError.configuration("cannot load private key \(TestPKI.shared.dir)/admin.key: key values mismatch")) {
            let p = TestPKI.shared
            _ = try TLSContext(.server(certificateChainPath: "\(p.dir)/server.crt", privateKeyPath: "\(p.dir)/admin.key", trustRootsPath: p.caPath))
        }
    }
}
