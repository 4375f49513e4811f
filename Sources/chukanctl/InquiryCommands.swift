import ArgumentParser
import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanStore
import Foundation
import Synchronization

/// 照会 and 符号 as a client: what a clerk's or code manager's system would send.
struct Lookup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "chukan.v1.Inquiry/Lookup: one person by 宛名番号, 統合宛名番号, 住民票コード, 符号 or 個人番号 (number-clerk).")
    enum Key: String, ExpressibleByArgument, CaseIterable {
        case atena, integrated, juminhyo, fugo, kojin

        var kind: LookupRequestKeyKind {
            switch self {
            case .atena: .atenaNumber
            case .integrated: .integratedAtenaNumber
            case .juminhyo: .juminhyoCode
            case .fugo: .fugo
            case .kojin: .kojinBango
            }
        }
    }
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
    @Option(help: "Which key: \(Key.allCases.map(\.rawValue).joined(separator: ", ")).") var by: Key = .atena
    @Argument(help: "The key's value; '-' reads it from standard input (a 個人番号 on the command line is visible to other users in ps).") var key: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        var r = LookupRequest()
        r.tenant = tenant
        r.key = try keyFromArgumentOrStdin(key)
        r.keyKind = by.kind
        let client = try await connection.connect()
        let response = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Inquiry", method: "Lookup", request: r, as: LookupResponse.self, metadata: connection.metadata, timeout: connection.duration)
        }
        printPeople(response.person.map { [$0] } ?? [], total: 1, next: "", json: json)
    }
}

struct Search: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "chukan.v1.Inquiry/Search: 4情報 search — a kana name and a birth date or an address (or both).")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
    @Option(help: "Name in kana (any width, hiragana or katakana).") var kana: String
    @Option(help: "Birth date, YYYY-MM-DD.") var birth: String?
    @Option(help: "Address as registered (spaces and full-width digits do not matter).") var address: String?
    @Option(help: "Results per page (1-100).") var pageSize: UInt32 = 20
    @Option(help: "Token from the previous page.") var page = ""
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        var r = SearchRequest()
        r.tenant = tenant
        r.kana = kana
        r.address = address ?? ""
        r.pageSize = pageSize
        r.pageToken = page
        if let birth {
            let parts = birth.split(separator: "-").compactMap { UInt32($0) }
            guard parts.count == 3 else { throw ValidationError("--birth must be YYYY-MM-DD") }
            r.birthDate = CalendarDate(parts[0], parts[1], parts[2])
        }
        let client = try await connection.connect()
        let p = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Inquiry", method: "Search", request: r, as: PersonPage.self, metadata: connection.metadata, timeout: connection.duration)
        }
        printPeople(p.people, total: Int(p.total), next: p.nextPageToken, json: json)
    }
}

struct Household: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "chukan.v1.Inquiry/Household: the members of a household (世帯番号).")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
    @Argument(help: "世帯番号.") var household: String
    @Option(help: "Results per page (1-100).") var pageSize: UInt32 = 20
    @Option(help: "Token from the previous page.") var page = ""
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        var r = HouseholdRequest()
        r.tenant = tenant
        r.householdNumber = household
        r.pageSize = pageSize
        r.pageToken = page
        let client = try await connection.connect()
        let p = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Inquiry", method: "Household", request: r, as: PersonPage.self, metadata: connection.metadata, timeout: connection.duration)
        }
        printPeople(p.people, total: Int(p.total), next: p.nextPageToken, json: json)
    }
}

struct AcquireCode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acquire-code", abstract: "chukan.v1.Codes/AcquireCode: the person's 符号 in this tenant (code-manager).")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
    @Argument(help: "団体内統合宛名番号.") var person: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        var r = AcquireCodeRequest()
        r.tenant = tenant
        r.integratedAtenaNumber = person
        let client = try await connection.connect()
        let c = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Codes", method: "AcquireCode", request: r, as: CodeResponse.self, metadata: connection.metadata, timeout: connection.duration)
        }
        if json { printJSON(["fugo": c.fugo, "integrated_atena_number": c.integratedAtenaNumber]) } else { print(c.fugo) }
    }
}

