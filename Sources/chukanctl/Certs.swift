import ArgumentParser
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

/// A development CA kept as files, driven through the `openssl` command.
struct DevCA {
    let dir: String
    var state: String { "\(dir)/.ca" }

    static func validate(principal: String) throws {
        let ok = !principal.isEmpty && principal.count <= 64
            && principal.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-._".unicodeScalars.contains($0) }
            && principal.unicodeScalars.allSatisfy(\.isASCII) && principal != "ca" && principal != "server" && !principal.hasPrefix(".")
        guard ok else {
            throw ValidationError("principal names are 1-64 ASCII letters, digits, '-', '.' or '_' (not 'ca' or 'server')")
        }
    }

    func createCA(days: Int) throws {
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try "".write(toFile: "\(state)/index.txt", atomically: true, encoding: .utf8)
        try "1000\n".write(toFile: "\(state)/crlnumber", atomically: true, encoding: .utf8)
        try """
        [ ca ]
        default_ca = dev
        [ dev ]
        database = \(state)/index.txt
        crlnumber = \(state)/crlnumber
        default_md = sha256
        default_crl_days = 30
        """.write(toFile: "\(state)/openssl.cnf", atomically: true, encoding: .utf8)
        try openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "\(dir)/ca.key"])
        chmod("\(dir)/ca.key", 0o600)
        try openssl([
            "req", "-x509", "-new", "-key", "\(dir)/ca.key", "-sha256", "-days", "\(days)", "-out", "\(dir)/ca.crt",
            "-subj", "/O=Chukan Development/CN=Chukan Development CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
    }

    func issue(name: String, commonName: String, serverNames: [String]?, days: Int) throws {
        let key = "\(dir)/\(name).key", csr = "\(state)/\(name).csr", ext = "\(state)/\(name).ext"
        try openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
        chmod(key, 0o600)
        try openssl(["req", "-new", "-key", key, "-out", csr, "-subj", "/O=Chukan Development/CN=\(commonName)"])
        var extensions = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature"]
        if let serverNames {
            extensions += ["extendedKeyUsage=serverAuth", "subjectAltName=\(serverNames.joined(separator: ","))"]
        } else {
            extensions += ["extendedKeyUsage=clientAuth", "subjectAltName=URI:chukan:principal:\(commonName)"]
        }
        try extensions.joined(separator: "\n").write(toFile: ext, atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", csr, "-CA", "\(dir)/ca.crt", "-CAkey", "\(dir)/ca.key", "-CAcreateserial",
            "-CAserial", "\(state)/serial", "-days", "\(days)", "-sha256", "-extfile", ext, "-out", "\(dir)/\(name).crt",
        ])
    }

    func revoke(certificate: String) throws {
        guard FileManager.default.fileExists(atPath: certificate) else {
            throw ValidationError("no certificate at \(certificate)")
        }
        try openssl(["ca", "-config", "\(state)/openssl.cnf", "-keyfile", "\(dir)/ca.key", "-cert", "\(dir)/ca.crt", "-revoke", certificate])
    }

    func generateCRL() throws {
        try openssl(["ca", "-config", "\(state)/openssl.cnf", "-keyfile", "\(dir)/ca.key", "-cert", "\(dir)/ca.crt", "-gencrl", "-out", "\(dir)/crl.pem"])
    }

    private func openssl(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["openssl"] + args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw ValidationError("openssl \(args.first ?? "") failed: \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}
