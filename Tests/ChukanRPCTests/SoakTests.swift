import Foundation
import Testing

/// The short soak (2 minutes, each worker pausing 5 ms between calls so that the suites beside
/// it keep their CPU): 照会, writes, 符号取得 and 提供 against a real server process
/// that is SIGKILLed and restarted every 40 s, with a snapshot every 20 s; afterwards every
/// acknowledged write and every acknowledged 提供 must be there and the audit chain intact.
/// `chukan-bench soak` is the same run for 30 minutes (docs/RELIABILITY.md).
@Suite struct SoakTests {
    @Test func nothingAcknowledgedIsLostAcrossKillsAndSnapshots() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let work = NSTemporaryDirectory() + "chukan-soak-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: work) }
        let port = Int.random(in: 21_000...29_000)
        let (rc, out) = try runProcess(builtProduct("chukan-bench"), [
            "soak", "--seconds", "120", "--kill-every", "40", "--snapshot-every", "20", "--pause-ms", "5", "--work", work, "--port", "\(port)",
            "--chukan", builtProduct("chukan"), "--chukanctl", builtProduct("chukanctl"),
            "--permission-list", "\(root)/config/permission-list.yaml", "--json",
        ])
        #expect(rc == 0, "\(out)")
        let line = out.split(separator: "\n").last.map(String.init) ?? ""
        let figures = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(out)")
        #expect((figures["kills"] as? Int ?? 0) >= 2, "\(figures)")
        #expect((figures["snapshots"] as? Int ?? 0) >= 2, "\(figures)")
        for kind in ["writes", "lookups", "codes", "provisions"] { #expect((figures[kind] as? Int ?? 0) > 0, "\(kind): \(figures)") }
        #expect(figures["missing_writes"] as? Int == 0 && figures["missing_provisions"] as? Int == 0, "\(figures)")
        #expect(figures["audit_chain"] as? String == "intact", "\(figures)")
    }
}
