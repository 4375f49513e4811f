import ArgumentParser
import CChukanFiles
import ChukanProto
import ChukanStore
import Foundation

struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Create, list, verify, inspect, restore and prune snapshots (offline, on a data directory).",
        subcommands: [Create.self, List.self, Verify.self, Inspect.self, Restore.self, Prune.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a snapshot now: through a running server's chukan.v1.Admin (--online), or offline on the data directory.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Ask the running server (--server) to write it; writes go on meanwhile.") var online = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            if online {
                let client = try await connection.connect()
                var request = TenantRequest()
                request.tenant = store.tenant
                let r = try await runCall(closing: client) {
                    try await client.unary(service: "chukan.v1.Admin", method: "CreateSnapshot", request: request, as: SnapshotResponse.self, metadata: connection.metadata, timeout: max(connection.duration, .seconds(3600)))
                }
                if json {
                    printJSON(["path": r.path, "sequence": Int(r.sequence), "records": Int(r.records), "bytes": Int(r.bytes), "seconds": r.seconds])
                } else {
                    print(String(format: "snapshot: %@ — %d records at sequence %d, %.1f MB in %.2f s (written by the server)",
                                 r.path, Int(r.records), Int(r.sequence), Double(r.bytes) / 1e6, r.seconds))
                }
                return
            }
            let db = try store.open()
            defer { db.close() }
            let started = Date()
            let info = try db.snapshot()
            let seconds = Date().timeIntervalSince(started)
            if json {
                printJSON(["path": info.path, "sequence": Int(info.header.sequence), "records": Int(info.header.recordCount), "bytes": info.size, "seconds": seconds])
            } else {
                print(String(format: "snapshot: %@ — %d records at sequence %d, %.1f MB in %.2f s",
                             info.path, Int(info.header.recordCount), Int(info.header.sequence), Double(info.size) / 1e6, seconds))
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a tenant's snapshots, newest first, with sequence, records, size and age.")
        @OptionGroup var store: StoreOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            var rows: [[String: Any]] = []
            for path in Snapshots.list(directory: "\(store.tenantDirectory)/snapshots") {
                do {
                    let i = try Snapshots.verify(path: path)
                    rows.append(["path": path, "sequence": Int(i.header.sequence), "records": Int(i.header.recordCount), "bytes": i.size,
                                 "age_s": Int(Date().timeIntervalSince1970) - Int(i.header.createdAt), "key_version": Int(i.header.keyVersion), "ok": true])
                } catch {
                    rows.append(["path": path, "ok": false, "error": "\(error)"])
                }
            }
            if json { printJSON(["snapshots": rows]); return }
            if rows.isEmpty { print("snapshot: none in \(store.tenantDirectory)/snapshots") }
            for r in rows {
                if r["ok"] as! Bool {
                    print(String(format: "%@  seq %d  %d records  %.1f MB  %@ old", (r["path"] as! NSString).lastPathComponent, r["sequence"] as! Int,
                                 r["records"] as! Int, Double(r["bytes"] as! Int) / 1e6, age(r["age_s"] as! Int)))
                } else {
                    print("\((r["path"] as! NSString).lastPathComponent)  DAMAGED: \(r["error"] as! String)")
                }
            }
        }

        func age(_ s: Int) -> String { s < 120 ? "\(s)s" : s < 7200 ? "\(s / 60)m" : s < 172_800 ? "\(s / 3600)h" : "\(s / 86400)d" }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a snapshot's checksums without the key; with --with-key also decrypt it and rebuild its indexes.")
        @Argument(help: "Snapshot file.") var file: String
        @Flag(name: .customLong("with-key"), help: "Also decrypt with the tenant's key (needs --keys).") var withKey = false
        @Option(help: "Key directory (for --with-key).") var keys = "demo/keys"
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let info = try Snapshots.verify(path: file)
            var decrypted = false
            if withKey {
                let ring = try TenantKeyRing.load(tenant: info.header.tenant, directory: keys)
                let state = try Snapshots.load(path: file, keyRing: ring)
                guard try state.indexesAreConsistent() else { throw ValidationError("\(file): indexes do not rebuild consistently") }
                decrypted = true
            }
            if json {
                printJSON(["path": file, "checksums": "ok", "decrypted": decrypted, "records": Int(info.header.recordCount)])
            } else {
                print("snapshot: \(file): checksums ok\(decrypted ? ", decrypts and loads" : " (not decrypted: no key used)"), \(info.header.recordCount) records")
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a snapshot's header and counts (never any personal data).")
        @Argument(help: "Snapshot file.") var file: String
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let i = try Snapshots.verify(path: file)
            let h = i.header
            let fields: [String: Any] = [
                "format_version": Int(SnapshotFormat.version), "tenant": h.tenant, "sequence": Int(h.sequence), "records": Int(h.recordCount),
                "created_at": ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(h.createdAt))),
                "key_version": Int(h.keyVersion), "chunks": Int(i.chunks), "bytes": i.size,
            ]
            if json { printJSON(fields); return }
            for k in fields.keys.sorted() { print("\(k): \(fields[k]!)") }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a snapshot the tenant's starting point: its data folder is replaced by the snapshot alone.",
            discussion: "Refuses to overwrite a tenant that has data unless --force; the replaced folder is kept beside it. Fails while a server holds the tenant.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Snapshot file to restore.") var file: String
        @Flag(help: "Replace a tenant that already has data.") var force = false

        func run() throws {
            let info = try Snapshots.verify(path: file)
            guard info.header.tenant == store.tenant else { throw ValidationError("\(file) belongs to tenant \(info.header.tenant), not \(store.tenant)") }
            _ = try Snapshots.load(path: file, keyRing: store.keyRing())  // decrypts: the right key is at hand
            let fm = FileManager.default
            let fs = PosixFileSystem()
            let dir = store.tenantDirectory
            let stamp = Int(Date().timeIntervalSince1970)
            // The tenant's lock is held from the check for data to the swap, so that no
            // server or command opens the tenant in between.
            var lock: DirectoryLock?
            defer { lock?.release() }
            if fm.fileExists(atPath: dir) {
                lock = try DirectoryLock(directory: dir)
                let hasData = !Snapshots.list(directory: "\(dir)/snapshots").isEmpty
                    || !(((try? fm.contentsOfDirectory(atPath: "\(dir)/wal")) ?? []).isEmpty)
                if hasData && !force { throw ValidationError("tenant \(store.tenant) has data; use --force to replace it (the old folder is kept)") }
            }
            // The new folder is made whole beside the old one first — copied, synced,
            // checked — so that a full disk or a crash leaves the tenant as it was, never a
            // truncated snapshot as its only one.
            let staging = "\(dir).restoring-\(stamp)"
            // Marks the copy until it is in place: a folder left under the staging name by a
            // crash then tells which it is (OPERATIONS.md).
            let marker = "RESTORE-COPY"
            let target = "\(staging)/snapshots/\(SnapshotFormat.fileName(sequence: info.header.sequence))"
            do {
                try fs.createDirectory("\(staging)/snapshots")
                let copy = try fs.createNew(target)
                defer { copy.close() }
                try fs.read(file).withUnsafeBytes { try copy.append($0) }
                try copy.sync()
                try fs.syncDirectory("\(staging)/snapshots")
                let note = try fs.createNew("\(staging)/\(marker)")
                defer { note.close() }
                try Array("an unfinished copy made by chukanctl snapshot restore: delete this folder\n".utf8).withUnsafeBytes { try note.append($0) }
                try fs.syncDirectory(staging)
                let written = try Snapshots.verify(path: target)  // what was copied is the snapshot checked above
                guard written.header == info.header, written.size == info.size else { throw ValidationError("the copy differs from \(file)") }
            } catch {
                try? fm.removeItem(atPath: staging)
                throw ValidationError("snapshot restore: nothing was changed; the copy failed: \(error)")
            }
            // Then the swap, in one step where the file system can (renameat2's exchange):
            // the tenant folder is never missing, not even for a moment a crash or a server
            // start could fall into. The old folder, now under the staging name, is moved
            // aside after.
            var kept: String?
            if fm.fileExists(atPath: dir) {
                kept = "\(dir).replaced-\(stamp)"
                if chukan_rename_exchange(staging, dir) == 0 {
                    try? fs.remove("\(dir)/\(marker)")
                    do { try fs.rename(staging, kept!) } catch {
                        kept = staging  // restored; the previous data stays under the staging name
                    }
                } else if errno == EINVAL || errno == ENOSYS {
                    // No exchange here (NFS, some file systems, a seccomp profile): two
                    // renames, with the folder missing between them for a moment.
                    try fs.rename(dir, kept!)
                    do { try fs.rename(staging, dir) } catch {
                        try? fs.rename(kept!, dir)
                        try? fm.removeItem(atPath: staging)
                        throw ValidationError("snapshot restore: nothing was changed; the new folder could not be put in place: \(error)")
                    }
                    try? fs.remove("\(dir)/\(marker)")
                } else {
                    let why = String(cString: strerror(errno))
                    try? fm.removeItem(atPath: staging)
                    throw ValidationError("snapshot restore: nothing was changed; the new folder could not be swapped in: \(why)")
                }
            } else {
                do { try fs.rename(staging, dir) } catch {
                    try? fm.removeItem(atPath: staging)
                    throw ValidationError("snapshot restore: nothing was changed; the new folder could not be put in place: \(error)")
                }
                try? fs.remove("\(dir)/\(marker)")
            }
            do { try fs.syncDirectory(store.data) } catch {
                throw ValidationError("snapshot restore: restored, but \(store.data) could not be synced (\(error)); \(kept.map { "the previous data is in \($0)" } ?? "there was no previous data")")
            }
            print("snapshot: restored \(store.tenant) to sequence \(info.header.sequence) (\(info.header.recordCount) records)\(kept.map { "; previous data kept in \($0)" } ?? "")")
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Keep the newest N snapshots and the log back to the oldest of them.")
        @OptionGroup var store: StoreOptions
        @Option(help: "Snapshots to keep.") var keep = 3

        func run() throws {
            guard keep >= 1 else { throw ValidationError("--keep must be at least 1") }
            guard FileManager.default.fileExists(atPath: store.tenantDirectory) else {
                throw ValidationError("no tenant \(store.tenant) in \(store.data)")
            }
            var options = TenantDatabase.Options()
            options.keepSnapshots = keep
            let db = try TenantDatabase.open(directory: store.tenantDirectory, keyRing: store.keyRing(), options: options)
            defer { db.close() }
            let before = Snapshots.list(directory: db.snapshotDirectory).count
            try db.prune()
            print("snapshot: kept \(min(before, keep)) of \(before) snapshots")
        }
    }
}
