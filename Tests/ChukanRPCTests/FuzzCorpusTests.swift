import Foundation
import Testing

/// The fuzzing corpus (Fuzz/corpus: seeds and every input libFuzzer kept) and every crash
/// ever found (Fuzz/crashes, once fixed) replay through the decoders without a crash:
/// `chukan-fuzz` built without libFuzzer is the replayer.
@Suite struct FuzzCorpusTests {
    @Test func theCorpusAndPastCrashesReplay() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        var folders = ["\(root)/Fuzz/corpus"]
        if FileManager.default.fileExists(atPath: "\(root)/Fuzz/regressions") { folders.append("\(root)/Fuzz/regressions") }
        let (rc, out) = try runProcess(builtProduct("chukan-fuzz"), folders)
        #expect(rc == 0, "\(out)")
        let count = Int(out.split(separator: " ").dropLast().last ?? "") ?? 0
        #expect(count >= 13, "\(out)")
    }
}
