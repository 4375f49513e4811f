import Foundation

/// Why a development-CA step failed.
public struct DevCAError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A development CA kept as files, driven through the `openssl` command.
public struct DevCA {
    public let dir: String

    public init(dir: String) { self.dir = dir }
    public var state: String { "\(dir)/.ca" }

    public static func validate(principal: String) throws {
        let ok = !principal.isEmpty && principal.count <= 64
            && principal.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-._".unicodeScalars.contains($0) }
            && principal.unicodeScalars.allSatisfy(\.isASCII) && principal != "ca" && principal != "server" && !principal.hasPrefix(".")
        guard ok else {
            throw DevCAError("principal names are 1-64 ASCII letters, digits, '-', '.' or '_' (not 'ca' or 'server')")
        }
    }

    public func createCA(days: Int) throws {
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
        default_crl_days = 3650
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

    public func issue(name: String, commonName: String, serverNames: [String]?, days: Int) throws {
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

    public func revoke(certificate: String) throws {
        guard FileManager.default.fileExists(atPath: certificate) else {
            throw DevCAError("no certificate at \(certificate)")
        }
        try openssl(["ca", "-config", "\(state)/openssl.cnf", "-keyfile", "\(dir)/ca.key", "-cert", "\(dir)/ca.crt", "-revoke", certificate])
    }

    public func generateCRL() throws {
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
        // Read before waiting: a full pipe would block openssl forever.
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let message = String(decoding: errors, as: UTF8.self)
            throw DevCAError("openssl \(args.first ?? "") failed: \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}
