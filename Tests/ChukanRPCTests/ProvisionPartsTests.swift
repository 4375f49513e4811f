import ChukanCore
import ChukanProto
import ChukanService
import ChukanStore
import Foundation
import Testing

/// The parts of 提供 on their own: the permission list's checks, development-key marking,
/// the permit's checks, the answer sealer's key reuse and rotation, permit claims.
@Suite struct ProvisionPartsTests {
    static let repoList = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("config/permission-list.yaml").path

    static let minimal = """
        version: "t1"
        illustrative: true
        agencies:
          市町村長: ["LG012041"]
        rows:
          - "no": 1
            inquirer: 市町村長
            kinds: [市町村長]
            legal_row: 48
            purpose: "地方税の賦課徴収に関する事務"
            item_groups: [name-and-birth, household]
            removed_residents: true
        """

    @Test func theRepositoryListHoldsTheSixtyRowsOfTheSeed() throws {
        let list = try PermissionList.load(path: Self.repoList)
        #expect(list.rows.count == 60 && list.illustrative)
        #expect(list.rows.map(\.number) == Array(1...60))
        #expect(list.rows.allSatisfy { !$0.purpose.isEmpty && $0.itemGroups.contains(.nameAndBirth) && !$0.agencies.isEmpty })
        #expect(list.row(1)?.inquirer == "厚生労働大臣" && list.row(1)?.agencies == ["MHLW0001"])
        #expect(list.row(48)?.agencies.contains("LG012041") == true)
    }

