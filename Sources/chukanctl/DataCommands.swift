import ArgumentParser
import ChukanCore
import ChukanProto
import ChukanRegister
import ChukanStore
import Foundation

struct DataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Synthetic residents and bulk loads.",
        subcommands: [Generate.self, Import.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write N synthetic residents (never real people) to a resident file.",
            discussion: "Realistic households, Japanese names in kanji and kana, Asahikawa addresses, valid 個人番号 and 住民票コード, a mix of insurance statuses, foreign residents and about 3% 除票. The same --seed gives the same people.")
        @Option(help: "How many residents.") var count = 1000
        @Option(help: "Seed: the same seed, the same residents.") var seed: UInt64 = 1
        @Option(help: "Municipality of the addresses (地方公共団体コード).") var municipality = "012041"
        @Option(help: "Output file.") var out: String
        @Flag(help: "Print a JSON summary.") var json = false

        func run() throws {
            guard count > 0 else { throw ValidationError("--count must be positive") }
            if let problem = Identifiers.localGovernmentCodeProblem(municipality) {
                throw ValidationError("--municipality \(municipality): \(problem)")  // every record would be refused
            }
            let started = Date()
            let writer = try ResidentFile.Writer(path: out)
            let progress = Progress("generate", total: count, enabled: !json)
            for (i, r) in SyntheticResidents(count: count, seed: seed, municipality: municipality).enumerated() {
                try writer.append(r)
                if i % 1000 == 0 { progress.advance(to: i) }
            }
            try writer.finish()
            progress.finish()
            let seconds = Date().timeIntervalSince(started)
            if json {
                printJSON(["residents": count, "file": out, "seconds": seconds])
            } else {
                print(String(format: "data: wrote %d residents to %@ in %.1f s", count, out, seconds))
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bulk-load a resident file into a tenant (offline: the server must not hold it).",
            discussion: "Each record is validated like any write; rejected records are counted by reason (reasons only, never values). A 除票 in the file is recorded and removed, with its reason and date, in one event.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Resident file (from `data generate` or the resident system).") var file: String
        @Option(help: "Writes in flight (they share fdatasyncs).") var concurrency = 256
        @Flag(help: "Print a JSON summary.") var json = false

        func run() async throws {
            let db = try store.open()
            defer { db.close() }
            var reader = try ResidentFile.Reader(path: file)
            let progress = Progress("import (bytes read)", total: reader.size, enabled: !json)
            let started = Date()
            var accepted = 0
            var rejected: [String: Int] = [:]
            // Not loaded for a reason other than its content: a damaged file, the log failing.
            var incomplete = 0
            try await withThrowingTaskGroup(of: Refusal?.self) { group in
                var inFlight = 0
                func collect(_ r: Refusal?) {
                    guard let r else { return accepted += 1 }
                    rejected[r.reason, default: 0] += 1
                    if !r.forContent { incomplete += 1 }
                }
                while let next = reader.next() {
                    switch next {
                    case let .failure(e):
                        let reason = e.description.split(separator: ":", maxSplits: 1).last.map { String($0).trimmingCharacters(in: .whitespaces) } ?? "malformed"
                        rejected[reason, default: 0] += 1
                        incomplete += 1
                    case let .success(r):
                        group.addTask { await Self.load(r, into: db) }
                        inFlight += 1
                        if inFlight >= concurrency, let r = try await group.next() {
                            collect(r)
                            inFlight -= 1
                        }
                    }
                    if reader.index % 1000 == 0 { progress.advance(to: reader.position) }
                }
                for try await r in group { collect(r) }
            }
            progress.finish()
            let seconds = Date().timeIntervalSince(started)
            if json {
                printJSON(["accepted": accepted, "rejected": rejected.values.reduce(0, +), "reasons": rejected, "seconds": seconds, "sequence": db.current.sequence])
            } else {
                print(String(format: "import: %d accepted, %d rejected in %.1f s (%.0f/s)", accepted, rejected.values.reduce(0, +), seconds, Double(accepted) / max(seconds, 0.001)))
                for (reason, n) in rejected.sorted(by: { $0.value > $1.value }) { print("  \(n) × \(reason)") }
            }
            if incomplete > 0 {
                FileHandle.standardError.write(Data("chukanctl: \(incomplete) record(s) were not loaded for a reason other than their content (a damaged file, or the log failing); the import is incomplete\n".utf8))
                throw ExitCode(1)
            }
        }

        /// Why a record was not loaded, and whether that is the register's verdict on the
        /// record itself (reported; the import goes on and succeeds) or anything else, which
        /// leaves the import incomplete (exit status 1).
        struct Refusal: Sendable {
            var reason: String
            var forContent: Bool
        }
        static let contentCodes: Set<StatusCode> = [.invalidArgument, .alreadyExists, .failedPrecondition, .notFound]

        /// Records one resident (a 除票 recorded and removed in one event). Returns why not,
        /// or nil.
        static func load(_ resident: Resident, into db: TenantDatabase) async -> Refusal? {
            // A 除票 keeps its 消除事由 and 消除年月日: the register records and removes it
            // in one event (and refuses one already there).
            var e = RegisterEvent()
            e.kind = .record
            e.reason = resident.recordReason
            e.resident = resident
            e.eventDate = resident.recordedOn
            do {
                _ = try await db.write(e)
                return nil
            } catch let e as RPCError {
                return Refusal(reason: "\(e.code.name): \(e.message)", forContent: contentCodes.contains(e.code))
            } catch {
                return Refusal(reason: "\(type(of: error))", forContent: false)
            }
        }
    }
}
