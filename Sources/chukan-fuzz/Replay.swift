#if !FUZZING
import Foundation

/// Without libFuzzer (the normal build), the same binary replays inputs: every file named,
/// or every file in a folder named — the committed corpus and past crashes, as regression
/// tests (`FuzzCorpusTests` runs it).
@main
struct Replay {
    static func main() throws {
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("chukan-fuzz: no such file \(path)\n".utf8))
                exit(2)
            }
            let files = isDirectory.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" }
                : [path]
            for file in files {
                let data = try Data(contentsOf: URL(fileURLWithPath: file))
                data.withUnsafeBytes { FuzzTargets.run($0) }
                count += 1
            }
        }
        print("chukan-fuzz: replayed \(count) inputs")
    }
}
#endif
