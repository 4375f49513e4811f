import ArgumentParser
import ChukanDev
import Foundation

/// Development certificates, made with the `openssl` command of OpenSSL 3.
struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make development certificates: a CA, a server certificate, client certificates, a CRL.",
        subcommands: [Init.self, Issue.self, Revoke.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a development CA, a server certificate and client certificates in DIR.",
            discussion: """
            Writes ca.crt/ca.key, server.crt/server.key (for localhost, 127.0.0.1 and ::1),
            NAME.crt/NAME.key for each --client (default: admin), and an empty crl.pem.
            Keys are EC P-256, mode 0600. Refuses to overwrite existing files.
            For development only: the CA key sits beside the certificates.
            """)

        @Argument(help: "Directory to create the files in.") var dir: String
        @Option(name: .customLong("client"), help: "A principal to issue a client certificate for (repeatable).") var clients: [String] = []
        @Option(help: "Extra DNS names for the server certificate (repeatable).") var dns: [String] = []
        @Option(help: "Days the certificates are valid.") var days: Int = 825

        func run() throws {
            let names = clients.isEmpty ? ["admin"] : clients
            for n in names { try DevCA.validate(principal: n) }
            let files = ["ca.crt", "ca.key", "server.crt", "server.key", "crl.pem"] + names.flatMap { ["\($0).crt", "\($0).key"] }
            let existing = files.filter { FileManager.default.fileExists(atPath: "\(dir)/\($0)") }
            guard existing.isEmpty else {
                throw ValidationError("refusing to overwrite \(existing.map { "\(dir)/\($0)" }.joined(separator: ", "))")
            }
            let ca = DevCA(dir: dir)
            try ca.createCA(days: days)
            try ca.issue(name: "server", commonName: "localhost", serverNames: ["DNS:localhost", "IP:127.0.0.1", "IP:::1"] + dns.map { "DNS:\($0)" }, days: days)
            for n in names { try ca.issue(name: n, commonName: n, serverNames: nil, days: days) }
            try ca.generateCRL()
            print("certs: wrote \(files.count) files to \(dir)")
            for f in files { print("  \(dir)/\(f)") }
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a client certificate NAME.crt/NAME.key from the CA in DIR.")
        @Argument(help: "Directory holding ca.crt and ca.key.") var dir: String
        @Argument(help: "Principal name (the certificate's CN).") var name: String
        @Option(help: "Days the certificate is valid.") var days: Int = 825

        func run() throws {
            try DevCA.validate(principal: name)
            for f in ["\(name).crt", "\(name).key"] where FileManager.default.fileExists(atPath: "\(dir)/\(f)") {
                throw ValidationError("refusing to overwrite \(dir)/\(f)")
            }
            try DevCA(dir: dir).issue(name: name, commonName: name, serverNames: nil, days: days)
            print("certs: wrote \(dir)/\(name).crt and \(dir)/\(name).key")
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke NAME.crt and rewrite DIR/crl.pem; send the server SIGHUP to apply it.")
        @Argument(help: "Directory holding the CA.") var dir: String
        @Argument(help: "Principal whose certificate is revoked.") var name: String

        func run() throws {
            try DevCA.validate(principal: name)
            let ca = DevCA(dir: dir)
            try ca.revoke(certificate: "\(dir)/\(name).crt")
            try ca.generateCRL()
            print("certs: revoked \(name); \(dir)/crl.pem rewritten")
        }
    }
}

