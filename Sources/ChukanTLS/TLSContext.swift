import COpenSSL
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An OpenSSL `SSL_CTX` built from a `TLSConfiguration`. Immutable once made, so one
/// context serves every connection; a reload builds a new one (`ReloadableTLSContext`).
public final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let configuration: TLSConfiguration

    public init(_ configuration: TLSConfiguration) throws {
        self.configuration = configuration
        ERR_clear_error()
        let method = configuration.role == .server ? TLS_server_method() : TLS_client_method()
        guard let ctx = SSL_CTX_new(method) else {
            throw TLSError.configuration("cannot create an OpenSSL context: \(openSSLErrors())")
        }
        self.ctx = ctx
        // Every stored property is set, so if this throws, deinit frees the context.
        try configure()
    }

    deinit { SSL_CTX_free(ctx) }

    private func configure() throws {
        let c = configuration
        _ = SSL_CTX_set_options(ctx, chukan_tls_default_options())
        let minVersion = c.minimumVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION
        guard chukan_SSL_CTX_set_min_proto_version(ctx, minVersion) == 1,
              chukan_SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1
        else { throw TLSError.configuration("cannot set protocol versions: \(openSSLErrors())") }
        // TLS 1.2, when opted into: forward secrecy (ECDHE) and AEAD only.
        let tls12Suites = [
            "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
            "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        ].joined(separator: ":")
        guard SSL_CTX_set_cipher_list(ctx, tls12Suites) == 1 else {
            throw TLSError.configuration("cannot set cipher suites: \(openSSLErrors())")
        }
        _ = chukan_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_OFF))
        _ = SSL_CTX_set_num_tickets(ctx, 0)

        if let chain = c.certificateChainPath {
            try Self.requireReadable(chain, what: "certificate chain")
            guard SSL_CTX_use_certificate_chain_file(ctx, chain) == 1 else {
                throw TLSError.configuration("cannot load certificate chain \(chain): \(openSSLErrors())")
            }
            guard let key = c.privateKeyPath else {
                throw TLSError.configuration("a certificate chain needs its private key file")
            }
            try Self.requireReadable(key, what: "private key")
            guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else {
                throw TLSError.configuration("cannot load private key \(key): \(openSSLErrors())")
            }
            guard SSL_CTX_check_private_key(ctx) == 1 else {
                throw TLSError.configuration("private key \(key) does not match certificate \(chain)")
            }
        } else if c.role == .server {
            throw TLSError.configuration("a server needs a certificate chain and private key")
        }

        if let roots = c.trustRootsPath {
            try Self.requireReadable(roots, what: "CA bundle")
            guard SSL_CTX_load_verify_locations(ctx, roots, nil) == 1 else {
                throw TLSError.configuration("cannot load CA bundle \(roots): \(openSSLErrors())")
            }
        }
        if let crl = c.crlPath {
            try Self.requireReadable(crl, what: "CRL")
            let store = SSL_CTX_get_cert_store(ctx)
            guard let lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file()),
                  X509_load_crl_file(lookup, crl, X509_FILETYPE_PEM) > 0
            else { throw TLSError.configuration("cannot load CRL \(crl): \(openSSLErrors())") }
            _ = X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK))
        }

        switch c.role {
        case .server:
            if c.requireClientCertificate {
                guard c.trustRootsPath != nil else {
                    throw TLSError.configuration("mutual TLS needs a CA bundle to verify client certificates")
                }
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
            } else {
                SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
            }
            chukan_SSL_CTX_enable_alpn_ttrpc(ctx)
        case .client:
            guard c.trustRootsPath != nil else {
                throw TLSError.configuration("a client needs a CA bundle to verify the server")
            }
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        }
    }

    private static func requireReadable(_ path: String, what: String) throws {
        guard access(path, R_OK) == 0 else {
            throw TLSError.configuration("\(what) \(path) is missing or unreadable")
        }
    }

    /// A new `SSL` for one connection, with memory BIOs attached.
    func makeConnection() throws -> OpaquePointer {
        ERR_clear_error()
        guard let ssl = SSL_new(ctx) else {
            throw TLSError.configuration("cannot create a TLS connection: \(openSSLErrors())")
        }
        guard let rbio = BIO_new(BIO_s_mem()), let wbio = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError.configuration("cannot create memory BIOs")
        }
        // An empty read BIO means "want more", not EOF.
        _ = chukan_BIO_set_mem_eof_return(rbio, -1)
        SSL_set_bio(ssl, rbio, wbio)
        switch configuration.role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client:
            SSL_set_connect_state(ssl)
            if !configuration.applicationProtocols.isEmpty {
                var wire: [UInt8] = []
                for p in configuration.applicationProtocols {
                    wire.append(UInt8(p.utf8.count))
                    wire.append(contentsOf: p.utf8)
                }
                _ = SSL_set_alpn_protos(ssl, wire, UInt32(wire.count))
            }
            if let host = configuration.serverHostname {
                if Self.isIPAddress(host) {
                    _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                } else {
                    _ = chukan_SSL_set_tlsext_host_name(ssl, host)
                    _ = SSL_set1_host(ssl, host)
                }
            }
        }
        return ssl
    }

    static func isIPAddress(_ s: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }
}

/// The server's current context. A reload (SIGHUP, admin call) swaps in a new one;
/// connections already open keep the context they started with.
public final class ReloadableTLSContext: Sendable {
    private let current: Mutex<TLSContext>

    public init(_ configuration: TLSConfiguration) throws {
        current = Mutex(try TLSContext(configuration))
    }

    public var context: TLSContext { current.withLock { $0 } }

    /// Re-reads every file of the configuration. On failure the old context stays.
    public func reload(_ configuration: TLSConfiguration? = nil) throws {
        install(try prepare(configuration))
    }

    /// Builds the next context without installing it, so several listeners can be
    /// reloaded all or nothing.
    public func prepare(_ configuration: TLSConfiguration? = nil) throws -> TLSContext {
        try TLSContext(configuration ?? context.configuration)
    }

    public func install(_ next: TLSContext) {
        current.withLock { $0 = next }
    }
}