struct LookupCode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookup-code", abstract: "chukan.v1.Codes/LookupCode: the 団体内統合宛名番号 a 符号 stands for (code-manager).")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
    @Argument(help: "The 符号 (32 hex digits).") var fugo: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        var r = LookupCodeRequest()
        r.tenant = tenant
        r.fugo = fugo
        let client = try await connection.connect()
        let c = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Codes", method: "LookupCode", request: r, as: CodeResponse.self, metadata: connection.metadata, timeout: connection.duration)
        }
        if json { printJSON(["fugo": c.fugo, "integrated_atena_number": c.integratedAtenaNumber]) } else { print(c.integratedAtenaNumber) }
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "chukan.v1.Admin/TenantStats: a tenant's calls per day since the server started, its snapshots, the disk and its limits.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        var r = TenantStatsRequest()
        r.tenant = tenant
        let client = try await connection.connect()
        let s = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Admin", method: "TenantStats", request: r, as: TenantStatsResponse.self, metadata: connection.metadata, timeout: connection.duration)
        }
        let days = s.days.map { ["date": $0.date, "inquiries": Int($0.inquiries), "codes_issued": Int($0.codesIssued), "writes": Int($0.writes), "refusals": Int($0.refusals), "provisions": Int($0.provisions)] }
        if json {
            printJSON(["tenant": tenant, "state": stateName(s.status?.state ?? .stateUnspecified), "records": Int(s.status?.records ?? 0),
                       "purge_due": Int(s.status?.purgeDue ?? 0), "days": days, "last_snapshot": s.lastSnapshot, "last_snapshot_sequence": Int(s.lastSnapshotSequence),
                       "last_snapshot_unix": Int(s.lastSnapshotUnix), "snapshots_kept": Int(s.snapshotsKept), "disk_free_bytes": Int(s.diskFreeBytes),
                       "writes_refused": s.writesRefused, "calls_in_flight_limit": Int(s.callsInFlightLimit), "calls_per_second_limit": s.callsPerSecondLimit])
            return
        }
        print("\(tenant)  \(stateName(s.status?.state ?? .stateUnspecified))  \(s.status?.records ?? 0) records  sequence \(s.status?.sequence ?? 0)  除票 due for purge \(s.status?.purgeDue ?? 0)")
        let age = s.lastSnapshotUnix > 0 ? String(format: "%.1f h ago", (Date().timeIntervalSince1970 - Double(s.lastSnapshotUnix)) / 3600) : "none"
        print("snapshots: \(s.snapshotsKept) kept, newest \(s.lastSnapshot.isEmpty ? "-" : s.lastSnapshot) (sequence \(s.lastSnapshotSequence), \(age))")
        print("disk: \(s.diskFreeBytes / 1_000_000) MB free\(s.writesRefused.isEmpty ? "" : "; WRITES REFUSED: \(s.writesRefused)")")
        print("limits: \(s.callsInFlightLimit == 0 ? "no" : String(s.callsInFlightLimit)) calls in flight, \(s.callsPerSecondLimit == 0 ? "no limit on calls" : String(format: "%.0f calls", s.callsPerSecondLimit)) per second")
        print("DATE        INQUIRIES  CODES  WRITES  REFUSALS  PROVISIONS")
        for d in s.days { print("\(d.date)  \(d.inquiries)  \(d.codesIssued)  \(d.writes)  \(d.refusals)  \(d.provisions)") }
    }
}

struct ReloadPolicy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload-policy", abstract: "chukan.v1.Admin/ReloadPolicy: read the policy file again (platform operator).")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let client = try await connection.connect()
        let r = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Admin", method: "ReloadPolicy", request: ReloadPolicyRequest(), as: ReloadPolicyResponse.self, metadata: connection.metadata, timeout: connection.duration)
        }
        print("policy reloaded: \(r.principals) principals")
    }
}

