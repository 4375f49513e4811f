import ArgumentParser
import ChukanCore
import Foundation
import ChukanServer
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle

@main
struct Chukan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chukan",
        abstract: "Chukan (中間): an intermediate server for My Number information linkage.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self)

    /// Huge pages for the heap first (see `HugePages`): the process may start again here.
    static func main() async {
        HugePages.enableForThisProcess()
        await main(nil)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve ttrpc over mutual TLS until SIGTERM or SIGINT (SIGHUP reloads certificates, CRL, policy and permission list).",
        discussion: """
        Settings come from --config (YAML, see docs/OPERATIONS.md); flags override the file.
        Development certificates: `chukanctl certs init certs`, then
          chukan serve --cert certs/server.crt --key certs/server.key --client-ca certs/ca.crt
        """)

    @Option(help: "Configuration file (YAML).") var config: String?
    @Option(help: "Address to listen on (default 127.0.0.1).") var host: String?
    @Option(help: "Port for the mutual-TLS listener (default 7443).") var port: Int?
    @Option(help: "Server certificate chain (PEM).") var cert: String?
    @Option(help: "Server private key (PEM).") var key: String?
    @Option(name: .customLong("client-ca"), help: "CA bundle that client certificates must chain to (PEM).") var clientCA: String?
    @Option(help: "Revoked client certificates (PEM CRL).") var crl: String?
    @Flag(help: "Also accept TLS 1.2 (ECDHE + AEAD suites only). Default: TLS 1.3 only.") var tls12 = false
    @Option(name: .customLong("health-port"), help: "Also listen here without client certificates, serving chukan.v1.Health only.") var healthPort: Int?
    @Option(name: .customLong("metrics-port"), help: "Prometheus endpoint port (default 9464; 0 disables), on metrics_listen.host from the file, else 127.0.0.1.") var metricsPort: Int?
    @Option(name: .customLong("max-connections"), help: "Connections accepted at once (default 4096).") var maxConnections: Int?
    @Option(name: .customLong("max-streams"), help: "Calls still running per connection (default 1024); calls answered inline do not count.") var maxStreams: Int?
    @Option(name: .customLong("max-message-bytes"), help: "Largest frame accepted, at most 4194304 (default).") var maxMessageBytes: Int?
    @Option(name: .customLong("idle-timeout"), help: "Seconds before an idle connection is closed (default 300; 0 never).") var idleTimeout: Double?
    @Option(name: .customLong("frame-timeout"), help: "Seconds a frame may take to arrive once begun, else the connection is closed (default 30; 0 never).") var frameTimeout: Double?
    @Option(name: .customLong("drain-timeout"), help: "Seconds a shutdown waits for calls in flight (default 30).") var drainTimeout: Double?
    @Option(name: .customLong("read-rate"), help: "Bytes a second the server reads from one connection (default 67108864, 64 MiB; 0 unpaced; else at least 1048576).") var readRate: Int?
    @Option(help: "Data directory: one folder per tenant (enables the register and chukan.v1.Admin).") var data: String?
    @Option(help: "Tenant key directory (TENANT.vN.key, mode 0600), apart from the data.") var keys: String?
    @Option(name: .customLong("commit-window-us"), help: "Group commit window of the audit logs, in microseconds (default 0: off; at most 100000): under a load the cores cannot keep up with, fewer, larger flushes, for latency.") var commitWindow: Int?
    @Option(help: "The policy file: certificates, principals, tenants and roles (YAML; docs/SECURITY.md). Reloaded on SIGHUP.") var policy: String?
    @Option(name: .customLong("permission-list"), help: "The 提供 permission list (照会許可用照合リスト, YAML). Reloaded on SIGHUP.") var permissionList: String?
    @Option(name: .customLong("network-key"), help: "The national network's permit-signing public key (ECDSA P-256, PEM).") var networkKey: String?
    @Flag(help: "Development mode: accept development keys (chukanctl dev …). Never in production.") var development = false
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (default info).") var logLevel: String?

    func merged() throws -> ServerConfig {
        var c = try config.map(ServerConfig.load(path:)) ?? ServerConfig()
        var listen = c.listen ?? .init()
        if let host { listen.host = host }
        if let port { listen.port = port }
        c.listen = listen
        var tls = c.tls ?? .init()
        if let cert { tls.certificate = cert }
        if let key { tls.key = key }
        if let clientCA { tls.clientCA = clientCA }
        if let crl { tls.crl = crl }
        if tls12 { tls.minVersion = "1.2" }
        c.tls = tls
        if let healthPort { c.healthListen = .init(host: c.healthListen?.host ?? listen.host, port: healthPort) }
        if let metricsPort { c.metricsListen = .init(host: c.metricsListen?.host, port: metricsPort) }
        if c.metricsListen == nil { c.metricsListen = .init(host: "127.0.0.1", port: 9464) }
        var limits = c.limits ?? .init()
        if let maxConnections { limits.maxConnections = maxConnections }
        if let maxStreams { limits.maxConcurrentStreams = maxStreams }
        if let maxMessageBytes { limits.maxMessageBytes = maxMessageBytes }
        if let idleTimeout { limits.idleTimeoutSeconds = idleTimeout }
        if let frameTimeout { limits.frameTimeoutSeconds = frameTimeout }
        if let drainTimeout { limits.drainTimeoutSeconds = drainTimeout }
        if let readRate { limits.readBytesPerSecond = readRate }
        c.limits = limits
        if let logLevel { c.logLevel = logLevel }
        if data != nil || keys != nil {
            var d = c.data ?? .init()
            if let data { d.directory = data }
            if let keys { d.keys = keys }
            c.data = d
        }
        if let commitWindow {
            guard c.data != nil else { throw ConfigError("--commit-window-us applies to the audit logs of a data directory: give --data and --keys too") }
            c.data?.commitWindowMicroseconds = commitWindow
        }
        if let policy { c.policy = policy }
        if permissionList != nil || networkKey != nil {
            var p = c.provision ?? .init()
            if let permissionList { p.permissionList = permissionList }
            if let networkKey { p.networkKey = networkKey }
            c.provision = p
        }
        if development { c.development = true }
        return c
    }

    func run() async throws {
        // A reload asked for while the server starts (a certificate hook's `systemctl
        // reload`) must not kill it: it is noted, and done once the server runs.
        noteHangupsWhileStarting()
        let config: ServerConfig
        do {
            config = try merged()
        } catch {
            throw ValidationError("\(error)")
        }
        guard let level = Logger.Level(rawValue: config.logLevel ?? "info") else {
            throw ValidationError("log level must be one of trace, debug, info, notice, warning, error, critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "chukan")

        let instance: ChukanServerInstance
        do {
            instance = try await ChukanServerInstance.start(config: config, registry: registry, logger: logger)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        print("chukan: listening on \(hostPort(instance.rpc.localAddress)) (mutual TLS)")
        if let h = instance.healthOnly?.localAddress { print("chukan: health-only listener on \(hostPort(h)) (no client certificate; chukan.v1.Health only)") }
        if let m = instance.metricsEndpoint?.localAddress { print("chukan: metrics on http://\(hostPort(m))/metrics") }
        fflush(nil)  // scripts wait for these lines; a pipe would hold them back
        let group = ServiceGroup(
            services: [ChukanServerService(instance: instance)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        try await group.run()
        print("chukan: stopped")
        fflush(nil)
    }
}

/// "127.0.0.1:7443" or "[::1]:7443".
func hostPort(_ address: SocketAddress?) -> String {
    guard let address, let ip = address.ipAddress, let port = address.port else { return "?" }
    return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
}