    @Test func aMalformedListIsRefusedWholeNamingRowAndKey() throws {
        let good = try PermissionList.parse(Self.minimal, source: "t")
        #expect(good.row(48)?.itemGroups == [.nameAndBirth, .household] && good.row(48)?.removedResidents == true)
        let broken: [(String, String)] = [
            (Self.minimal.replacingOccurrences(of: "illustrative: true", with: "illustrative: true\nextra: 1"), "unknown key extra"),
            (Self.minimal.replacingOccurrences(of: "household]", with: "kojin-bango]"), "rows[0].item_groups: unknown group"),
            (Self.minimal.replacingOccurrences(of: "kinds: [市町村長]", with: "kinds: [知事]"), "rows[0].kinds"),
            (Self.minimal.replacingOccurrences(of: "\"LG012041\"", with: "\"lg-1\""), "agencies.市町村長"),
            (Self.minimal.replacingOccurrences(of: "legal_row: 48", with: "legal_row: 0"), "rows[0].legal_row"),
            (Self.minimal.replacingOccurrences(of: "    purpose: \"地方税の賦課徴収に関する事務\"\n", with: ""), "rows[0].purpose"),
            (Self.minimal.replacingOccurrences(of: "- \"no\": 1", with: "- \"no\": 0"), "rows[0].no"),
            (Self.minimal + "\n  - \"no\": 1\n    inquirer: x\n    kinds: [市町村長]\n    legal_row: 49\n    purpose: p\n    item_groups: [address]\n    removed_residents: false\n", "row 1 appears twice"),
            (Self.minimal + "\n  - \"no\": 2\n    inquirer: x\n    kinds: [市町村長]\n    legal_row: 48\n    purpose: p\n    item_groups: [address]\n    removed_residents: false\n", "項 48 appears in two rows"),
            ("rows: [", "not valid YAML"),
            (Self.minimal.replacingOccurrences(of: "    removed_residents: true", with: "    removed_residents: true\n    item_groups: [address]"), "a key is given twice in one map (rows[0].item_groups)"),
        ]
        for (text, problem) in broken {
            do {
                _ = try PermissionList.parse(text, source: "t")
                Issue.record("accepted a list with: \(problem)")
            } catch { #expect("\(error)".contains(problem), "\(error)") }
        }
    }

    /// Found by fuzzing: Yams.load traps on a key that is not plain text (a list as key, a
    /// tag); a list, a policy or a configuration file must get an error instead.
    @Test func keysThatAreNotTextAreAnErrorNotATrap() throws {
        for text in ["? [a, b]\n: 1\n", "version: 1\nprincipals:\n  - { ? {x: 1} : y }\n", "a: &x 1\nb: *x\n"] {
            #expect(throws: YAMLFileError.self, "\(text)") { _ = try PermissionList.parse(text, source: "t") }
            #expect(throws: (any Error).self, "\(text)") { _ = try Policy.parse(text, source: "t") }
        }
    }

    /// Found by fuzzing: Yams overflows (traps) on a long YAML 1.1 base-60 integer; such a
    /// value is now text, refused by the type check, while decimal integers still read.
    @Test func baseSixtyNumbersAreAnErrorNotATrap() throws {
        for text in ["-2072220000722000088:0", "version: -2008220002072200008:0\n", "version: 99999999999999999999:59:59\n"] {
            #expect(throws: (any Error).self, "\(text)") { _ = try PermissionList.parse(text, source: "t") }
            #expect(throws: (any Error).self, "\(text)") { _ = try Policy.parse(text, source: "t") }
        }
        #expect(try StrictYAML.document("a: 12\nb: -3\nc: 1:30\n", source: "t", what: "test") as? [String: AnyHashable] == ["a": 12, "b": -3, "c": "1:30"])
    }

    @Test func aReloadThatFailsKeepsTheListInForce() throws {
        let path = NSTemporaryDirectory() + "list-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Self.minimal.write(toFile: path, atomically: true, encoding: .utf8)
        let rules = try PermissionRules(path: path)
        try "version: broken".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: RPCError.self) { try rules.reload() }
        #expect(rules.current?.version == "t1")
        try Self.minimal.replacingOccurrences(of: "\"t1\"", with: "\"t2\"").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try rules.reload().version == "t2" && rules.current?.version == "t2")
    }

    @Test func developmentKeysAreRefusedOutsideDevelopmentMode() throws {
        let dir = NSTemporaryDirectory() + "keys-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let key = try ECDSAP256Key.generate()
        try DevelopmentKey.mark(try key.publicPEM(), use: "test").write(toFile: "\(dir)/dev.pub", atomically: true, encoding: .utf8)
        try key.publicPEM().write(toFile: "\(dir)/prod.pub", atomically: true, encoding: .utf8)
        try key.privatePEM().write(toFile: "\(dir)/private.key", atomically: true, encoding: .utf8)
        try X25519Key.generate().publicPEM().write(toFile: "\(dir)/x25519.pub", atomically: true, encoding: .utf8)
        #expect(throws: YAMLFileError.self) { _ = try ProvisionSetup.networkKey(path: "\(dir)/dev.pub", development: false) }
        _ = try ProvisionSetup.networkKey(path: "\(dir)/dev.pub", development: true)
        _ = try ProvisionSetup.networkKey(path: "\(dir)/prod.pub", development: false)
        #expect(throws: YAMLFileError.self) { _ = try ProvisionSetup.networkKey(path: "\(dir)/private.key", development: true) }
        #expect(throws: YAMLFileError.self) { _ = try ProvisionSetup.networkKey(path: "\(dir)/x25519.pub", development: true) }
        #expect(throws: YAMLFileError.self) { _ = try ProvisionSetup.networkKey(path: "\(dir)/missing.pub", development: true) }
        // The marked PEM still reads as a key (the marker is outside the PEM block).
        let read = try ECDSAP256Key(pem: DevelopmentKey.mark(try key.privatePEM(), use: "test"))
        let signature = try read.sign([1, 2, 3])
        #expect([UInt8]([1, 2, 3]).withUnsafeBytes { key.verify(signature: signature, message: $0) })
        #expect(![UInt8]([1, 2, 4]).withUnsafeBytes { key.verify(signature: signature, message: $0) })
    }

    @Test func permitsAreCheckedForSignatureLifetimeAndShape() throws {
        let key = try ECDSAP256Key.generate()
        let now: Int64 = 1_800_000_000_000
        var p = ProvisionPermit()
        p.permitId = "P-1"
        p.inquirerPublicKey = Array(repeating: 9, count: 32)
        p.issuedUnixMs = now
        p.expiresUnixMs = now + 60_000
        #expect(try Permits.open(try Permits.sign(p, with: key), networkKey: key, nowUnixMs: now + 1000).permitId == "P-1")
        func reason(_ permit: ProvisionPermit, at t: Int64 = now) -> String? {
            do { _ = try Permits.open(try Permits.sign(permit, with: key), networkKey: key, nowUnixMs: t); return nil } catch let e as RPCError {
                return ProvisionRefusal(message: e.message)?.rawValue
            } catch { return "\(error)" }
        }
        #expect(reason(p, at: now + 60_001) == "PERMIT_EXPIRED")
        var long = p
        long.expiresUnixMs = now + 25 * 3_600_000
        #expect(reason(long) == "PERMIT_MALFORMED")
        var future = p
        future.issuedUnixMs = now + 600_000
        future.expiresUnixMs = future.issuedUnixMs + 60_000
        #expect(reason(future) == "PERMIT_MALFORMED")
        var badID = p
        badID.permitId = "has space"
        #expect(reason(badID) == "PERMIT_MALFORMED")
        var unsigned = try Permits.sign(p, with: key)
        unsigned.signature = []
        #expect(throws: RPCError.self) { _ = try Permits.open(unsigned, networkKey: key, nowUnixMs: now) }
        // A signature over the bare permit (no label) does not stand for a permit.
        var bare = try Permits.sign(p, with: key)
        bare.signature = try key.sign(bare.permit)
        #expect(throws: RPCError.self) { _ = try Permits.open(bare, networkKey: key, nowUnixMs: now) }
    }

    @Test func theSealerReusesAgreementsAndRotatesItsKey() throws {
        let t = TestClock(Date(timeIntervalSince1970: 1_800_000_000))
        let sealer = try AnswerSealer(rotation: 600, now: { t.now })
        let inquirer = try X25519Key.generate()
        var payload = ProvisionPayload()
        payload.permitId = "P-1"
        let a = try sealer.seal(payload.encodedBytes, to: inquirer.publicKey, permitID: "P-1")
        let b = try sealer.seal(payload.encodedBytes, to: inquirer.publicKey, permitID: "P-2")
        #expect(a.serverPublicKey == b.serverPublicKey && a.salt != b.salt && a.ciphertext != b.ciphertext)
        #expect(try AnswerSealer.open(b, with: inquirer).permitId == "P-1")  // the payload as given; bound to P-2 by the aad
        t.advance(601)
        let c = try sealer.seal(payload.encodedBytes, to: inquirer.publicKey, permitID: "P-3")
        #expect(c.serverPublicKey != a.serverPublicKey)
        _ = try AnswerSealer.open(c, with: inquirer)
        _ = try AnswerSealer.open(a, with: inquirer)  // answers sealed before a rotation still open
        // A low-order or short key is refused as INVALID_ARGUMENT.
        for bad in [[UInt8](repeating: 0, count: 32), [UInt8](repeating: 1, count: 31)] {
            #expect(throws: RPCError.self) { _ = try sealer.seal([1], to: bad, permitID: "P-4") }
        }
    }

    @Test func aPermitIsClaimedOnceUntilItExpires() {
        let claims = PermitClaims()
        #expect(claims.claim("A", expiresUnixMs: 2000, nowUnixMs: 1000))
        #expect(!claims.claim("A", expiresUnixMs: 2000, nowUnixMs: 1500))
        // Expired claims are swept in time (kept a while past expiry, for a clock set back);
        // the count stays bounded by the live ones.
        let later = 3000 + PermitClaims.keptPastExpiryMs + 1000
        for i in 0..<5000 { _ = claims.claim("X\(i)", expiresUnixMs: 3000, nowUnixMs: 2500) }
        #expect(!claims.claim("X1", expiresUnixMs: 3000, nowUnixMs: 3000 + PermitClaims.keptPastExpiryMs - 1), "still kept just after expiry")
        for i in 0..<5000 { _ = claims.claim("Y\(i)", expiresUnixMs: later + 9000, nowUnixMs: later) }
        #expect(claims.count <= 10_000, "the expired X claims were swept")
    }
}
