import ArgumentParser
import ChukanRegister
import ChukanProto
import ChukanService
import ChukanStore
import Foundation

struct TenantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant",
        abstract: "Add, list and remove tenants (municipalities) of a data directory (offline).",
        subcommands: [Add.self, List.self, Remove.self, CodeKey.self])

    struct CodeKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "code-key",
            abstract: "Make the tenant's 符号 key (<tenant>.code.key) if it has none; never replaces one.",
            discussion: "Tenants added by this version get one at 'tenant add'. A lost key must be restored from backup: a new key gives every person a new 符号.")
        @OptionGroup var store: StoreOptions

        func run() throws {
            if FileManager.default.fileExists(atPath: "\(store.keys)/\(store.tenant).code.key") {
                _ = try TenantKeyRing.codeKey(tenant: store.tenant, directory: store.keys)
                print("tenant: \(store.tenant) already has a 符号 key; left as it is")
            } else {
                _ = try TenantKeyRing.codeKey(tenant: store.tenant, directory: store.keys, create: true)
                print("tenant: made the 符号 key \(store.keys)/\(store.tenant).code.key (back it up with the data keys)")
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a tenant's data folder and, if it has none, its first key.",
            discussion: "Also makes the platform audit stream's key (000000.v1.key) when the keys folder has none, so that a server whose keys folder is read-only can start.")
        @OptionGroup var store: StoreOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            guard !FileManager.default.fileExists(atPath: store.tenantDirectory) else {
                throw ValidationError("tenant \(store.tenant) already exists in \(store.data)")
            }
            // Keys first: a key that does not load (mode 0644, say) leaves no folder behind that
            // would make the next try, after the fix, refuse with "already exists".
            // An existing key (even one that does not load) is never replaced.
            let version: UInt32
            if TenantKeyRing.hasAnyKey(tenant: store.tenant, directory: store.keys) {
                version = try store.keyRing().currentVersion
            } else {
                version = try TenantKeyRing.addVersion(tenant: store.tenant, directory: store.keys)
            }
            // The 符号 key: made once, never rotated (a new one would change every 符号).
            _ = try TenantKeyRing.codeKey(tenant: store.tenant, directory: store.keys, create: true)
            // The platform audit stream's key, which the server would otherwise make at its first start.
            if !TenantKeyRing.hasAnyKey(tenant: AuditTrail.platformStream, directory: store.keys) {
                try TenantKeyRing.addVersion(tenant: AuditTrail.platformStream, directory: store.keys)
                if !json { print("tenant: made the platform audit key \(store.keys)/\(AuditTrail.platformStream).v1.key") }
            }
            try PosixFileSystem().createDirectory(store.tenantDirectory)
            if json { printJSON(["tenant": store.tenant, "key_version": Int(version)]) } else {
                print("tenant: added \(store.tenant) (data \(store.tenantDirectory), key version \(version) in \(store.keys))")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants with their newest snapshot and log size.")
        @Option(help: "Data directory.") var data = "demo/data"
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: data)) ?? []).filter { Identifiers.localGovernmentCodeProblem($0) == nil }.sorted()
            var rows: [[String: Any]] = []
            for t in names {
                let snaps = Snapshots.list(directory: "\(data)/\(t)/snapshots")
                let newest = snaps.first.flatMap { try? Snapshots.verify(path: $0) }
                let damaged = !snaps.isEmpty && newest == nil  // said so, not shown as an empty tenant
                let wal = ((try? FileManager.default.contentsOfDirectory(atPath: "\(data)/\(t)/wal")) ?? []).filter { $0.hasSuffix(".wal") }
                let walBytes = wal.compactMap { try? FileManager.default.attributesOfItem(atPath: "\(data)/\(t)/wal/\($0)")[.size] as? Int }.reduce(0, +)
                rows.append(["tenant": t, "snapshots": snaps.count, "records_in_newest_snapshot": Int(newest?.header.recordCount ?? 0),
                             "snapshot_sequence": Int(newest?.header.sequence ?? 0), "wal_segments": wal.count, "wal_bytes": walBytes,
                             "newest_snapshot_damaged": damaged])
            }
            if json { printJSON(["tenants": rows]); return }
            print("TENANT  SNAPSHOTS  RECORDS(NEWEST)  SEQUENCE  WAL-SEGMENTS  WAL-BYTES")
            for r in rows {
                print(String(format: "%@  %9d  %15d  %8d  %12d  %9d", r["tenant"] as! String, r["snapshots"] as! Int, r["records_in_newest_snapshot"] as! Int,
                             r["snapshot_sequence"] as! Int, r["wal_segments"] as! Int, r["wal_bytes"] as! Int)
                      + (r["newest_snapshot_damaged"] as! Bool ? "  newest snapshot damaged: chukanctl snapshot verify" : ""))
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a tenant. Refuses while it holds records, unless --force, which first writes a final snapshot and keeps it.")
        @OptionGroup var store: StoreOptions
        @Flag(help: "Remove even though records remain (a final snapshot is kept).") var force = false

        func run() async throws {
            let db = try store.open()
            let count = db.current.count
            var kept: String?
            if count > 0 {
                guard force else {
                    db.close()
                    throw ValidationError("tenant \(store.tenant) still holds \(count) records; use --force to remove it (a final snapshot is kept)")
                }
                kept = try db.snapshot().path
            }
            db.close()
            let graveyard = "\(store.data)/.removed"
            try PosixFileSystem().createDirectory(graveyard)
            let stamp = Int(Date().timeIntervalSince1970)
            let target = "\(graveyard)/\(store.tenant)-\(stamp)"
            try FileManager.default.moveItem(atPath: store.tenantDirectory, toPath: target)
            print("tenant: removed \(store.tenant); its files (final snapshot \(kept.map { ($0 as NSString).lastPathComponent } ?? "none")) are in \(target)")
        }
    }
}

struct PurgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Delete 除票 150 years after their 消除年月日, with a tenant administrator's approval.",
        discussion: "--dry-run shows how many are due; --approve deletes them as one logged event. Dates are Asia/Tokyo.")
    @OptionGroup var store: StoreOptions
    @Flag(help: "Show what is due, delete nothing.") var dryRun = false
    @Flag(help: "Delete what is due.") var approve = false
    @Option(help: "Count 'today' as this date (YYYY-MM-DD): any date with --dry-run (a rehearsal), none later than today with --approve.") var today: String?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard dryRun != approve else { throw ValidationError("give exactly one of --dry-run and --approve") }
        // A date ahead of today would delete 除票 still within their retention.
        let (y, m, d) = try tokyoToday(today), (ty, tm, td) = try tokyoToday(nil)
        if approve && ChukanProto.CalendarDate(y, m, d).key > ChukanProto.CalendarDate(ty, tm, td).key {
            throw ValidationError("--today \(today ?? ""): --approve takes no date later than today (Asia/Tokyo); --dry-run rehearses any date")
        }
    }

    func run() async throws {
        let (y, m, d) = try tokyoToday(today)
        let date = ChukanProto.CalendarDate(y, m, d)
        let db = try store.open()
        defer { db.close() }
        let due = db.purgeDue(today: date).count
        if dryRun {
            if json { printJSON(["due": due, "today": date.key]) } else { print("purge: \(due) 除票 due on \(date.key) (nothing deleted; --approve deletes them)") }
            return
        }
        let n = try await db.purge(today: date)
        if json { printJSON(["purged": n, "today": date.key]) } else { print("purge: deleted \(n) 除票 and their history") }
    }
}
