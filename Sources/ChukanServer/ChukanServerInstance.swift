import ChukanRPC
import ChukanService
import ChukanStore
import ChukanTLS
import Foundation
import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization
import UnixSignals

/// A running Chukan server: the mutual-TLS listener, the optional health-only listener
/// and the metrics endpoint, built from one `ServerConfig`.
public final class ChukanServerInstance: Sendable {
    public let rpc: RPCServer
    public let healthOnly: RPCServer?
    public let metricsEndpoint: MetricsEndpoint?
    public let health: HealthService
    public let tenants: TenantManager?
    public let access: AccessControl?
    public let disk: DiskWatch?
    public let provision: ProvisionSetup?
    private let logger: Logger

    private init(
        rpc: RPCServer, healthOnly: RPCServer?, metricsEndpoint: MetricsEndpoint?, health: HealthService, tenants: TenantManager?,
        access: AccessControl?, disk: DiskWatch?, provision: ProvisionSetup?, logger: Logger
    ) {
        self.provision = provision
        self.tenants = tenants
        self.access = access
        self.disk = disk
        self.rpc = rpc
        self.healthOnly = healthOnly
        self.metricsEndpoint = metricsEndpoint
        self.health = health
        self.logger = logger
    }

    /// The services every mutual-TLS listener serves.
    public static func makeRouter(
        health: HealthService, tenants: TenantManager?, access: AccessControl?, disk: DiskWatch? = nil, provision: ProvisionSetup? = nil
    ) -> RPCRouter {
        var services: [any RPCService] = [health, EchoService()]
        if let tenants, let access, let provision {
            let codes = CodeIssuers(keyDirectory: tenants.configuration.keyDirectory)
            services += [
                AdminService(tenants: tenants, access: access, disk: disk), InquiryService(tenants: tenants, access: access, codes: codes),
                CodesService(tenants: tenants, access: access, codes: codes), RegisterService(tenants: tenants, access: access),
                StaffService(tenants: tenants, access: access),
                ProvisionService(
                    tenants: tenants, access: access, codes: codes, rules: provision.rules, networkKey: provision.networkKey, sealer: provision.sealer),
            ]
        }
        return RPCRouter(services)
    }

    /// Validates the configuration, loads certificates and binds every listener.
    public static func start(
        config: ServerConfig, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        registry: PrometheusCollectorRegistry? = nil, metrics: ServerMetrics = ServerMetrics(),
        logger: Logger = Logger(label: "chukan")
    ) async throws -> ChukanServerInstance {
        let rpcConfiguration = try config.rpcConfiguration()
        let tls = try ReloadableTLSContext(config.tlsConfiguration(requireClientCertificate: true))
        var tenants: TenantManager?
        var disk: DiskWatch?
        if let data = config.data {
            guard let dir = data.directory, let keys = data.keys else {
                throw ConfigError("data.directory and data.keys are both required (keys live apart from the data)")
            }
            // Apart, not inside: a copy or backup of the data must not carry its keys.
            let resolved = { (p: String) in URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path }
            let (dataPath, keysPath) = (resolved(dir), resolved(keys))
            guard keysPath != dataPath, !keysPath.hasPrefix(dataPath.hasSuffix("/") ? dataPath : dataPath + "/") else {
                throw ConfigError("data.keys (\(keys)) must not be data.directory (\(dir)) or inside it: a copy of the data would carry its keys")
            }
            var c = TenantManager.Configuration(dataDirectory: dir, keyDirectory: keys)
            if let keep = data.keepSnapshots {
                guard keep >= 1 else { throw ConfigError("data.keep_snapshots must be at least 1") }
                c.options.keepSnapshots = keep
            }
            c.options.audit.commitWindowMicroseconds = try config.commitWindowMicroseconds()
            try PosixFileSystem().createDirectory(dir)
            let thresholds = try config.diskThresholds()
            let watch = DiskWatch(directory: dir, warnPercent: thresholds.warn, refusePercent: thresholds.refuse, logger: logger)
            c.options.writeGate = { watch.refusal }
            disk = watch
            tenants = TenantManager(configuration: c, logger: logger)
        }
        var access: AccessControl?
        let rules = try (config.staff ?? .init()).rules()
        if let tenants {
            let policy: Policy
            do { policy = try config.policy.map(Policy.load(path:)) ?? Policy(principals: []) } catch { throw ConfigError("\(error)") }
            access = AccessControl(
                policy: policy, policyPath: config.policy, audit: try AuditTrail(tenants: tenants), rules: rules, limits: try config.tenantLimits())
        } else if config.policy != nil {
            throw ConfigError("a policy needs data.directory and data.keys: the audit trail lives there")
        }
        let provision = access == nil ? nil : try config.provisionSetup()
        let health = HealthService(tenants: tenants)
        let router = makeRouter(health: health, tenants: tenants, access: access, disk: disk, provision: provision)
        let rpc = RPCServer(configuration: rpcConfiguration, tls: tls, router: router, group: group, metrics: metrics, logger: logger)
        var healthOnly: RPCServer?
        if let endpoint = config.healthListen {
            var c = rpcConfiguration
            c.host = endpoint.host ?? rpcConfiguration.host
            c.port = endpoint.port ?? 7444
            let healthTLS = try ReloadableTLSContext(config.tlsConfiguration(requireClientCertificate: false))
            var healthLogger = logger
            healthLogger[metadataKey: "listener"] = "health"
            healthOnly = RPCServer(
                configuration: c, tls: healthTLS, router: router.restricted(to: [HealthService.name]),
                group: group, metrics: metrics, logger: healthLogger)
        }
        tenants?.startAll()
        disk?.start()
        try await rpc.start()
        do {
            try await healthOnly?.start()
        } catch {
            await rpc.shutdown()
            throw error
        }
        var metricsEndpoint: MetricsEndpoint?
        if let registry, let m = config.metricsListen, m.port != 0 {
            do {
                metricsEndpoint = try await MetricsEndpoint.start(host: m.host ?? "127.0.0.1", port: m.port ?? 9464, registry: registry, group: group)
            } catch {
                await rpc.shutdown()
                await healthOnly?.shutdown()
                throw error
            }
            logger.info("metrics endpoint", metadata: ["endpoint": "\(metricsEndpoint!.localAddress.map { "\($0)" } ?? "?")"])
        }
        return ChukanServerInstance(
            rpc: rpc, healthOnly: healthOnly, metricsEndpoint: metricsEndpoint, health: health, tenants: tenants, access: access, disk: disk,
            provision: provision, logger: logger)
    }

