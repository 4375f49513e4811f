#if !FUZZING
import ChukanProto
import ChukanRegister
import ChukanService
import ChukanStore
import Foundation

/// Without libFuzzer (the normal build), the same binary replays inputs: every file named,
/// or every file in a folder named — the committed corpus and past crashes, as regression
/// tests (`FuzzCorpusTests` runs it). A folder named after a target (Fuzz/corpus/wal) is
/// replayed through that target; anything else through `wire`.
///   chukan-fuzz Fuzz/corpus/wal Fuzz/regressions/wire
///   chukan-fuzz --seeds Fuzz/corpus     writes well-formed seed inputs for every target
@main
struct Replay {
    static func main() async throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--seeds", arguments.count == 2 {
            try await Seeds.write(into: arguments[1])
            return
        }
        var count = 0
        var perTarget: [String: Int] = [:]
        for path in arguments {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("chukan-fuzz: no such file \(path)\n".utf8))
                exit(2)
            }
            let folder = isDirectory.boolValue ? path : (path as NSString).deletingLastPathComponent
            let target = FuzzTargets.Target(rawValue: (folder as NSString).lastPathComponent) ?? .wire
            let files = isDirectory.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" }
                : [path]
            for file in files {
                var isFolder: ObjCBool = false
                guard FileManager.default.fileExists(atPath: file, isDirectory: &isFolder), !isFolder.boolValue else { continue }
                let data = try Data(contentsOf: URL(fileURLWithPath: file))
                data.withUnsafeBytes { FuzzTargets.run(target, $0) }
                count += 1
                perTarget[target.rawValue, default: 0] += 1
            }
        }
        let detail = perTarget.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print("chukan-fuzz: replayed \(count) inputs (\(detail))")
    }
}

/// Seed inputs made by the real writers, so the fuzzer starts from files that decode,
/// decrypt and verify, and changes them from there.
enum Seeds {
    static func write(into root: String) async throws {
        let fm = FileManager.default
        func put(_ target: FuzzTargets.Target, _ name: String, _ bytes: [UInt8]) throws {
            try fm.createDirectory(atPath: "\(root)/\(target.rawValue)", withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: "\(root)/\(target.rawValue)/seed-\(name)"))
        }
        // A tenant's log and snapshot under the fuzzing key: residents, a staff account, a held provision.
        let dir = NSTemporaryDirectory() + "chukan-fuzz-seeds-\(UUID().uuidString)"
        defer { try? fm.removeItem(atPath: dir) }
        let db = try TenantDatabase.open(directory: dir, keyRing: StoreTargets.keyRing)
        for var r in SyntheticResidents(count: 6, seed: 3) {
            r.removalReason = .reasonUnspecified  // recorded as residents; a 除票 comes by a later event
            r.removedOn = nil
            var e = RegisterEvent()
            e.kind = .record
            e.reason = .tennyu
            e.resident = r
            try await db.apply(e)
        }
        var held = PendingProvision()
        held.pendingId = "P1"
        held.state = .held
        held.person = "T000000001"
        held.itemGroup = .household
        var e = RegisterEvent()
        e.kind = .provisionHold
        e.pending = held
        try await db.apply(e)
        let info = try db.snapshot()
        db.close()
        try put(.snapshot, "register", Array(try Data(contentsOf: URL(fileURLWithPath: info.path))))
        for name in try fm.contentsOfDirectory(atPath: "\(dir)/wal") where name.hasSuffix(".wal") {
            try put(.wal, "register-\(name)", Array(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/wal/\(name)"))))
        }
        // A permit that verifies at the target's clock, a bare permit, an answer that opens.
        var p = ProvisionPermit()
        p.permitId = "FUZZ-1"
        p.inquirer = "MHLW0001"
        p.tenant = StoreTargets.tenant
        p.legalRow = 1
        p.fugo = String(repeating: "AB", count: 16)
        p.itemGroup = .nameAndBirth
        p.inquirerPublicKey = ProvisionTargets.inquirerKey.publicKey
        p.issuedUnixMs = ProvisionTargets.now - 10_000
        p.expiresUnixMs = ProvisionTargets.now + 600_000
        let signed = try Permits.sign(p, with: ProvisionTargets.networkKey)
        try put(.permit, "signed", [0] + signed.encodedBytes)
        try put(.permit, "permit", [1] + p.encodedBytes)
        var payload = ProvisionPayload()
        payload.permitId = "FUZZ-1"
        payload.itemGroup = .nameAndBirth
        var nb = NameAndBirth()
        nb.birthDate = CalendarDate(1980, 4, 1)
        payload.nameAndBirth = nb
        let answer = try AnswerSealer().seal(payload.encodedBytes, to: ProvisionTargets.inquirerKey.publicKey, permitID: "FUZZ-1")
        try put(.permit, "answer", [2] + answer.encodedBytes)
        // Records as the register stores them: residents, a 除票 with former numbers.
        for (i, r) in SyntheticResidents(count: 4, seed: 5).enumerated() {
            var v = r
            if i == 3 {
                v.formerKojinBango = ["123456789018"]
                v.removalReason = .shibou
                v.removedOn = CalendarDate(2024, 1, 31)
            }
            try put(.record, "resident-\(i)", v.encodedBytes)
        }
        // The files people write.
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        try put(.policy, "demo", Array(try Data(contentsOf: URL(fileURLWithPath: "\(repo)/config/demo-policy.yaml"))))
        try put(.permissionList, "repository", Array(try Data(contentsOf: URL(fileURLWithPath: "\(repo)/config/permission-list.yaml"))))
        print("chukan-fuzz: seeds written under \(root)/<target>")
    }
}
#endif