/// People as a table, or JSON; the 個人番号 shows only where the server sent it.
func printPeople(_ people: [PersonView], total: Int, next: String, json: Bool) {
    func date(_ d: CalendarDate?) -> String { d.map { String(format: "%04d-%02d-%02d", $0.year, $0.month, $0.day) } ?? "" }
    if json {
        printJSON(["total": total, "next_page_token": next, "people": people.map { v -> [String: Any] in
            let r = v.resident
            return ["integrated_atena_number": v.integratedAtenaNumber, "removed": v.removed, "atena_number": r?.atenaNumber ?? "",
                    "kana": r?.name?.kana ?? "", "name": r?.name?.kanji?.text ?? "", "birth_date": date(r?.birthDate),
                    "household_number": r?.householdNumber ?? "", "address": r?.address?.address?.text ?? "", "kojin_bango": r?.kojinBango ?? ""]
        }])
        return
    }
    for v in people {
        let r = v.resident
        let number = (r?.kojinBango ?? "").isEmpty ? "(個人番号 masked)" : r!.kojinBango
        print("\(v.integratedAtenaNumber)\(v.removed ? " [除票]" : "")  \(r?.name?.kanji?.text ?? "") (\(r?.name?.kana ?? ""))  \(date(r?.birthDate))  世帯 \(r?.householdNumber ?? "")  \(r?.address?.address?.text ?? "")  \(number)")
    }
    print("\(people.count) shown of \(total)\(next.isEmpty ? "" : "; next page: --page \(next)")")
}

