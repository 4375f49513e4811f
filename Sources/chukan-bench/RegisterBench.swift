import ArgumentParser
import ChukanProto
import ChukanRegister
import ChukanStore
import Foundation
import Histogram
import Synchronization

/// The register's figures: generate, memory per resident, snapshot write and load,
/// durable writes with group commit, lookups, 4情報 search, lookups during a snapshot.
/// Also writes the residents as Redis commands, for the side-by-side load in
/// Benchmarks/run-register.sh.
struct RegisterBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register",
        abstract: "Benchmark the register: N synthetic residents in one tenant (release build).")

    @Option(help: "Residents in the tenant.") var residents = 1_000_000
    @Option(help: "Durable writes for the WAL figure.") var writes = 200_000
    @Option(help: "Concurrent writers for the WAL figure.") var writers = 64
    @Option(help: "Work directory (data, keys, snapshot).") var dir = "Benchmarks/out/register"
    @Option(help: "Also write the residents as Redis protocol (one hash per resident) to this file.") var redisOut: String?
    @Flag(help: "Measure only the durable writes (to profile the write path).") var writesOnly = false
    @Flag(help: "With --writes-only: skip the log-alone figure (to profile the register's writes alone).") var skipLogAlone = false
    @Flag(help: "Print one JSON object.") var json = false

    func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

    func run() async throws {
        var results: [String: Any] = ["residents": residents]
        try? FileManager.default.removeItem(atPath: dir)
        let fs = PosixFileSystem()
        try fs.createDirectory(dir)

        // fdatasync latency of this disk: group commit rests on it.
        let syncHistogram = try measureFdatasync(path: "\(dir)/sync-probe", rounds: 200)
        results["fdatasync_p50_us"] = syncHistogram.valueAtPercentile(50)
        results["fdatasync_p99_us"] = syncHistogram.valueAtPercentile(99)
        log("fdatasync p50 \(syncHistogram.valueAtPercentile(50)) µs, p99 \(syncHistogram.valueAtPercentile(99)) µs")

        var t = Date()
        if writesOnly {
            let people = residentsToRecord(writes)
            let keyDir = "\(dir)/keys"
            try TenantKeyRing.addVersion(tenant: "012041", directory: keyDir)
            let ring = try TenantKeyRing.load(tenant: "012041", directory: keyDir)
            if !skipLogAlone {
                let alone = try await logThroughput(people: people, ring: ring)
                log("log alone: \(alone.rate) appends/s, ack p50 \(alone.histogram.valueAtPercentile(50)) µs, p99 \(alone.histogram.valueAtPercentile(99)) µs, \(alone.recordsPerSync) records per fdatasync")
            }
            let wal = try await walThroughput(people: people, ring: ring)
            log("WAL: \(wal.rate) writes/s, ack p50 \(wal.histogram.valueAtPercentile(50)) µs, p99 \(wal.histogram.valueAtPercentile(99)) µs, \(wal.recordsPerSync) records per fdatasync")
            return
        }
        let people = residentsToRecord(residents)
        results["generate_s"] = Date().timeIntervalSince(t)
        log("generated \(residents) in \(results["generate_s"]!) s")

        if let redisOut { try writeRedisCommands(people, to: redisOut) }

        // Build the register in memory (no log) and measure what it costs.
        let rssBefore = residentBytes()
        t = Date()
        var state = RegisterState(tenant: "012041")
        for (i, r) in people.enumerated() { try state.apply(Self.record(r), sequence: UInt64(i + 1)) }
        results["build_s"] = Date().timeIntervalSince(t)
        let rssAfter = residentBytes()
        let recordBytes = state.persons.reduce(0) { $0 + $1.value.record.count }
        results["ram_bytes_per_resident"] = Double(rssAfter - rssBefore) / Double(residents)
        results["record_bytes_per_resident"] = Double(recordBytes) / Double(residents)
        log("built in \(results["build_s"]!) s; RSS +\((rssAfter - rssBefore) / 1_000_000) MB = \(results["ram_bytes_per_resident"]!) B/resident")

        // Snapshot write and load.
        let keyDir = "\(dir)/keys"
        try TenantKeyRing.addVersion(tenant: "012041", directory: keyDir)
        let ring = try TenantKeyRing.load(tenant: "012041", directory: keyDir)
        t = Date()
        let info = try Snapshots.write(state, directory: "\(dir)/snapshots", keyRing: ring)
        let writeSeconds = Date().timeIntervalSince(t)
        results["snapshot_write_s"] = writeSeconds
        results["snapshot_bytes"] = info.size
        results["snapshot_mb_per_s"] = Double(info.size) / 1e6 / writeSeconds
        log("snapshot \(info.size / 1_000_000) MB in \(writeSeconds) s")
        t = Date()
        let loaded = try Snapshots.load(path: info.path, keyRing: ring)
        results["snapshot_load_s"] = Date().timeIntervalSince(t)
        guard loaded.count == state.count else { throw ValidationError("snapshot lost records") }
        log("snapshot load with index rebuild \(results["snapshot_load_s"]!) s")

        // Point lookups and search, by keys as a request would carry them (strings).
        var rng = SplitMix64(seed: 9)
        let probes = (0..<200_000).map { _ in people[Int(rng.next(UInt64(people.count)))] }
        func nsPerOp<Key>(_ keys: [Key], _ body: (Key) -> Bool) -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            var hits = 0
            for k in keys where body(k) { hits += 1 }
            precondition(hits == keys.count, "a lookup missed")
            return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(keys.count)
        }
        // Each lookup hands out what it found — the person's entry, retained, as a caller gets
        // it; a household lookup every member's — so the entry's own cache line is counted.
        results["lookup_ns_integrated"] = nsPerOp(probes.map(\.integratedAtenaNumber)) { state.person($0).map(keep) ?? false }
        results["lookup_ns_atena"] = nsPerOp(probes.map(\.atenaNumber)) { state.byAtena($0).map(keep) ?? false }
        results["lookup_ns_juminhyo"] = nsPerOp(probes.map(\.juminhyoCode)) { state.byJuminhyo($0).map(keep) ?? false }
        results["lookup_ns_kojin_bango"] = nsPerOp(probes.map(\.kojinBango)) { state.byKojinBango($0).map(keep) ?? false }
        /// A household lookup hands out every member's entry.
        func household(_ state: RegisterState) -> (String) -> Bool {
            { key in
                let members = state.household(key)
                var handedOut = !members.isEmpty
                for m in members { handedOut = keep(m.entry) && handedOut }
                return handedOut
            }
        }
        results["lookup_ns_household"] = nsPerOp(probes.map(\.householdNumber), household(state))
        // The same lookups on the loaded snapshot, whose tables hold everything (no
        // changes pending beside them, as after a restart).
        results["loaded_lookup_ns_integrated"] = nsPerOp(probes.map(\.integratedAtenaNumber)) { loaded.person($0).map(keep) ?? false }
        results["loaded_lookup_ns_atena"] = nsPerOp(probes.map(\.atenaNumber)) { loaded.byAtena($0).map(keep) ?? false }
        results["loaded_lookup_ns_kojin_bango"] = nsPerOp(probes.map(\.kojinBango)) { loaded.byKojinBango($0).map(keep) ?? false }
        results["loaded_lookup_ns_household"] = nsPerOp(probes.map(\.householdNumber), household(loaded))
        results["pending_changes_after_build"] = state.persons.pendingChanges
        let byBirth = probes.map { ($0.name!.kana, $0.birthDate!) }
        let byAddress = probes.map { ($0.name!.kana, $0.address!.address!.text) }
        results["search_us_name_birth"] = nsPerOp(byBirth) { !state.search(kana: $0.0, birthDate: $0.1).isEmpty } / 1000
        results["search_us_name_address"] = nsPerOp(byAddress) { !state.search(kana: $0.0, address: $0.1).isEmpty } / 1000
        log("lookups: \(results.filter { $0.key.hasPrefix("lookup") || $0.key.hasPrefix("search") })")

        // Lookup latency while a snapshot is written, against idle.
        let held = state
        let concurrentDir = "\(dir)/snapshots-concurrent"
        let kojin = probes.map(\.kojinBango)
        results["lookup_p99_ns_idle"] = lookupP99(held, kojin, during: nil)
        results["lookup_p99_ns_during_snapshot"] = lookupP99(held, kojin, during: {
            _ = try? Snapshots.write(held, directory: concurrentDir, keyRing: ring)
        })
        log("lookup p99 idle \(results["lookup_p99_ns_idle"]!) ns, during snapshot \(results["lookup_p99_ns_during_snapshot"]!) ns")

        // The log alone (the same events, already encoded), then durable register writes:
        // group commit with concurrent writers.
        for (name, rateKey, measure) in [("log", "log_appends_per_s", logThroughput), ("wal", "wal_writes_per_s", walThroughput)] {
            let m = try await measure(Array(people.prefix(writes)), ring)
            results[rateKey] = m.rate
            results["\(name)_ack_p50_us"] = m.histogram.valueAtPercentile(50)
            results["\(name)_ack_p99_us"] = m.histogram.valueAtPercentile(99)
            results["\(name)_records_per_sync"] = m.recordsPerSync
            log("\(name): \(m.rate) writes/s, ack p99 \(m.histogram.valueAtPercentile(99)) µs, \(m.recordsPerSync) per fdatasync")
        }

        let data = try JSONSerialization.data(withJSONObject: results, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// Synthetic residents, none a 除票, so that each can be recorded (転入).
    func residentsToRecord(_ count: Int) -> [Resident] {
        Array(SyntheticResidents(count: count, seed: 42)).map { r -> Resident in
            var c = r
            c.removalReason = .reasonUnspecified
            c.removedOn = nil
            return c
        }
    }

    func measureFdatasync(path: String, rounds: Int) throws -> Histogram<UInt64> {
        let file = try PosixFileSystem().createNew(path)
        var h = Histogram<UInt64>(highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: .three)
        let block = [UInt8](repeating: 0x42, count: 4096)
        for _ in 0..<rounds {
            try block.withUnsafeBytes { try file.append($0) }
            let start = DispatchTime.now().uptimeNanoseconds
            try file.sync()
            _ = h.record((DispatchTime.now().uptimeNanoseconds - start) / 1000)
        }
        file.close()
        return h
    }

    /// p99 of single lookups, timed in batches of 16 to keep the clock out of the figure.
    func lookupP99(_ state: RegisterState, _ probes: [String], during background: (@Sendable () -> Void)?) -> Double {
        var h = Histogram<UInt64>(highestTrackableValue: 100_000_000, numberOfSignificantValueDigits: .three)
        let done = Atomic<Bool>(false)
        let thread = background.map { work in
            Thread {
                work()
                done.store(true, ordering: .relaxed)
            }
        }
        thread?.start()
        var i = 0
        let deadline = DispatchTime.now().uptimeNanoseconds + 3_000_000_000
        while DispatchTime.now().uptimeNanoseconds < deadline {
            if background != nil && done.load(ordering: .relaxed) { break }
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<16 {
                _ = state.byKojinBango(probes[i % probes.count])
                i += 1
            }
            _ = h.record((DispatchTime.now().uptimeNanoseconds - start) / 16)
        }
        while background != nil && !done.load(ordering: .relaxed) { usleep(10_000) }
        return Double(h.valueAtPercentile(99))
    }

    /// Durable register writes (記載 of each of `people`), driven as `drive` does.
    func walThroughput(people: [Resident], ring: TenantKeyRing) async throws -> (rate: Double, histogram: Histogram<UInt64>, recordsPerSync: Double) {
        let db = try TenantDatabase.open(directory: "\(dir)/tenant", keyRing: ring)
        defer { db.close() }
        let (rate, histogram) = try await drive(people.map(Self.record)) { try await db.apply($0) }
        return (rate, histogram, db.groupCommits.recordsPerSync)
    }

    /// The write-ahead log alone, driven the same way with the same events (encoded
    /// beforehand): what the log and group commit allow, without validating, indexing
    /// or publishing.
    func logThroughput(people: [Resident], ring: TenantKeyRing) async throws -> (rate: Double, histogram: Histogram<UInt64>, recordsPerSync: Double) {
        let (log, _) = try WriteAheadLog.open(directory: "\(dir)/log-alone", keyRing: ring) { _ in }
        defer { log.close() }
        let (rate, histogram) = try await drive(people.map { Self.record($0).encodedBytes }) { _ = try await log.append(type: 1, payload: $0) }
        return (rate, histogram, log.groupCommits.recordsPerSync)
    }

    /// The event that records `resident` (転入).
    static func record(_ resident: Resident) -> RegisterEvent {
        var e = RegisterEvent()
        e.kind = .record
        e.reason = .tennyu
        e.resident = resident
        return e
    }

    /// `writers` loops over `items`, each sending its next item once the last one is
    /// acknowledged (as a client with one call in flight does): the rate and the
    /// acknowledgement latency of all of them.
    func drive<Item: Sendable>(_ items: [Item], _ send: @escaping @Sendable (Item) async throws -> Void) async throws -> (rate: Double, histogram: Histogram<UInt64>) {
        let start = Date()
        let cpuBefore = processCPUSeconds()
        defer {
            // The process's CPU (all threads, user + system) a write: what bounds the rate
            // once the cores are full.
            let cpu = processCPUSeconds() - cpuBefore
            let wall = Date().timeIntervalSince(start)
            log(String(format: "  CPU %.1f µs a write, %.2f of the cores busy", cpu * 1e6 / Double(items.count), cpu / wall))
        }
        let writers = min(self.writers, items.count)
        let histogram = try await withThrowingTaskGroup(of: Histogram<UInt64>.self) { group in
            for w in 0..<writers {
                group.addTask {
                    var h = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                    for i in stride(from: w, to: items.count, by: writers) {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        try await send(items[i])
                        _ = h.record((DispatchTime.now().uptimeNanoseconds - t0) / 1000)
                    }
                    return h
                }
            }
            var all = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            for try await h in group { all.add(h) }
            return all
        }
        return (Double(items.count) / Date().timeIntervalSince(start), histogram)
    }

    /// Redis protocol for `redis-cli --pipe`: one hash per resident with its main items.
    func writeRedisCommands(_ people: [Resident], to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw ValidationError("cannot create \(path)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        var buffer = Data()
        func bulk(_ s: String) {
            let bytes = Data(s.utf8)
            buffer.append(Data("$\(bytes.count)\r\n".utf8))
            buffer.append(bytes)
            buffer.append(Data("\r\n".utf8))
        }
        for r in people {
            let d = { (c: CalendarDate?) in c.map(\.key) ?? "" }
            let fields: [(String, String)] = [
                ("atena_number", r.atenaNumber), ("household_number", r.householdNumber), ("juminhyo_code", r.juminhyoCode),
                ("kojin_bango", r.kojinBango), ("integrated_atena_number", r.integratedAtenaNumber),
                ("name_kana", r.name?.kana ?? ""), ("name_kanji", r.name?.kanji?.text ?? ""), ("birth_date", d(r.birthDate)),
                ("sex", "\(r.sex.rawValue)"), ("relationship", r.relationship), ("postal_code", r.address?.postalCode ?? ""),
                ("address", r.address?.address?.text ?? ""), ("katagaki", r.address?.katagaki?.text ?? ""),
                ("became_resident_on", d(r.becameResidentOn)), ("address_set_on", d(r.addressSetOn)),
                ("record_reason", "\(r.recordReason.rawValue)"), ("recorded_on", d(r.recordedOn)),
                ("nhi", "\(r.nationalHealthInsurance?.status.rawValue ?? 0)"), ("child_allowance", "\(r.childAllowance?.status.rawValue ?? 0)"),
                ("pension", "\(r.nationalPension?.status.rawValue ?? 0)"), ("late_elderly", "\(r.lateElderlyMedical?.status.rawValue ?? 0)"),
                ("long_term_care", "\(r.longTermCare?.status.rawValue ?? 0)"), ("my_number_card", "\(r.myNumberCard.rawValue)"),
                ("terminal", r.processing?.terminal ?? ""), ("staff_number", r.processing?.staffNumber ?? ""),
                ("nationality", r.foreign?.nationality ?? ""), ("residence_card", r.foreign?.residenceCardNumber ?? ""),
            ]
            buffer.append(Data("*\(2 + 2 * fields.count)\r\n".utf8))
            bulk("HSET")
            bulk("resident:\(r.integratedAtenaNumber)")
            for (k, v) in fields {
                bulk(k)
                bulk(v)
            }
            if buffer.count > 1 << 20 {
                handle.write(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        handle.write(buffer)
        try handle.close()
    }

    func residentBytes() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let pages = s.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// Takes an entry where the optimiser cannot see that it is unused.
/// User and system CPU time of the whole process so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

@inline(never) private func keep(_ entry: PersonEntry) -> Bool { withExtendedLifetime(entry) { true } }
