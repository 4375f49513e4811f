import Foundation
import Testing

/// The fuzzing corpora (Fuzz/corpus/TARGET: seeds and every input libFuzzer kept) and every
/// crash ever found (Fuzz/regressions/TARGET, once fixed) replay through their decoders
/// without a crash: `chukan-fuzz` built without libFuzzer is the replayer. This is CI's
/// smoke of every fuzz target; scripts/fuzz.sh runs the fuzzer itself.
@Suite struct FuzzCorpusTests {
    static let targets = ["wire", "wal", "snapshot", "permit", "policy", "permission-list", "record"]

    @Test func theCorporaAndPastCrashesReplay() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        var folders = Self.targets.map { "\(root)/Fuzz/corpus/\($0)" }
        for t in Self.targets where FileManager.default.fileExists(atPath: "\(root)/Fuzz/regressions/\(t)") {
            folders.append("\(root)/Fuzz/regressions/\(t)")
        }
        let (rc, out) = try runProcess(builtProduct("chukan-fuzz"), folders)
        #expect(rc == 0, "\(out)")
        // Every target has inputs: "replayed N inputs (permit 3, policy 1, …)".
        for t in Self.targets { #expect(out.contains("\(t) "), "no inputs for \(t): \(out)") }
        let count = Int(out.split(separator: " ").dropFirst(2).first ?? "") ?? 0
        #expect(count >= 19, "\(out)")
    }
}
