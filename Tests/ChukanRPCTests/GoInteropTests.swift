import Foundation
import Testing

/// containerd's own Go ttrpc client (Debian's golang-github-containerd-ttrpc-dev,
/// ttrpc 1.1.1) calls our server over mutual TLS. Built in GOPATH mode, offline.
@Suite struct GoInteropTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func containerdTTRPCClientTalksToChukan() async throws {
        let out = NSTemporaryDirectory() + "chukan-goclient-\(UUID().uuidString)"
        let env = ["GOPATH": "/usr/share/gocode", "GO111MODULE": "off", "GOFLAGS": "", "GOCACHE": NSTemporaryDirectory() + "chukan-gocache"]
        let (buildStatus, buildOutput) = try runProcess(
            "/usr/bin/env", ["go", "build", "-o", out, Self.packageRoot.appendingPathComponent("Tests/Interop/goclient/main.go").path],
            environment: env)
        try #require(buildStatus == 0, "go build failed (run scripts/bootstrap.sh): \(buildOutput)")

        let s = try await TestServer.start()
        let p = s.pki
        let (rc, output) = try await Task.detached {
            try runProcess(out, ["-addr", "127.0.0.1:\(s.port)", "-ca", p.caPath, "-cert", "\(p.dir)/gateway.crt", "-key", "\(p.dir)/gateway.key"])
        }.value
        #expect(rc == 0, "\(output)")
        for check in ["ok connect (TLS 1.3)", "ok health", "ok echo", "ok echo-empty", "ok echo-concurrent", "ok unknown-method", "ok unknown-service", "ok still-alive"] {
            #expect(output.contains(check), "missing '\(check)' in: \(output)")
        }
        await s.stop()
    }
}
