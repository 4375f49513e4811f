import NIOCore

/// How a TLS endpoint is set up. Paths name PEM files; nothing secret is kept in memory
/// beyond OpenSSL's own context.
public struct TLSConfiguration: Sendable, Hashable {
    public enum Role: Sendable, Hashable { case server, client }

    /// The lowest protocol version accepted. TLS 1.3 unless 1.2 is opted into.
    public enum MinimumVersion: String, Sendable, Hashable, CaseIterable {
        case tls13 = "1.3"
        case tls12 = "1.2"
    }

    public var role: Role
    /// Our certificate chain (leaf first) and its private key.
    public var certificateChainPath: String?
    public var privateKeyPath: String?
    /// CA bundle that peers' certificates must chain to.
    public var trustRootsPath: String?
    /// Revoked client certificates (PEM CRLs of the issuing CAs); checked when set.
    public var crlPath: String?
    /// Server only: ask for and require a verified client certificate (mutual TLS).
    public var requireClientCertificate: Bool
    public var minimumVersion: MinimumVersion
    /// Client only: the name the server's certificate must carry (DNS name or IP address).
    public var serverHostname: String?
    /// ALPN protocols a client offers; a server answers "ttrpc" when offered and requires none.
    public var applicationProtocols: [String]
    public var handshakeTimeout: TimeAmount

    /// A server: our chain and key, clients verified against `trustRootsPath` (mutual TLS).
    public static func server(
        certificateChainPath: String, privateKeyPath: String, trustRootsPath: String?,
        crlPath: String? = nil, requireClientCertificate: Bool = true,
        minimumVersion: MinimumVersion = .tls13, handshakeTimeout: TimeAmount = .seconds(10)
    ) -> TLSConfiguration {
        TLSConfiguration(
            role: .server, certificateChainPath: certificateChainPath, privateKeyPath: privateKeyPath,
            trustRootsPath: trustRootsPath, crlPath: crlPath, requireClientCertificate: requireClientCertificate,
            minimumVersion: minimumVersion, serverHostname: nil, applicationProtocols: ["ttrpc"],
            handshakeTimeout: handshakeTimeout)
    }

    /// A client: the server verified against `trustRootsPath` and `serverHostname`,
    /// our certificate presented when given.
    public static func client(
        trustRootsPath: String, serverHostname: String?, certificateChainPath: String? = nil,
        privateKeyPath: String? = nil, minimumVersion: MinimumVersion = .tls13,
        handshakeTimeout: TimeAmount = .seconds(10)
    ) -> TLSConfiguration {
        TLSConfiguration(
            role: .client, certificateChainPath: certificateChainPath, privateKeyPath: privateKeyPath,
            trustRootsPath: trustRootsPath, crlPath: nil, requireClientCertificate: false,
            minimumVersion: minimumVersion, serverHostname: serverHostname, applicationProtocols: ["ttrpc"],
            handshakeTimeout: handshakeTimeout)
    }
}