/// The replica export for reconciliation: a registrar asks, an approver approves (or
/// refuses), the registrar takes it once within 24 hours.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "chukan.v1.Register export of the replica: --request, --approve/--refuse (approver), or take an approved export into a file.",
        discussion: "The file holds one JSON object per person (the whole record, 個人番号 included): keep it as you would the register.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
    @Option(help: "Ask for an export, saying why.") var request: String?
    @Option(help: "Approve this export id (approver; not the requester).") var approve: String?
    @Option(help: "Refuse this export id (approver).") var refuse: String?
    @Option(help: "Take this approved export id.") var take: String?
    @Option(help: "Where to write the records taken (JSON lines); created, never overwritten.") var out: String?

    func validate() throws {
        guard [request, approve, refuse, take].compactMap({ $0 }).count == 1 else { throw ValidationError("give one of --request, --approve, --refuse, --take") }
        if take != nil && out == nil { throw ValidationError("--take needs --out FILE") }
    }

    func run() async throws {
        var r = ExportRequest()
        r.tenant = tenant
        let client = try await connection.connect()
        if let take, let out {
            r.exportId = take
            return try await takeExport(r, to: out, client: client)
        }
        let method: String
        if let purpose = request {
            r.purpose = purpose
            method = "RequestExport"
        } else {
            r.exportId = approve ?? refuse!
            r.refuse = refuse != nil
            method = "ApproveExport"
        }
        let t = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Register", method: method, request: r, as: ExportTicket.self, metadata: connection.metadata, timeout: connection.duration)
        }
        print("export \(t.exportId): \(t.state) (requested by \(t.requestedBy)\(t.approvedBy.isEmpty ? "" : ", decided by \(t.approvedBy)"))")
    }

    /// `--take`: the records go into a file of their own, created new and 0600 from the
    /// first byte, and named `out` only once whole and synced: a refused, broken, stalled
    /// or interrupted export leaves no file of personal data that looks complete.
    private func takeExport(_ request: ExportRequest, to out: String, client: RPCClient) async throws {
        guard !FileManager.default.fileExists(atPath: out) else { throw ValidationError("\(out) exists; choose a new file") }
        let fs = PosixFileSystem()
        let partial = "\(out).partial-\(getpid())"
        let fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreIOError("create", partial, errno: errno) }
        let file = FileHandle(fileDescriptor: fd, closeOnDealloc: true)  // Sendable: the reading task writes it
        let interrupted = PartialFileOnInterrupt(path: partial)
        defer { interrupted.cancel() }  // once more is harmless
        // --timeout bounds the wait for each chunk, not the whole export (a million
        // records take longer than any one call's deadline should be).
        let lastChunk = Stamp()
        let idleLimit = connection.duration
        let metadata = connection.metadata
        let count: Int
        do {
            let (taken, total) = try await runCall(closing: client) {
                try await withThrowingTaskGroup(of: (Int, UInt64)?.self) { group in
                    group.addTask {
                        while true {
                            try await Task.sleep(for: .milliseconds(200))
                            if lastChunk.age > idleLimit { throw RPCError.deadlineExceeded("export: no records for \(idleLimit) (--timeout)") }
                        }
                    }
                    group.addTask {
                        var count = 0
                        var total: UInt64 = 0
                        for try await chunk in client.serverStreaming(service: "chukan.v1.Register", method: "Export", request: request, as: ExportChunk.self, metadata: metadata) {
                            lastChunk.touch()
                            total = chunk.total
                            for p in chunk.people {
                                let line: [String: Any] = ["integrated_atena_number": p.integratedAtenaNumber, "removed": p.removed,
                                                           "record_base64": Data(p.resident?.encodedBytes ?? []).base64EncodedString()]
                                // Throws on a full or failing disk (FileHandle.write(_:) would trap).
                                try file.write(contentsOf: try JSONSerialization.data(withJSONObject: line) + Data("\n".utf8))
                                count += 1
                                if count % 100_000 == 0 { FileHandle.standardError.write(Data("export: \(count) of \(total) records\n".utf8)) }
                            }
                        }
                        return (count, total)
                    }
                    // The stream's end (or failure) decides; the watchdog only fails.
                    let done = try await group.next() ?? nil
                    group.cancelAll()
                    return done ?? (0, 0)
                }
            }
            guard UInt64(taken) == total else {
                throw ValidationError("export: the stream ended after \(taken) of \(total) records")
            }
            count = taken
            try file.synchronize()
        } catch {
            // Refused, broken, stalled or short: leave no partial file of personal data behind.
            try? fs.remove(partial)
            throw error
        }
        // Whole and synced: from here an interruption leaves the file, and a failure to
        // give it its name keeps it (the export was taken once, and is not taken again).
        guard interrupted.markWhole() else { while true { pause() } }  // a signal is ending the process
        guard link(partial, out) == 0 else {
            let why = String(cString: strerror(errno))
            interrupted.cancel()
            FileHandle.standardError.write(Data("chukanctl: export: all \(count) records are in \(partial), but it could not be named \(out) (\(why)); rename it yourself — the export cannot be taken again\n".utf8))
            throw ExitCode(3)
        }
        try? fs.remove(partial)
        interrupted.cancel()
        // The folder too, so that the new name survives a crash.
        let folder = (out as NSString).deletingLastPathComponent
        try? fs.syncDirectory(folder.isEmpty ? "." : folder)
        print("export: \(count) records written to \(out) (chukan.v1.Resident, base64)")
    }
}

