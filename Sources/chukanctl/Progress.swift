import Foundation

/// Progress for long commands: a bar with rate and ETA on a terminal, a plain line every
/// few seconds otherwise (logs, CI), nothing with --json. Written to stderr.
final class Progress {
    let label: String
    let total: Int
    let enabled: Bool
    let terminal = isatty(2) == 1
    let started = Date()
    var lastPrint = Date.distantPast
    var done = 0

    init(_ label: String, total: Int, enabled: Bool = true) {
        self.label = label
        self.total = max(total, 1)
        self.enabled = enabled
    }

    func advance(to n: Int) {
        done = n
        let now = Date()
        guard enabled, now.timeIntervalSince(lastPrint) >= (terminal ? 0.1 : 5) else { return }
        lastPrint = now
        print(final: false)
    }

    func finish() {
        guard enabled else { return }
        done = total
        print(final: true)
    }

    private func print(final: Bool) {
        let elapsed = Date().timeIntervalSince(started)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let fraction = Double(done) / Double(total)
        let line: String
        if terminal {
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            line = String(format: "\r%@ %@ %3.0f%% %d/%d  %.0f/s  ETA %.0fs%@", label, bar, fraction * 100, done, total, rate, eta, final ? "\n" : "")
        } else {
            line = String(format: "%@: %d/%d (%.0f%%), %.0f/s, ETA %.0fs\n", label, done, total, fraction * 100, rate, eta)
        }
        FileHandle.standardError.write(Data(line.utf8))
    }
}

/// Prints `object` as one line of JSON.
/// Prints `object` as one JSON line; one that cannot be (a NaN) ends the command with
/// an error rather than printing nothing and succeeding.
func printJSON(_ object: Any) {
    guard JSONSerialization.isValidJSONObject(object), let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
        FileHandle.standardError.write(Data("chukanctl: the answer could not be written as JSON\n".utf8))
        exit(1)
    }
    print(String(decoding: data, as: UTF8.self))
}
