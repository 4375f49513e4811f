import ChukanRPC
import ChukanService
import ChukanTLS
import Foundation
import NIOCore
import Yams

/// `chukan serve`'s configuration file (YAML), documented in docs/OPERATIONS.md.
/// Every field is optional; flags override the file; the defaults are safe.
public struct ServerConfig: Codable, Sendable, Equatable {
    public struct Endpoint: Codable, Sendable, Equatable {
        public var host: String?
        public var port: Int?
        public init(host: String? = nil, port: Int? = nil) {
            self.host = host
            self.port = port
        }
    }

    public struct TLS: Codable, Sendable, Equatable {
        /// Server certificate chain, PEM, leaf first.
        public var certificate: String?
        public var key: String?
        /// CA bundle client certificates must chain to.
        public var clientCA: String?
        /// Revoked client certificates (PEM CRL).
        public var crl: String?
        /// "1.3" (default) or "1.2" (explicit opt-in: ECDHE + AEAD suites only).
        public var minVersion: String?
        public var handshakeTimeoutSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case certificate, key, crl
            case clientCA = "client_ca"
            case minVersion = "min_version"
            case handshakeTimeoutSeconds = "handshake_timeout_seconds"
        }
        public init() {}
    }

    public struct Limits: Codable, Sendable, Equatable {
        public var maxConnections: Int?
        public var maxConcurrentStreams: Int?
        public var maxMessageBytes: Int?
        public var idleTimeoutSeconds: Double?
        public var frameTimeoutSeconds: Double?
        public var clientStreamIdleSeconds: Double?
        public var drainTimeoutSeconds: Double?
        /// Per connection: bytes a second the server reads (default 67108864; 0 unpaced).
        public var readBytesPerSecond: Int?
        /// Per tenant: calls running at once (default 1024; 0 none) and per second (default 0: none).
        public var perTenantInFlight: Int?
        public var perTenantCallsPerSecond: Double?

        enum CodingKeys: String, CodingKey {
            case perTenantInFlight = "per_tenant_in_flight"
            case perTenantCallsPerSecond = "per_tenant_calls_per_second"
            case maxConnections = "max_connections"
            case maxConcurrentStreams = "max_concurrent_streams"
            case maxMessageBytes = "max_message_bytes"
            case idleTimeoutSeconds = "idle_timeout_seconds"
            case frameTimeoutSeconds = "frame_timeout_seconds"
            case clientStreamIdleSeconds = "client_stream_idle_seconds"
            case drainTimeoutSeconds = "drain_timeout_seconds"
            case readBytesPerSecond = "read_bytes_per_second"
        }
        public init() {}
    }

    public struct DataSection: Codable, Sendable, Equatable {
        /// One folder per tenant (地方公共団体コード).
        public var directory: String?
        /// Tenant keys (TENANT.vN.key, 32 bytes, mode 0600), kept apart from the data.
        public var keys: String?
        /// Snapshots kept; the log is kept back to the oldest.
        public var keepSnapshots: Int?
        /// Free space of the data disk below which the server warns (default 10) and below
        /// which register writes are refused (default 2), in percent.
        public var diskWarnFreePercent: Double?
        public var diskRefuseFreePercent: Double?
        /// The audit logs' group commit window in microseconds (default 0: off;
        /// docs/STORAGE.md §4): more CPU for the calls under load, for latency.
        public var commitWindowMicroseconds: Int?

        enum CodingKeys: String, CodingKey {
            case directory, keys
            case keepSnapshots = "keep_snapshots"
            case commitWindowMicroseconds = "commit_window_us"
            case diskWarnFreePercent = "disk_warn_free_percent"
            case diskRefuseFreePercent = "disk_refuse_free_percent"
        }
        public init() {}
    }

    /// Staff sign-in rules (docs/SECURITY.md); every key optional.
    public struct StaffSection: Codable, Sendable, Equatable {
        public var sessionHours: Double?
        public var lockAfterFailures: Int?
        public var lockMinutes: Double?
        public var passwordMaxAgeDays: Int?
        public var minimumPasswordLength: Int?
        /// MM-DD, Asia/Tokyo: every grant lapses on this date each year until renewed.
        public var grantsLapseOn: String?
        public var maxWaitingPasswordChecks: Int?
        enum CodingKeys: String, CodingKey {
            case sessionHours = "session_hours"
            case lockAfterFailures = "lock_after_failures"
            case lockMinutes = "lock_minutes"
            case passwordMaxAgeDays = "password_max_age_days"
            case minimumPasswordLength = "minimum_password_length"
            case grantsLapseOn = "grants_lapse_on"
            case maxWaitingPasswordChecks = "max_waiting_password_checks"
        }
        public init() {}

        /// The rules these settings give, checked.
        public func rules() throws -> StaffRules {
            var r = StaffRules()
            if let h = sessionHours {
                guard h > 0, h <= 24 * 7 else { throw ConfigError("staff.session_hours must be more than 0 and at most 168") }
                r.sessionSeconds = h * 3600
            }
            if let n = lockAfterFailures {
                guard (1...100).contains(n) else { throw ConfigError("staff.lock_after_failures must be 1-100") }
                r.lockAfterFailures = n
            }
            if let m = lockMinutes {
                guard m >= 0, m <= 1440 else { throw ConfigError("staff.lock_minutes must be 0-1440") }
                r.lockSeconds = m * 60
            }
            if let d = passwordMaxAgeDays {
                guard (0...3650).contains(d) else { throw ConfigError("staff.password_max_age_days must be 0 (never) to 3650") }
                r.passwordMaxAgeDays = d
            }
            if let n = minimumPasswordLength {
                guard (8...256).contains(n) else { throw ConfigError("staff.minimum_password_length must be 8-256") }
                r.minimumPasswordLength = n
            }
            if let on = grantsLapseOn {
                let parts = on.split(separator: "-").compactMap { UInt32($0) }
                guard parts.count == 2, (1...12).contains(parts[0]), (1...28).contains(parts[1]) else {
                    throw ConfigError("staff.grants_lapse_on must be MM-DD with a day from 1 to 28")
                }
                (r.grantsLapseMonth, r.grantsLapseDay) = (parts[0], parts[1])
            }
            if let n = maxWaitingPasswordChecks {
                guard (1...10_000).contains(n) else { throw ConfigError("staff.max_waiting_password_checks must be 1-10000") }
                r.maxWaitingPasswordChecks = n
            }
            return r
        }
    }

    /// 提供 (chukan.v1.Provision): the permission list and the national network's key.
    public struct ProvisionSection: Codable, Sendable, Equatable {
        /// 照会許可用照合リスト (YAML; docs/PROVISION.md).
        public var permissionList: String?
        /// The national network's permit-signing public key (ECDSA P-256, PEM).
        public var networkKey: String?
        /// How long one answer key (X25519) serves before it is replaced; default 600.
        public var answerKeyRotationSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case permissionList = "permission_list"
            case networkKey = "network_key"
            case answerKeyRotationSeconds = "answer_key_rotation_seconds"
        }

        public init() {}
    }

    public var provision: ProvisionSection?
    /// Development mode: development keys (chukanctl dev …) are accepted. Never in production.
    public var development: Bool?
    public var staff: StaffSection?
    public var data: DataSection?
    /// The policy file: which certificates are which principals, with which roles
    /// (docs/SECURITY.md). Without one, no call that needs a role is allowed.
    public var policy: String?

    /// The mutual-TLS listener for every service.
    public var listen: Endpoint?
    /// An optional listener without client certificates that serves chukan.v1.Health only.
    public var healthListen: Endpoint?
    /// Prometheus text endpoint (GET /metrics); loopback by default.
    public var metricsListen: Endpoint?
    public var tls: TLS?
    public var limits: Limits?
    /// trace, debug, info, notice, warning, error, critical.
    public var logLevel: String?

    enum CodingKeys: String, CodingKey {
        case listen, tls, limits, data, policy, staff, provision, development
        case healthListen = "health_listen"
        case metricsListen = "metrics_listen"
        case logLevel = "log_level"
    }

    public init() {}

    /// Reads a YAML file; errors name the file and the key, never a value.
    public static func load(path: String) throws -> ServerConfig {
        let text: String
        do {
            _ = try StrictYAML.load(path: path, allowed: Self.schema, what: "configuration file")
            text = try StrictYAML.read(path: path, what: "configuration file")
        } catch let e as YAMLFileError {
            throw ConfigError(e.description)
        }
        do {
            return try YAMLDecoder().decode(ServerConfig.self, from: text)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw ConfigError("configuration file \(path): wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))")
        } catch let DecodingError.dataCorrupted(context) {
            throw ConfigError("configuration file \(path): invalid value at \(context.codingPath.map(\.stringValue).joined(separator: "."))")
        } catch {
            throw ConfigError("configuration file \(path) is not valid YAML")
        }
    }

    /// Every key the file may hold; nested maps list theirs.
    nonisolated(unsafe) static let schema: [String: Any] = {  // immutable after initialisation
        let endpoint: [String: Any] = ["host": true, "port": true]
        return [
            "listen": endpoint, "health_listen": endpoint, "metrics_listen": endpoint, "log_level": true,
            "data": ["directory": true, "keys": true, "keep_snapshots": true, "disk_warn_free_percent": true, "disk_refuse_free_percent": true, "commit_window_us": true],
            "policy": true, "development": true,
            "provision": ["permission_list": true, "network_key": true, "answer_key_rotation_seconds": true],
            "staff": ["session_hours": true, "lock_after_failures": true, "lock_minutes": true, "password_max_age_days": true,
                      "minimum_password_length": true, "grants_lapse_on": true, "max_waiting_password_checks": true],
            "tls": ["certificate": true, "key": true, "client_ca": true, "crl": true, "min_version": true, "handshake_timeout_seconds": true],
            "limits": ["max_connections": true, "max_concurrent_streams": true, "max_message_bytes": true,
                       "idle_timeout_seconds": true, "frame_timeout_seconds": true, "client_stream_idle_seconds": true, "drain_timeout_seconds": true, "per_tenant_in_flight": true,
                       "per_tenant_calls_per_second": true, "read_bytes_per_second": true],
        ]
    }()

    /// The provision setup the configuration names (an unconfigured one without a section).
    public func provisionSetup() throws -> ProvisionSetup {
        let p = provision ?? .init()
        let rotation = p.answerKeyRotationSeconds ?? 600
        guard rotation.isFinite, (1...86_400).contains(rotation) else {
            throw ConfigError("provision.answer_key_rotation_seconds must be 1-86400")
        }
        do {
            let rules = try PermissionRules(path: p.permissionList)
            let key = try p.networkKey.map { try ProvisionSetup.networkKey(path: $0, development: development ?? false) }
            return ProvisionSetup(rules: rules, networkKey: key, sealer: try AnswerSealer(rotation: rotation))
        } catch let e as YAMLFileError {
            throw ConfigError(e.description)
        }
    }

    /// Seconds from the file as a TimeAmount; finite, not negative, at most a day, and
    /// either 0 (what 0 means for the key) or at least a millisecond: 1e-10 is no timeout
    /// anyone means, and would round to 0 nanoseconds.
    static func seconds(_ v: Double, _ key: String) throws -> TimeAmount {
        guard v.isFinite, v == 0 || (v >= 0.001 && v <= 86_400) else {
            throw ConfigError("\(key) must be between 0 and 86400 seconds (0, or at least 0.001)")
        }
        return .nanoseconds(Int64(v * 1e9))
    }

    /// A handshake needs some time: zero would close every connection at once.
    private func handshakeTimeout(_ v: Double) throws -> TimeAmount {
        guard v > 0 else { throw ConfigError("tls.handshake_timeout_seconds must be between 0 and 86400 seconds, and not 0") }
        return try Self.seconds(v, "tls.handshake_timeout_seconds")
    }

    /// The listener settings this configuration describes.
    /// The per-tenant limits, checked.
    public func tenantLimits() throws -> TenantLimiter.Limits {
        var l = TenantLimiter.Limits()
        if let n = limits?.perTenantInFlight {
            guard n >= 0 else { throw ConfigError("limits.per_tenant_in_flight must be 0 (none) or more") }
            l.inFlight = n
        }
        if let r = limits?.perTenantCallsPerSecond {
            guard r.isFinite, r == 0 || r >= 1 else { throw ConfigError("limits.per_tenant_calls_per_second must be 0 (none) or at least 1") }
            l.perSecond = r
        }
        return l
    }

    /// The disk watch thresholds (warn, refuse), checked.
    public func diskThresholds() throws -> (warn: Double, refuse: Double) {
        let warn = data?.diskWarnFreePercent ?? 10, refuse = data?.diskRefuseFreePercent ?? 2
        guard (0...100).contains(warn), (0...100).contains(refuse), refuse <= warn else {
            throw ConfigError("data.disk_refuse_free_percent and data.disk_warn_free_percent must be 0-100, refuse at most warn")
        }
        return (warn, refuse)
    }

    /// The audit logs' commit window (`data.commit_window_us`): 0 (off, the default)
    /// to 100,000 µs.
    public func commitWindowMicroseconds() throws -> Int {
        let v = data?.commitWindowMicroseconds ?? 0
        guard (0...100_000).contains(v) else { throw ConfigError("data.commit_window_us must be 0 (off) to 100000 microseconds") }
        return v
    }

    public func rpcConfiguration() throws -> RPCServerConfiguration {
        // Checked here, at start: the resolver would take 70000 as 4464 without a word.
        for (name, flag, endpoint) in [("listen", "--port", listen), ("health_listen", "--health-port", healthListen), ("metrics_listen", "--metrics-port", metricsListen)] {
            if let p = endpoint?.port, !(0...65_535).contains(p) { throw ConfigError("\(name).port (\(flag)) must be 0-65535, not \(p)") }
        }
        var c = RPCServerConfiguration()
        if let h = listen?.host { c.host = h }
        if let p = listen?.port { c.port = p }
        if let l = limits {
            if let v = l.maxConnections { c.maxConnections = try positive(v, "limits.max_connections") }
            if let v = l.maxConcurrentStreams { c.maxConcurrentStreams = try positive(v, "limits.max_concurrent_streams") }
            if let v = l.maxMessageBytes {
                guard v > 0 && v <= 4 << 20 else { throw ConfigError("limits.max_message_bytes must be between 1 and 4194304") }
                c.maxMessageSize = v
            }
            if let v = l.idleTimeoutSeconds {
                let t = try Self.seconds(v, "limits.idle_timeout_seconds")
                c.idleTimeout = v > 0 ? t : nil
            }
            if let v = l.frameTimeoutSeconds {
                let t = try Self.seconds(v, "limits.frame_timeout_seconds")
                c.frameTimeout = v > 0 ? t : nil
            }
            if let v = l.clientStreamIdleSeconds {
                let t = try Self.seconds(v, "limits.client_stream_idle_seconds")
                c.clientStreamIdleTimeout = v > 0 ? t : nil
            }
            if let v = l.drainTimeoutSeconds { c.drainTimeout = try Self.seconds(v, "limits.drain_timeout_seconds") }
            if let v = l.readBytesPerSecond {
                // A floor against a typo that would make every large call crawl.
                guard v == 0 || (1 << 20 ... 1 << 40).contains(v) else {
                    throw ConfigError("limits.read_bytes_per_second must be 0 (unpaced) or between 1048576 and 1099511627776")
                }
                c.readBytesPerSecond = v == 0 ? nil : v
            }
        }
        return c
    }

    /// The mutual-TLS server configuration.
    public func tlsConfiguration(requireClientCertificate: Bool = true) throws -> TLSConfiguration {
        guard let t = tls, let cert = t.certificate, let key = t.key else {
            throw ConfigError("tls.certificate and tls.key are required (see `chukanctl certs init`)")
        }
        if requireClientCertificate && t.clientCA == nil {
            throw ConfigError("tls.client_ca is required: client certificates are verified against it")
        }
        let minVersion: TLSConfiguration.MinimumVersion
        switch t.minVersion ?? "1.3" {
        case "1.3": minVersion = .tls13
        case "1.2": minVersion = .tls12
        default: throw ConfigError("tls.min_version must be \"1.3\" or \"1.2\"")
        }
        return .server(
            certificateChainPath: cert, privateKeyPath: key, trustRootsPath: t.clientCA,
            crlPath: requireClientCertificate ? t.crl : nil, requireClientCertificate: requireClientCertificate,
            minimumVersion: minVersion,
            handshakeTimeout: try handshakeTimeout(t.handshakeTimeoutSeconds ?? 10))
    }

    private func positive(_ v: Int, _ key: String) throws -> Int {
        guard v > 0 else { throw ConfigError("\(key) must be positive") }
        return v
    }
}

public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ d: String) { description = d }
}
