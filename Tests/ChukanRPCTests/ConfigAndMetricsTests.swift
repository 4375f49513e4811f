import ChukanRPC
import ChukanServer
import ChukanService
import Foundation
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import Testing

@Suite struct ConfigTests {
    func write(_ yaml: String) throws -> String {
        let path = NSTemporaryDirectory() + "chukan-config-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func fullConfigParses() throws {
        let path = try write("""
        listen: { host: 127.0.0.1, port: 8443 }
        health_listen: { port: 8444 }
        metrics_listen: { host: 127.0.0.1, port: 9465 }
        tls:
          certificate: /etc/chukan/server.crt
          key: /etc/chukan/server.key
          client_ca: /etc/chukan/ca.crt
          crl: /etc/chukan/crl.pem
          min_version: "1.2"
          handshake_timeout_seconds: 5
        limits:
          max_connections: 100
          max_concurrent_streams: 64
          max_message_bytes: 1048576
          idle_timeout_seconds: 60
          frame_timeout_seconds: 12
          drain_timeout_seconds: 15
          read_bytes_per_second: 8388608
        log_level: debug
        """)
        let c = try ServerConfig.load(path: path)
        let rpc = try c.rpcConfiguration()
        #expect(rpc.port == 8443 && rpc.maxConnections == 100 && rpc.maxConcurrentStreams == 64)
        #expect(rpc.maxMessageSize == 1 << 20 && rpc.idleTimeout == .seconds(60) && rpc.drainTimeout == .seconds(15))
        #expect(rpc.frameTimeout == .seconds(12) && rpc.readBytesPerSecond == 8 << 20)
        #expect(try ServerConfig().rpcConfiguration().readBytesPerSecond == 64 << 20)  // paced by default
        let tls = try c.tlsConfiguration()
        #expect(tls.minimumVersion == .tls12 && tls.crlPath == "/etc/chukan/crl.pem" && tls.requireClientCertificate)
        #expect(tls.handshakeTimeout == .seconds(5))
        // The health-only listener asks for no client certificate and checks no CRL.
        let health = try c.tlsConfiguration(requireClientCertificate: false)
        #expect(!health.requireClientCertificate && health.crlPath == nil)
    }

