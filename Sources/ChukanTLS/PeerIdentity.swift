import COpenSSL

/// Who is on the other end, from its verified certificate. Handlers authorise on this.
public struct PeerIdentity: Sendable, Hashable, CustomStringConvertible {
    /// The subject's common name, e.g. "gateway.012041".
    public var commonName: String?
    /// Subject alternative names as "DNS:…", "IP:…", "URI:…" or "email:…".
    public var subjectAlternativeNames: [String]
    /// The whole subject, RFC 2253.
    public var subject: String
    /// Hex SHA-256 of the DER certificate.
    public var fingerprintSHA256: String

    public init(commonName: String?, subjectAlternativeNames: [String], subject: String, fingerprintSHA256: String) {
        self.commonName = commonName
        self.subjectAlternativeNames = subjectAlternativeNames
        self.subject = subject
        self.fingerprintSHA256 = fingerprintSHA256
    }

    public var description: String { commonName.map { "CN=\($0)" } ?? subject }

    /// Reads the identity of `cert` (an `X509*`).
    init(certificate cert: OpaquePointer) {
        var buf = [CChar](repeating: 0, count: 4096)
        let cnLength = chukan_X509_subject_cn(cert, &buf, Int32(buf.count))
        commonName = cnLength > 0 ? string(fromCBuffer: buf) : nil
        subject = chukan_X509_subject_line(cert, &buf, Int32(buf.count)) >= 0 ? string(fromCBuffer: buf) : ""
        let sanLength = chukan_X509_subject_alt_names(cert, &buf, Int32(buf.count))
        subjectAlternativeNames = sanLength > 0 ? string(fromCBuffer: buf).split(separator: "\n").map(String.init) : []
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var digestLength: UInt32 = 0
        if X509_digest(cert, EVP_sha256(), &digest, &digestLength) == 1 {
            fingerprintSHA256 = digest.prefix(Int(digestLength)).map { b in
                let s = String(b, radix: 16)
                return s.count == 1 ? "0" + s : s
            }.joined()
        } else {
            fingerprintSHA256 = ""
        }
    }
}

/// Fired inbound by `OpenSSLHandler` when the peer ended the session with close_notify
/// (an orderly close, as opposed to a TCP close that could hide a truncation).
public struct TLSCloseNotifyReceived: Sendable, Hashable {
    public init() {}
}

/// Fired inbound by `OpenSSLHandler` when the handshake is done.
public struct TLSHandshakeCompleted: Sendable, Hashable {
    /// The verified peer, when it presented a certificate.
    public var peer: PeerIdentity?
    /// "TLSv1.3" or "TLSv1.2".
    public var protocolVersion: String
    /// The ALPN protocol agreed, if any.
    public var applicationProtocol: String?
}
