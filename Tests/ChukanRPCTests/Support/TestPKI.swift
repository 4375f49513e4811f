import ChukanDev
import ChukanTLS
import Foundation

/// Development certificates made fresh for the tests, with the project's own dev CA.
struct TestPKI: Sendable {
    let dir: String

    /// One PKI shared by tests that do not change it: clients "admin" and "gateway".
    static let shared: TestPKI = try! TestPKI.make(clients: ["admin", "gateway", "approver", "clerk"])
    /// Another CA, with its own "admin": a certificate the server must not trust.
    static let rogue: TestPKI = try! TestPKI.make(clients: ["admin"])

    static func make(clients: [String]) throws -> TestPKI {
        let dir = NSTemporaryDirectory() + "chukan-pki-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ca = DevCA(dir: dir)
        try ca.createCA(days: 30)
        try ca.issue(name: "server", commonName: "localhost", serverNames: ["DNS:localhost", "IP:127.0.0.1"], days: 30)
        for c in clients { try ca.issue(name: c, commonName: c, serverNames: nil, days: 30) }
        try ca.generateCRL()
        return TestPKI(dir: dir)
    }

    var caPath: String { "\(dir)/ca.crt" }
    var crlPath: String { "\(dir)/crl.pem" }

    func serverTLS(requireClientCertificate: Bool = true, crl: Bool = false, minimumVersion: TLSConfiguration.MinimumVersion = .tls13) -> TLSConfiguration {
        .server(certificateChainPath: "\(dir)/server.crt", privateKeyPath: "\(dir)/server.key", trustRootsPath: caPath,
                crlPath: crl ? crlPath : nil, requireClientCertificate: requireClientCertificate, minimumVersion: minimumVersion)
    }

    /// A client of this PKI's CA presenting `name`'s certificate (none when nil).
    func clientTLS(_ name: String?, trusting ca: String? = nil) throws -> TLSContext {
        try TLSContext(.client(
            trustRootsPath: ca ?? caPath, serverHostname: "localhost",
            certificateChainPath: name.map { "\(dir)/\($0).crt" }, privateKeyPath: name.map { "\(dir)/\($0).key" }))
    }

    func revoke(_ name: String) throws {
        let ca = DevCA(dir: dir)
        try ca.revoke(certificate: "\(dir)/\(name).crt")
        try ca.generateCRL()
    }
}