    /// A port out of range is refused at start, naming the key and the flag (the resolver
    /// would have taken 70000 as 4464).
    @Test func portsOutOfRangeAreRefused() throws {
        for (yaml, message) in [("listen: { port: 70000 }", "listen.port (--port) must be 0-65535, not 70000"),
                                ("health_listen: { port: -1 }", "health_listen.port (--health-port) must be 0-65535, not -1"),
                                ("metrics_listen: { port: 65536 }", "metrics_listen.port (--metrics-port) must be 0-65535, not 65536")] {
            let c = try ServerConfig.load(path: try write(yaml))
            #expect(throws: (any Error).self) { _ = try c.rpcConfiguration() }
            do { _ = try c.rpcConfiguration() } catch { #expect("\(error)".contains(message), "\(error)") }
        }
        #expect(try ServerConfig.load(path: try write("listen: { port: 0 }")).rpcConfiguration().port == 0)
    }

    /// Every key the configuration table of docs/OPERATIONS.md names is one the server
    /// knows: a documented key the strict reader refused would stop the server at start.
    @Test func everyDocumentedKeyIsKnown() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/OPERATIONS.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        let sections = ["listen", "health_listen", "metrics_listen", "tls", "limits", "data", "staff", "provision"]
        var keys: [(String, String)] = []
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let name = line.dropFirst(3).prefix { $0 != "`" }
            let parts = name.split(separator: ".")
            guard parts.count == 2, sections.contains(String(parts[0])) else { continue }
            keys.append((String(parts[0]), String(parts[1])))
        }
        #expect(keys.count >= 30 && keys.contains { $0 == ("limits", "client_stream_idle_seconds") })
        for (section, key) in keys {
            let path = try write("\(section):\n  \(key): 1\n")
            do { _ = try ServerConfig.load(path: path) } catch {
                #expect(!"\(error)".contains("unknown key"), "\(section).\(key): \(error)")
            }
        }
    }

    /// The demo configuration and policy load, and staff settings are checked.
    @Test func demoConfigurationPolicyAndStaffRules() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let c = try ServerConfig.load(path: "\(root)/config/demo.yaml")
        #expect(try c.staff?.rules() == StaffRules())
        let policy = try Policy.load(path: "\(root)/config/demo-policy.yaml")
        #expect(Set(policy.principals.flatMap(\.roles)) == Set(Role.allCases), "the demo policy has a principal for every role")
        var bad = ServerConfig.StaffSection()
        bad.grantsLapseOn = "02-30"
        #expect(throws: ConfigError("staff.grants_lapse_on must be MM-DD with a day from 1 to 28")) { try bad.rules() }
        bad = ServerConfig.StaffSection()
        bad.lockAfterFailures = 0
        #expect(throws: ConfigError.self) { try bad.rules() }
        bad = ServerConfig.StaffSection()
        bad.maxWaitingPasswordChecks = 0
        #expect(throws: ConfigError("staff.max_waiting_password_checks must be 1-10000")) { try bad.rules() }
        bad.maxWaitingPasswordChecks = 4
        #expect(try bad.rules().maxWaitingPasswordChecks == 4)
    }

    @Test func errorsNameTheKey() throws {
        #expect(throws: ConfigError("configuration file /nonexistent.yaml is missing or unreadable")) {
            try ServerConfig.load(path: "/nonexistent.yaml")
        }
        let wrongType = try write("limits: { max_connections: lots }")
        #expect(throws: ConfigError("configuration file \(wrongType): wrong type at limits.max_connections")) {
            try ServerConfig.load(path: wrongType)
        }
        let tooBig = try write("limits: { max_message_bytes: 99999999 }")
        #expect(throws: ConfigError("limits.max_message_bytes must be between 1 and 4194304")) {
            try ServerConfig.load(path: tooBig).rpcConfiguration()
        }
        let badVersion = try write("tls: { certificate: a, key: b, client_ca: c, min_version: '1.0' }")
        #expect(throws: ConfigError("tls.min_version must be \"1.3\" or \"1.2\"")) {
            try ServerConfig.load(path: badVersion).tlsConfiguration()
        }
        let typo = try write("limits: { max_conections: 10 }")
        #expect(throws: ConfigError("configuration file \(typo): unknown key limits.max_conections")) {
            try ServerConfig.load(path: typo)
        }
        let forever = try write("limits: { drain_timeout_seconds: .inf }")
        #expect(throws: ConfigError("limits.drain_timeout_seconds must be between 0 and 86400 seconds (0, or at least 0.001)")) {
            try ServerConfig.load(path: forever).rpcConfiguration()
        }
        let instant = try write("limits: { idle_timeout_seconds: 1e-10 }")  // would round to no time at all
        #expect(throws: ConfigError("limits.idle_timeout_seconds must be between 0 and 86400 seconds (0, or at least 0.001)")) {
            try ServerConfig.load(path: instant).rpcConfiguration()
        }
        let slow = try write("limits: { read_bytes_per_second: 1000 }")
        #expect(throws: ConfigError("limits.read_bytes_per_second must be 0 (unpaced) or between 1048576 and 1099511627776")) {
            try ServerConfig.load(path: slow).rpcConfiguration()
        }
        #expect(try ServerConfig.load(path: try write("limits: { read_bytes_per_second: 0 }")).rpcConfiguration().readBytesPerSecond == nil)
        #expect(try ServerConfig().commitWindowMicroseconds() == 0)  // off unless asked for
        #expect(try ServerConfig.load(path: try write("data: { commit_window_us: 500 }")).commitWindowMicroseconds() == 500)
        #expect(throws: ConfigError("data.commit_window_us must be 0 (off) to 100000 microseconds")) {
            try ServerConfig.load(path: try write("data: { commit_window_us: -1 }")).commitWindowMicroseconds()
        }
        #expect(throws: ConfigError("data.commit_window_us must be 0 (off) to 100000 microseconds")) {
            try ServerConfig.load(path: try write("data: { commit_window_us: 100001 }")).commitWindowMicroseconds()
        }
        let noCA = try write("tls: { certificate: a, key: b }")
        #expect(throws: ConfigError("tls.client_ca is required: client certificates are verified against it")) {
            try ServerConfig.load(path: noCA).tlsConfiguration()
        }
    }
}

/// swift-metrics has one global backend per process: bootstrap it once for these tests.
let testRegistry: PrometheusCollectorRegistry = {
    let r = PrometheusCollectorRegistry()
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: r))
    return r
}()

@Suite struct MetricsTests {
    @Test func callsAppearOnThePrometheusEndpoint() async throws {
        let registry = testRegistry
        let s = try await TestServer.start(metrics: ServerMetrics())
        let endpoint = try await MetricsEndpoint.start(host: "127.0.0.1", port: 0, registry: registry, group: MultiThreadedEventLoopGroup.singleton)
        let c = try await s.client()
        _ = try await c.echo("count me")
        _ = await statusCode { _ = try await c.slow("Fail", millis: 0) }
        await c.close()
        let (rc, text) = try runProcess("/usr/bin/env", ["curl", "-s", "http://127.0.0.1:\(endpoint.localAddress!.port!)/metrics"])
        #expect(rc == 0)
        #expect(text.contains(#"chukan_rpc_calls_total{service="chukan.v1.Echo",method="Echo",code="OK"}"#))
        #expect(text.contains(#"chukan_rpc_calls_total{service="test.Slow",method="Fail",code="FAILED_PRECONDITION"}"#))
        #expect(text.contains("chukan_rpc_duration_seconds_bucket"))
        #expect(text.contains("chukan_connections_accepted_total"))
        #expect(text.contains("chukan_bytes_received_total"))
        await endpoint.close()
        await s.stop()
    }
}
