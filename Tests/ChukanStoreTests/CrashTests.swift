import ChukanProto
import ChukanRegister
import ChukanStore
import Foundation
import Testing

/// A child process writes under load and is killed with SIGKILL at random moments, then
/// the tenant is reopened: every acknowledged write is there, and nothing that is there
/// is half-applied. CHUKAN_CRASH_CYCLES sets the cycles (scripts/crash-test.sh runs thousands).
@Suite(.serialized) struct CrashTests {
    static var cycles: Int { Int(ProcessInfo.processInfo.environment["CHUKAN_CRASH_CYCLES"] ?? "") ?? 20 }

    @Test func acknowledgedWritesSurviveSIGKILL() async throws {
        let root = NSTemporaryDirectory() + "chukan-crash-\(UUID().uuidString)"
        let data = "\(root)/data", keys = "\(root)/keys"
        try TenantKeyRing.addVersion(tenant: "012041", directory: keys)
        try PosixFileSystem().createDirectory("\(data)/012041")
        let ctl = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("chukanctl").path
        let total = 1_000_000
        var expected: [String: Resident] = [:]
        for r in SyntheticResidents(count: 40_000, seed: 5) {
            var c = r
            c.removalReason = .reasonUnspecified
            c.removedOn = nil
            expected[c.integratedAtenaNumber] = c
        }
        var acknowledged = Set<String>()
        var rng = SplitMix64(seed: UInt64(Date().timeIntervalSince1970))
        for cycle in 0..<Self.cycles {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: ctl)
            p.arguments = ["dev", "write-load", "--data", data, "--keys", keys, "--count", "\(total)", "--concurrency", "64"]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            try await Task.sleep(for: .milliseconds(100 + Int(rng.next(400))))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            // Only whole lines count: a line cut by the kill was not fully reported.
            for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() where line.hasPrefix("ack ") {
                acknowledged.insert(String(line.dropFirst(4)))
            }
            let db = try TenantDatabase.open(directory: "\(data)/012041", keyRing: TenantKeyRing.load(tenant: "012041", directory: keys))
            let state = db.current
            let missing = acknowledged.filter { state.person($0) == nil }
            #expect(missing.isEmpty, "cycle \(cycle): \(missing.count) acknowledged writes lost")
            var whole = true
            for (id, entry) in state.persons {
                if (try? entry.resident()) != expected[id.string] { whole = false }
            }
            #expect(whole, "cycle \(cycle): a record is not exactly what was written")
            let consistent = try state.indexesAreConsistent()
            #expect(consistent, "cycle \(cycle): indexes differ from a rescan")
            db.close()
            if !missing.isEmpty || !whole || !consistent { break }
        }
        #expect(acknowledged.count > 0, "the writer never acknowledged anything")
    }
}