/// The resident system's bulk load through the running server: a client stream of 記載
/// (chukan.v1.Register/Import) read from a resident file (chukanctl data generate's format).
struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "chukan.v1.Register/Import: stream a resident file's records to the running server (registrar); prints what was refused and why.",
        discussion: "The offline path, into a stopped tenant's data directory, is 'chukanctl data import'.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
    @Argument(help: "Resident file (chukanctl data generate --out).") var file: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        var reader = try ResidentFile.Reader(path: file)
        let client = try await connection.connect()
        let progress = Progress("import (bytes sent)", total: reader.size, enabled: !json)
        var malformed = 0
        let summary = try await runCall(closing: client) {
            let call = try await client.clientStreaming(
                service: "chukan.v1.Register", method: "Import", sending: WriteRequest.self, receiving: ImportSummary.self,
                metadata: connection.metadata)
            while let next = reader.next() {
                guard case let .success(r) = next else { malformed += 1; continue }
                var e = RegisterEvent()
                e.kind = .record
                e.reason = r.recordReason == .reasonUnspecified ? .tennyu : r.recordReason
                // A 除票 keeps its removal: the server records it, then removes it.
                e.resident = r
                e.eventDate = r.recordedOn
                var w = WriteRequest()
                w.tenant = tenant
                w.event = e
                try await call.send(w)
                if reader.index % 1000 == 0 { progress.advance(to: reader.position) }
            }
            return try await call.finish()
        }
        progress.finish()
        if json {
            printJSON(["accepted": Int(summary.accepted), "rejected": Int(summary.rejected), "malformed_in_file": malformed,
                       "rejections": summary.rejections, "last_sequence": Int(summary.lastSequence)])
        } else {
            print("import: \(summary.accepted) accepted, \(summary.rejected) refused by the server, \(malformed) malformed in the file; last sequence \(summary.lastSequence)")
            for r in summary.rejections { print("  \(r)") }
        }
        // Records the server refused for their content are the answer; a damaged file is not.
        if malformed > 0 {
            FileHandle.standardError.write(Data("chukanctl: \(malformed) record(s) of \(file) could not be read; the import is incomplete\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// While an export is written: Ctrl-C or SIGTERM removes its partial file before the
/// process ends (it holds personal data), instead of leaving it behind; once the file is
/// whole, the same signals leave it and say where it is. One atomic state decides, so a
/// signal and the main path never both act on the file.
final class PartialFileOnInterrupt: @unchecked Sendable {
    typealias Handler = @convention(c) (Int32) -> Void
    private static let writing = 0, whole = 1, finished = 2
    private let state = Atomic<Int>(0)
    private var sources: [(signal: Int32, source: DispatchSourceSignal, previous: Handler?)] = []

    init(path: String) {
        let cPath = strdup(path)
        for sig in [SIGINT, SIGTERM] {
            let previous = signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self] in  // the cycle ends at cancel(), which drops the sources
                let note: String
                if self.state.compareExchange(expected: Self.writing, desired: Self.finished, ordering: .acquiringAndReleasing).exchanged {
                    if let cPath { unlink(cPath) }
                    note = "chukanctl: interrupted; the partial export was removed\n"
                } else if self.state.load(ordering: .acquiring) == Self.whole {
                    note = "chukanctl: interrupted; the whole export is in \(path), not yet under its name\n"
                } else {
                    return  // finished: the main path has the file named
                }
                _ = note.withCString { write(STDERR_FILENO, $0, strlen($0)) }
                _exit(128 + sig)  // at once: other tasks may still be writing the file
            }
            source.resume()
            sources.append((sig, source, previous))
        }
    }

    /// The file is whole and synced: a signal from now on keeps it. False when a signal
    /// already removed it (the process is ending).
    func markWhole() -> Bool {
        state.compareExchange(expected: Self.writing, desired: Self.whole, ordering: .acquiringAndReleasing).exchanged
    }

    /// Stops watching; the signals get back what they had before.
    func cancel() {
        state.store(Self.finished, ordering: .releasing)
        for (sig, source, previous) in sources {
            source.cancel()
            signal(sig, previous)
        }
        sources.removeAll()
    }
}

/// When something last happened (a chunk arrived), read by a watchdog on another task.
final class Stamp: Sendable {
    private let nanos = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)
    func touch() { nanos.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed) }
    var age: Duration {
        let then = nanos.load(ordering: .relaxed)  // read first: a touch after it only makes the age negative
        return .nanoseconds(max(0, Int64(bitPattern: DispatchTime.now().uptimeNanoseconds &- then)))
    }
}

/// A lookup key as given, or read from standard input when given as `-`: a 個人番号 on
/// the command line shows in `ps` and the shell's history.
func keyFromArgumentOrStdin(_ key: String) throws -> String {
    guard key == "-" else { return key }
    guard let line = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces), !line.isEmpty else {
        throw ValidationError("no key on standard input")
    }
    return line
}
