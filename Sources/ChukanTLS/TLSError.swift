import COpenSSL

/// Why a TLS connection or context failed, in words fit for a log line.
public enum TLSError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A file or setting of the configuration is unusable (names the file, never a secret).
    case configuration(String)
    /// The handshake failed: the peer's certificate, version or suites were refused.
    case handshakeFailed(String)
    /// The handshake did not finish in time.
    case handshakeTimeout
    /// A record failed after the handshake.
    case protocolError(String)
    /// The peer closed the TCP connection without a close_notify.
    case uncleanShutdown

    public var description: String {
        switch self {
        case let .configuration(m): "TLS configuration: \(m)"
        case let .handshakeFailed(m): "TLS handshake failed: \(m)"
        case .handshakeTimeout: "TLS handshake timed out"
        case let .protocolError(m): "TLS error: \(m)"
        case .uncleanShutdown: "TLS connection closed without close_notify"
        }
    }
}

/// Drains OpenSSL's (thread-local) error queue into one readable string.
func openSSLErrors(fallback: String = "unknown OpenSSL error") -> String {
    var parts: [String] = []
    while true {
        let e = ERR_get_error()
        if e == 0 { break }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(e, &buf, buf.count)
        // Keep the reason text only: "error:0A000086:SSL routines::certificate verify failed".
        let line = string(fromCBuffer: buf)
        parts.append(line.split(separator: ":", omittingEmptySubsequences: false).last.map(String.init) ?? line)
    }
    return parts.isEmpty ? fallback : parts.joined(separator: "; ")
}

/// The NUL-terminated string in a C character buffer.
func string(fromCBuffer buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
