import ArgumentParser
import ChukanRegister
import ChukanStore
import Foundation

/// Loads one snapshot a few times and prints the seconds of each load: the load figure
/// of `register` without building a register first (for profiling the load alone).
struct SnapshotLoadBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot-load",
        abstract: "Time loading a snapshot with its index rebuild (release build), e.g. one left by `register`.")

    @Argument(help: "Snapshot file (e.g. Benchmarks/out/register/snapshots/<name>.snap).") var file: String
    @Option(help: "Key directory holding the tenant's key.") var keys: String
    @Option(help: "Loads to time.") var rounds = 3
    @Option(help: "Also time writing the loaded register as a snapshot into this directory, as many times.") var writeDir: String?
    @Option(help: "Also time this many point lookups by 個人番号, and as many by 世帯番号 handing out each member, after each load (ns/op).") var lookups = 0
    @Flag(help: "Print one JSON object (loads_s, write_mb_per_s) instead of lines.") var json = false

    func run() throws {
        let info = try Snapshots.verify(path: file)
        let ring = try TenantKeyRing.load(tenant: info.header.tenant, directory: keys)
        var loads: [Double] = [], writes: [Double] = []
        for round in 1...rounds {
            let start = Date()
            let state = try Snapshots.load(path: file, keyRing: ring)
            loads.append(Date().timeIntervalSince(start))
            if !json { print("load \(round): \(state.count) residents in \(String(format: "%.2f", loads.last!)) s") }
            if lookups > 0 {
                // Keys of every 7th person, probed in a shuffled order.
                var keys: [String] = [], households: [String] = []
                for (i, (_, entry)) in state.persons.enumerated() where i % 7 == 0 {
                    let r = try entry.resident()
                    keys.append(r.kojinBango)
                    households.append(r.householdNumber)
                }
                keys.shuffle()
                households.shuffle()
                var start = DispatchTime.now().uptimeNanoseconds
                var found = 0
                for i in 0..<lookups where state.byKojinBango(keys[i % keys.count]) != nil { found += 1 }
                precondition(found == lookups, "a lookup missed")
                if !json { print("lookups \(round): \(Double(DispatchTime.now().uptimeNanoseconds - start) / Double(lookups)) ns/op") }
                start = DispatchTime.now().uptimeNanoseconds
                found = 0
                for i in 0..<lookups {
                    let members = state.household(households[i % households.count])
                    var handedOut = !members.isEmpty
                    for m in members { handedOut = handOut(m.entry) && handedOut }
                    if handedOut { found += 1 }
                }
                precondition(found == lookups, "a household lookup missed")
                if !json { print("household lookups \(round): \(Double(DispatchTime.now().uptimeNanoseconds - start) / Double(lookups)) ns/op") }
            }
            if let writeDir {
                let start = Date()
                let written = try Snapshots.write(state, directory: writeDir, keyRing: ring)
                let seconds = Date().timeIntervalSince(start)
                writes.append(Double(written.size) / 1e6 / seconds)
                if !json { print("write \(round): \(written.size / 1_000_000) MB in \(String(format: "%.2f s, %.0f MB/s", seconds, writes.last!))") }
                try? FileManager.default.removeItem(atPath: written.path)
            }
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: ["loads_s": loads, "write_mb_per_s": writes], options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

/// Hands an entry out as a caller gets it (retained), without the optimizer dropping it.
@inline(never) private func handOut(_ entry: PersonEntry) -> Bool { withExtendedLifetime(entry) { true } }
