import ChukanCore
import ChukanStore
import Foundation
import Testing

@Suite struct CryptoTests {
    @Test func crc32cKnownVector() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32C.softwareChecksum($0) } == 0xE306_9283)
    }

    /// The instruction path and the table path agree at every length and alignment, and
    /// a checksum continued piece by piece equals the one over the whole.
    @Test func crc32cPathsAgree() {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<4099).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes.withUnsafeBytes { all in
            for start in 0..<9 {
                for length in [0, 1, 7, 8, 9, 63, 64, 65, 1000, 4090 - start] {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                    #expect(CRC32C.checksum(slice) == CRC32C.softwareChecksum(slice), "start \(start) length \(length)")
                }
            }
            let split = 1234
            let whole = CRC32C.checksum(all)
            let pieces = CRC32C.update(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: all[..<split])), UnsafeRawBufferPointer(rebasing: all[split...]))
            #expect(whole == pieces)
        }
    }

    /// RFC 5869, test case 1.
    @Test func hkdfRFC5869() throws {
        let okm = try HKDF.sha256(
            key: Array(repeating: 0x0B, count: 22), salt: Array(0x00...0x0C), info: Array(0xF0...0xF9), length: 42)
        let hex = okm.map { String(format: "%02x", $0) }.joined()
        #expect(hex == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        // Test case 3: no salt (a block of zeros stands in) and no info.
        let okm3 = try HKDF.sha256(key: Array(repeating: 0x0B, count: 22), salt: [], info: [], length: 42)
        #expect(okm3.map { String(format: "%02x", $0) }.joined() == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }

    @Test func aesGCMRoundTripAndTamper() throws {
        let gcm = try AESGCM(key: secureRandomBytes(32))
        let nonce = secureRandomBytes(12)
        let plaintext = Array("住民票関係情報".utf8)
        let aad: [UInt8] = [1, 2, 3]
        var sealed: [UInt8] = []
        try plaintext.withUnsafeBytes { p in try aad.withUnsafeBytes { a in try gcm.seal(nonce: nonce, plaintext: p, aad: a, into: &sealed) } }
        #expect(sealed.count == plaintext.count + 16)
        #expect(!sealed.starts(with: plaintext))
        let opened = try sealed.withUnsafeBytes { s in try aad.withUnsafeBytes { a in try gcm.open(nonce: nonce, ciphertextAndTag: s, aad: a) } }
        #expect(opened == plaintext)
        var tampered = sealed
        tampered[0] ^= 1
        #expect(throws: CryptoError.authenticationFailed) {
            _ = try tampered.withUnsafeBytes { s in try aad.withUnsafeBytes { a in try gcm.open(nonce: nonce, ciphertextAndTag: s, aad: a) } }
        }
        #expect(throws: CryptoError.authenticationFailed) {
            _ = try sealed.withUnsafeBytes { s in try [9].withUnsafeBytes { a in try gcm.open(nonce: nonce, ciphertextAndTag: s, aad: a) } }
        }
        let other = try AESGCM(key: secureRandomBytes(32))
        #expect(throws: CryptoError.authenticationFailed) {
            _ = try sealed.withUnsafeBytes { s in try aad.withUnsafeBytes { a in try other.open(nonce: nonce, ciphertextAndTag: s, aad: a) } }
        }
    }

    /// One context used for many records — a run of seals, a run of opens with a tampered
    /// record in it, then the two directions in turn — gives what a fresh context gives
    /// for each (it keeps the key schedule between calls in one direction).
    @Test func aReusedContextSealsAndOpensAsFreshOnes() throws {
        let key = secureRandomBytes(32)
        let reused = try AESGCM(key: key)
        func seal(_ gcm: AESGCM, _ r: (nonce: [UInt8], aad: [UInt8], plaintext: [UInt8])) throws -> [UInt8] {
            var out: [UInt8] = []
            try r.plaintext.withUnsafeBytes { p in try r.aad.withUnsafeBytes { a in try gcm.seal(nonce: r.nonce, plaintext: p, aad: a, into: &out) } }
            return out
        }
        func open(_ gcm: AESGCM, _ r: (nonce: [UInt8], aad: [UInt8], plaintext: [UInt8]), _ sealed: [UInt8]) -> [UInt8]? {
            try? sealed.withUnsafeBytes { c in try r.aad.withUnsafeBytes { a in try gcm.open(nonce: r.nonce, ciphertextAndTag: c, aad: a) } }
        }
        let records = (0..<40).map { i in (nonce: secureRandomBytes(12), aad: secureRandomBytes(i % 3 * 8), plaintext: secureRandomBytes(i * 7 % 200)) }
        var sealed: [[UInt8]] = []
        for (i, r) in records.prefix(20).enumerated() {  // seals in a row
            sealed.append(try seal(reused, r))
            #expect(sealed[i] == (try seal(AESGCM(key: key), r)), "seal \(i)")
        }
        for (i, r) in records.prefix(20).enumerated() {  // opens in a row, one tampered
            var bytes = sealed[i]
            if i == 9 { bytes[0] ^= 1 }
            #expect(open(reused, r, bytes) == (i == 9 ? nil : r.plaintext), "open \(i)")
        }
        for (i, r) in records.enumerated().dropFirst(20) {  // in turn
            let s = try seal(reused, r)
            #expect(s == (try seal(AESGCM(key: key), r)), "seal \(i)")
            #expect(open(reused, records[i - 20], sealed[i - 20]) == records[i - 20].plaintext, "open \(i - 20)")
        }
    }

    @Test func keyFilesMustBePrivateAndExact() throws {
        let dir = NSTemporaryDirectory() + "chukan-keys-\(UUID().uuidString)"
        #expect(try TenantKeyRing.addVersion(tenant: "012041", directory: dir) == 1)
        #expect(try TenantKeyRing.addVersion(tenant: "012041", directory: dir) == 2)
        let ring = try TenantKeyRing.load(tenant: "012041", directory: dir)
        #expect(ring.currentVersion == 2 && ring.versions == [1, 2])
        let path = "\(dir)/012041.v2.key"
        chmod(path, 0o644)
        #expect(throws: KeyError("key file \(path) must be readable by its owner only (mode 0600)")) {
            try TenantKeyRing.load(tenant: "012041", directory: dir)
        }
        chmod(path, 0o600)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        #expect(throws: KeyError("key file \(path) must hold exactly 32 bytes")) {
            try TenantKeyRing.load(tenant: "012041", directory: dir)
        }
        #expect(throws: KeyError("no key for tenant 011002 in \(dir)")) {
            try TenantKeyRing.load(tenant: "011002", directory: dir)
        }
    }

    /// Password hashes: the right password matches, a wrong one and a mangled hash do not
    /// (a salt with a sign in it is not hex: "+f" once read as 15).
    @Test func passwordHashesAndTheirHex() {
        let stored = PasswordHash.make("correct horse battery", iterations: 1000)
        #expect(PasswordHash.verify("correct horse battery", against: stored))
        #expect(!PasswordHash.verify("correct horse battery!", against: stored))
        var parts = stored.split(separator: "$").map(String.init)
        parts[2] = "+f" + parts[2].dropFirst(2)
        #expect(!PasswordHash.verify("correct horse battery", against: parts.joined(separator: "$")))
        #expect(Hex.encode([0x00, 0x9c, 0xff]) == "009cff")
        #expect(Hex.decode("009CfF") == [0x00, 0x9c, 0xff])
        for bad in ["0", "0g", "+f", "-1", " 1"] { #expect(Hex.decode(bad) == nil, "\(bad)") }
    }
}