    /// SIGHUP: certificates and CRL, the policy, the permission list (each on its own:
    /// one that fails leaves its old state and is logged).
    func reload() {
        _ = reloadTLS()
        _ = reloadPolicy()
        _ = reloadPermissionList()
    }

    /// Re-reads certificates, keys, CA bundle and CRL. On any error the old files stay
    /// in use and the error is returned; open connections are never dropped.
    @discardableResult
    public func reloadTLS() -> Error? {
        do {
            // Both listeners switch, or neither does.
            let main = try rpc.tls.prepare()
            let health = try healthOnly?.tls.prepare()
            rpc.tls.install(main)
            if let health { healthOnly?.tls.install(health) }
            logger.notice("TLS material reloaded")
            return nil
        } catch {
            logger.error("TLS reload failed; keeping the previous certificates", metadata: ["error": "\(error)"])
            return error
        }
    }

    /// Re-reads the policy file, if the server has one; a file that fails to validate is
    /// refused whole and the policy in force stays.
    @discardableResult
    public func reloadPolicy() -> Error? {
        guard let access, access.policyPath != nil else { return nil }
        do {
            let p = try access.reload()
            logger.notice("policy reloaded", metadata: ["principals": "\(p.principals.count)"])
            return nil
        } catch {
            logger.error("policy reload failed; keeping the policy in force", metadata: ["error": "\(error)"])
            return error
        }
    }

    /// Re-reads the permission list, if the server has one; a list that does not check
    /// out is refused whole and the list in force stays.
    @discardableResult
    public func reloadPermissionList() -> Error? {
        guard let rules = provision?.rules, rules.path != nil else { return nil }
        do {
            let list = try rules.reload()
            logger.notice("permission list reloaded", metadata: ["version": "\(list.version)", "rows": "\(list.rows.count)"])
            return nil
        } catch {
            logger.error("permission list reload failed; keeping the list in force", metadata: ["error": "\(error)"])
            return error
        }
    }

    func logAuditPurge(stream: String, purged: Int, error: String?) {
        if let error {
            logger.error("audit retention purge failed", metadata: ["stream": "\(stream)", "error": "\(error)"])
        } else {
            logger.notice("audit records past retention purged", metadata: ["stream": "\(stream)", "records": "\(purged)"])
        }
    }

    /// Reports NOT_SERVING, drains both listeners, closes the metrics endpoint.
    public func shutdown() async {
        health.setServing(false)
        async let a: Void = rpc.shutdown()
        async let b: Void = healthOnly?.shutdown() ?? ()
        _ = await (a, b)
        await metricsEndpoint?.close()
        tenants?.closeAll()
        access?.audit.close()
        disk?.stop()
    }
}

/// Set by a SIGHUP that arrives while the server starts, before its handler is installed.
private let hangupWhileStarting = Atomic<Bool>(false)

/// Until the server runs, a SIGHUP (a certificate hook's `systemctl reload` during a
/// restart) is noted instead of ending the process; the reload happens once it runs.
public func noteHangupsWhileStarting() {
    signal(SIGHUP) { _ in hangupWhileStarting.store(true, ordering: .relaxed) }
}

/// `chukan serve` as a swift-service-lifecycle service: runs until SIGTERM or SIGINT
/// (then drains), and reloads TLS material on SIGHUP.
public struct ChukanServerService: Service {
    let instance: ChukanServerInstance

    public init(instance: ChukanServerInstance) { self.instance = instance }

    public func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // A reload asked for while the server started (see `noteHangupsWhileStarting`)
                // is done now, once, rather than lost.
                if hangupWhileStarting.exchange(false, ordering: .relaxed) { instance.reload() }
                for await _ in hangups.cancelOnGracefulShutdown() { instance.reload() }
            }
            // The daily retention job: list the 除票 whose 150 years have passed.
            group.addTask {
                try? await Task.sleep(for: .seconds(60))
                while !Task.isCancelled {
                    instance.tenants?.logPurgeDue()
                    // Audit records past their 7 years go, the chain kept verifiable from a checkpoint.
                    for r in await instance.access?.audit.purgeExpired() ?? [] where r.purged > 0 || r.error != nil {
                        instance.logAuditPurge(stream: r.stream, purged: r.purged, error: r.error)
                    }
                    try? await Task.sleep(for: .seconds(86_400))
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        await instance.shutdown()
    }
}
