import ArgumentParser
import ChukanProto
import ChukanRegister
import ChukanStore
import Foundation

struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Development and test tools (synthetic data only).",
        subcommands: [WriteLoad.self])

    /// The writer the crash test kills: applies synthetic residents with many writes in
    /// flight and prints "ack ID" the moment each one is durable.
    struct WriteLoad: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "write-load",
            abstract: "Write synthetic residents with N in flight, printing 'ack <id>' as each becomes durable (for crash tests).")
        @OptionGroup var store: StoreOptions
        @Option(help: "Residents to write in total (already present ones are skipped).") var count = 100_000
        @Option(help: "Writes in flight.") var concurrency = 64
        @Option(help: "Seed of the synthetic residents.") var seed: UInt64 = 5

        /// Unbuffered: the line must be out before the process can be killed.
        func ack(_ id: String) { FileHandle.standardOutput.write(Data("ack \(id)\n".utf8)) }

        func run() async throws {
            let db = try store.open()
            let present = db.current
            try await withThrowingTaskGroup(of: String.self) { group in
                var inFlight = 0
                for r in SyntheticResidents(count: count, seed: seed) where present.person(r.integratedAtenaNumber) == nil {
                    var resident = r
                    resident.removalReason = .reasonUnspecified
                    resident.removedOn = nil
                    var e = RegisterEvent()
                    e.kind = .record
                    e.reason = .tennyu
                    e.resident = resident
                    group.addTask {
                        try await db.apply(e)
                        return resident.integratedAtenaNumber
                    }
                    inFlight += 1
                    if inFlight >= concurrency, let id = try await group.next() {
                        ack(id)
                        inFlight -= 1
                    }
                }
                for try await id in group { ack(id) }
            }
            db.close()
        }
    }
}
