import ChukanCore
import ChukanProto
import ChukanRegister
import ChukanStore
import Foundation
import Testing

struct DatabaseFixture {
    let dir = NSTemporaryDirectory() + "chukan-db-\(UUID().uuidString)"
    let keys: TenantKeyRing
    let people: [Resident]

    init(people count: Int = 300) throws {
        let keyDir = dir + "-keys"
        try TenantKeyRing.addVersion(tenant: "012041", directory: keyDir)
        keys = try TenantKeyRing.load(tenant: "012041", directory: keyDir)
        people = Array(SyntheticResidents(count: count, seed: 11)).map {
            var r = $0
            r.removalReason = .reasonUnspecified
            r.removedOn = nil
            return r
        }
    }

    func open(fs: any StoreFileSystem = PosixFileSystem(), keys: TenantKeyRing? = nil) throws -> TenantDatabase {
        try TenantDatabase.open(directory: dir, keyRing: keys ?? self.keys, fs: fs)
    }

    func record(_ r: Resident) -> RegisterEvent {
        var e = RegisterEvent()
        e.kind = .record
        e.reason = .tennyu
        e.resident = r
        return e
    }
}

@Suite struct TenantDatabaseTests {
    @Test func writesSurviveARestart() async throws {
        let f = try DatabaseFixture()
        let db = try f.open()
        try await withThrowingTaskGroup(of: UInt64.self) { group in
            for r in f.people { group.addTask { try await db.apply(f.record(r)) } }
            try await group.waitForAll()
        }
        #expect(db.current.count == 300 && db.current.sequence == 300)
        let before = db.current
        db.close()
        let again = try f.open()
        #expect(again.recovery.replayed == 300 && again.recovery.snapshot == nil)
        let same = again.current == before
        #expect(same, "recovered state differs from the state before the restart")
        again.close()
    }

    @Test func refusedWritesAreNeitherVisibleNorLogged() async throws {
        let f = try DatabaseFixture()
        let db = try f.open()
        try await db.apply(f.record(f.people[0]))
        var bad = f.people[1]
        bad.juminhyoCode = "123"
        await #expect(throws: RPCError.invalidArgument("resident.juminhyo_code: must be 11 digits")) { try await db.apply(f.record(bad)) }
        await #expect(throws: RPCError.self) { try await db.apply(f.record(f.people[0])) }  // already resident
        #expect(db.current.count == 1 && db.current.sequence == 1)
        #expect(try await db.apply(f.record(f.people[2])) == 2)
        db.close()
        let again = try f.open()
        #expect(again.current.count == 2 && again.recovery.wal.lastSequence == 2)
        again.close()
    }

    @Test func snapshotThenLogReplaysToTheLatestState() async throws {
        let f = try DatabaseFixture()
        let db = try f.open()
        for r in f.people.prefix(200) { try await db.apply(f.record(r)) }
        let info = try db.snapshot()
        #expect(info.header.sequence == 200 && info.header.recordCount == 200)
        for r in f.people.dropFirst(200) { try await db.apply(f.record(r)) }
        let before = db.current
        db.close()
        let again = try f.open()
        #expect(again.recovery.snapshotSequence == 200 && again.recovery.replayed == 100)
        let same = again.current == before
        #expect(same, "recovered state differs from the state before the restart")
        #expect(try again.current.indexesAreConsistent())
        again.close()
    }

    /// The register event that saves a held provision in `state`.
    static func hold(_ id: String, _ state: PendingProvisionState, person: Resident, permit: String = "") -> RegisterEvent {
        var p = PendingProvision()
        p.pendingId = id
        p.state = state
        p.permitId = permit
        p.person = person.integratedAtenaNumber
        p.itemGroup = .household
        p.inquirerPublicKey = Array(repeating: 9, count: 32)
        var e = RegisterEvent()
        e.kind = .provisionHold
        e.pending = p
        return e
    }

    /// Held provisions (自動応答不可) are durable state: in the log, and in snapshots.
    @Test func heldProvisionsSurviveASnapshotAndTheLog() async throws {
        let f = try DatabaseFixture(people: 10)
        let db = try f.open()
        for r in f.people { try await db.apply(f.record(r)) }
        func hold(_ id: String, _ state: PendingProvisionState) -> RegisterEvent { Self.hold(id, state, person: f.people[0]) }
        try await db.apply(hold("P1", .held))
        try await db.apply(hold("P2", .held))
        // A decision is final, and only a held provision is decided.
        try await db.apply(hold("P1", .released))
        await #expect(throws: RPCError.self) { try await db.apply(hold("P1", .refused)) }
        await #expect(throws: RPCError.self) { try await db.apply(hold("P3", .released)) }
        await #expect(throws: RPCError.self) { try await db.apply(hold("P2", .held)) }
        _ = try db.snapshot()
        try await db.apply(hold("P2", .refused))
        try await db.apply(hold("P4", .held))
        let before = db.current
        db.close()
        let again = try f.open()
        #expect(again.recovery.snapshotSequence > 0 && again.current.pending == before.pending)
        #expect(again.current.pending.mapValues(\.state) == ["P1": .released, "P2": .refused, "P4": .held])
        again.close()
    }

    /// A hold spends its permit even when the trail never got the hold's record (a crash
    /// between the two): reopened, the tenant has the permit claimed, so a replay of it
    /// cannot make a second hold (and a second answer on release).
    @Test func aHeldProvisionsPermitStaysClaimedWithoutItsRecord() async throws {
        let f = try DatabaseFixture(people: 2)
        let db = try f.open()
        try await db.apply(f.record(f.people[0]))
        try await db.apply(Self.hold("P1", .held, person: f.people[0], permit: "PMT-HELD-1"))
        db.close()
        let again = try f.open()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(!again.audit.permits.claim("PMT-HELD-1", expiresUnixMs: now + 60_000, nowUnixMs: now))
        #expect(again.audit.permits.claim("PMT-OTHER", expiresUnixMs: now + 60_000, nowUnixMs: now))
        again.close()
    }

    @Test func snapshotsAreCheckedWithoutTheKeyAndRefusedWithTheWrongOne() async throws {
        let f = try DatabaseFixture(people: 50)
        let db = try f.open()
        for r in f.people { try await db.apply(f.record(r)) }
        let info = try db.snapshot()
        db.close()
        let verified = try Snapshots.verify(path: info.path)
        #expect(verified.header.recordCount == 50 && verified.chunks == info.chunks)
        // Personal data is not in the file in clear.
        let bytes = try PosixFileSystem().read(info.path)
        #expect(!String(decoding: bytes, as: UTF8.self).contains("旭川"))
        // Wrong key: refused, naming the file.
        let other = try DatabaseFixture()
        #expect(throws: SnapshotError("\(info.path): chunk 0 does not decrypt (wrong key or changed bytes)")) {
            _ = try Snapshots.load(path: info.path, keyRing: other.keys)
        }
        // A changed byte: the checksum says so, without any key.
        var damaged = bytes
        damaged[SnapshotFormat.headerSize + 20] ^= 0x01
        try Data(damaged).write(to: URL(fileURLWithPath: info.path))
        #expect(throws: SnapshotError("\(info.path): checksum mismatch (the file was changed or damaged)")) {
            _ = try Snapshots.verify(path: info.path)
        }
        // Truncated.
        try Data(bytes.prefix(bytes.count - 5)).write(to: URL(fileURLWithPath: info.path))
        #expect(throws: SnapshotError("\(info.path): truncated or damaged (no trailer)")) { _ = try Snapshots.verify(path: info.path) }
    }

    /// The newest snapshot is damaged: recovery falls back to the older one and the log
    /// (kept back to it) brings the state to the latest.
    @Test func recoveryFallsBackToAnOlderSnapshot() async throws {
        let f = try DatabaseFixture()
        let db = try f.open()
        for r in f.people.prefix(100) { try await db.apply(f.record(r)) }
        try db.snapshot()
        for r in f.people.dropFirst(100).prefix(100) { try await db.apply(f.record(r)) }
        let newest = try db.snapshot()
        for r in f.people.dropFirst(200) { try await db.apply(f.record(r)) }
        let before = db.current
        db.close()
        var bytes = try PosixFileSystem().read(newest.path)
        bytes[bytes.count / 2] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: newest.path))
        let again = try f.open()
        #expect(again.recovery.snapshotSequence == 100)
        #expect(again.recovery.skippedSnapshots.count == 1)
        let same = again.current == before
        #expect(same, "recovered state differs from the state before the restart")
        again.close()
    }

    /// Options for the pruning tests: small log segments (several per test), `keep` snapshots.
    static func smallSegments(keeping keep: Int) -> TenantDatabase.Options {
        var options = TenantDatabase.Options()
        options.keepSnapshots = keep
        options.wal.segmentSize = 4096
        return options
    }

    /// A damaged snapshot does not count toward the ones pruning keeps: with one to keep
    /// and the newest damaged, the older sound one and the log after it stay, and the
    /// tenant still comes back whole.
    @Test func pruneKeepsASoundSnapshotBehindADamagedOne() async throws {
        let f = try DatabaseFixture()
        let options = Self.smallSegments(keeping: 1)
        let db = try TenantDatabase.open(directory: f.dir, keyRing: f.keys, options: options)
        for r in f.people.prefix(100) { try await db.apply(f.record(r)) }
        let older = try db.snapshot()
        for r in f.people.dropFirst(100).prefix(100) { try await db.apply(f.record(r)) }
        // Written, not pruned yet: the older one stays until the next prune.
        let newest = try Snapshots.write(db.current, directory: db.snapshotDirectory, keyRing: f.keys)
        let before = db.current
        var bytes = try PosixFileSystem().read(newest.path)
        bytes[bytes.count / 2] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: newest.path))
        try db.prune()
        #expect(Snapshots.list(directory: db.snapshotDirectory) == [newest.path, older.path])
        db.close()
        let again = try TenantDatabase.open(directory: f.dir, keyRing: f.keys, options: options)
        #expect(again.recovery.snapshotSequence == 100)
        let same = again.current == before
        #expect(same, "recovered state differs from the state before the prune")
        // A sound snapshot made now lets the damaged one and the older go.
        try again.snapshot()
        #expect(Snapshots.list(directory: again.snapshotDirectory).count == 1)
        again.close()
    }

    /// A 除票 recorded (as an import from the resident system does) is one event: its 記載
    /// and its 消除 together, so no crash or refusal can leave it a resident. Its removal
    /// is checked first, and the same 除票 again is already there.
    @Test func aRemovedRecordIsRecordedAndRemovedInOneEvent() async throws {
        let f = try DatabaseFixture(people: 3)
        let db = try f.open()
        var gone = f.people[0]
        gone.removalReason = .tennyu  // not a reason for a 消除
        gone.removedOn = CalendarDate(2020, 5, 1)
        await #expect(throws: RPCError.invalidArgument("resident.removal_reason: a 消除 needs 転出, 死亡 or 職権消除")) { try await db.apply(f.record(gone)) }
        gone.removalReason = .shibou
        gone.removedOn = CalendarDate(2020, 5, 0)
        gone.removedOn?.precision = .yearMonth
        await #expect(throws: RPCError.invalidArgument("resident.removed_on: a 除票 needs a full, real date")) { try await db.apply(f.record(gone)) }
        #expect(db.current.count == 0 && db.current.sequence == 0)
        gone.removedOn = CalendarDate(2020, 5, 1)
        #expect(try await db.apply(f.record(gone)) == 1)
        let entry = try #require(db.current.person(gone.integratedAtenaNumber))
        #expect(entry.isRemoved && entry.removedOn == CalendarDate(2020, 5, 1) && entry.history.map(\.kind) == [.record, .remove])
        // The 消除's "before" is the record as it was 記載された, without the removal.
        let before = try Resident(protobuf: try #require(entry.history[1].before))
        #expect(before.removalReason == .reasonUnspecified && before.removedOn == nil && before.kojinBango == gone.kojinBango)
        await #expect(throws: RPCError(.alreadyExists, "the 除票 is already in the register")) { try await db.apply(f.record(gone)) }
        #expect(db.current.sequence == 1)
        // As a current record it is someone moving back in, as before.
        #expect(try await db.apply(f.record(f.people[0])) == 2)
        #expect(db.current.person(gone.integratedAtenaNumber)?.isRemoved == false)
        db.close()
        let again = try f.open()
        #expect(again.current.person(gone.integratedAtenaNumber)?.history.map(\.kind) == [.record, .remove, .record])
        #expect(try again.current.indexesAreConsistent())
        again.close()
    }

    /// A snapshot asked for after the database closed (a call still running while its
    /// tenant is removed) writes nothing: the folder, moved away, is not made again.
    @Test func aClosedDatabaseWritesNoSnapshot() async throws {
        let f = try DatabaseFixture(people: 2)
        let db = try f.open()
        for r in f.people { try await db.apply(f.record(r)) }
        db.close()
        try FileManager.default.moveItem(atPath: f.dir, toPath: f.dir + "-moved")
        #expect(throws: RPCError.unavailable("the tenant's database is closed")) { try db.snapshot() }
        #expect(!FileManager.default.fileExists(atPath: f.dir))
    }

    @Test func wrongKeyRefusesToStartRatherThanStartEmpty() async throws {
        let f = try DatabaseFixture(people: 5)
        let db = try f.open()
        for r in f.people { try await db.apply(f.record(r)) }
        db.close()
        let other = try DatabaseFixture(people: 1)
        #expect(throws: WALError.self) { _ = try f.open(keys: other.keys) }
    }

    @Test func aFailedSyncIsUnavailableAndLeavesNoTrace() async throws {
        let f = try DatabaseFixture(people: 10)
        let faults = FaultyFileSystem()
        let db = try f.open(fs: faults)
        try await db.apply(f.record(f.people[0]))
        faults.failNextSync.store(true, ordering: .relaxed)
        do {
            try await db.apply(f.record(f.people[1]))
            Issue.record("a write whose fdatasync failed was acknowledged")
        } catch let e as RPCError {
            #expect(e.code == .unavailable)
        }
        #expect(db.current.count == 1)
        #expect(try await db.apply(f.record(f.people[1])) == 2)
        #expect(try await db.apply(f.record(f.people[2])) == 3)
        let before = db.current
        db.close()
        let again = try f.open()
        let same = again.current == before
        #expect(same, "recovered state differs from the state before the restart")
        #expect(again.current.count == 3)
        again.close()
    }

    /// A full disk (ENOSPC), a failing disk (EIO on write) and a short write: each refused
    /// write is UNAVAILABLE and never acknowledged, reads go on meanwhile, writes resume
    /// once the fault clears, and after a restart nothing acknowledged is missing and
    /// nothing torn is applied.
    @Test(arguments: ["ENOSPC", "EIO on write", "short write", "EIO on fsync"])
    func writeFaultsRefuseTheWriteAndLoseNothing(_ fault: String) async throws {
        let f = try DatabaseFixture(people: 12)
        let faults = FaultyFileSystem()
        let db = try f.open(fs: faults)
        for r in f.people.prefix(3) { try await db.apply(f.record(r)) }
        switch fault {
        case "ENOSPC": faults.failWrites.store(ENOSPC, ordering: .relaxed)
        case "EIO on write": faults.failWrites.store(EIO, ordering: .relaxed)
        case "short write": faults.shortNextWrite.store(true, ordering: .relaxed)
        default: faults.failNextSync.store(true, ordering: .relaxed)
        }
        // While the fault lasts (one write for the one-shot faults), writes are refused.
        let attempts = faults.failWrites.load(ordering: .relaxed) != 0 ? 3 : 1
        for i in 0..<attempts {
            do {
                try await db.apply(f.record(f.people[3 + i]))
                Issue.record("\(fault): a write the disk refused was acknowledged")
            } catch let e as RPCError {
                #expect(e.code == .unavailable, "\(fault): \(e)")
            }
            // Reads are served from the version in memory all along.
            #expect(db.current.count == 3 && db.current.person(f.people[0].integratedAtenaNumber) != nil)
        }
        faults.failWrites.store(0, ordering: .relaxed)
        // The fault cleared: writes go through again (on a new segment).
        #expect(try await db.apply(f.record(f.people[8])) == 4)
        #expect(try await db.apply(f.record(f.people[9])) == 5)
        let before = db.current
        db.close()
        let again = try f.open()
        #expect(again.current == before, "\(fault): recovered state differs")
        #expect(again.current.count == 5 && again.current.person(f.people[3].integratedAtenaNumber) == nil)
        again.close()
    }

    /// Writes that arrive while a batch is with the log are validated against a state that
    /// includes that batch. When the batch fails they fail too — even one that depends on
    /// it (a 修正 of a person the failed batch added) — and none of them is visible, now or
    /// after a restart.
    @Test func writesStagedBehindAFailedBatchFailWithIt() async throws {
        let f = try DatabaseFixture(people: 10)
        let faults = FaultyFileSystem()
        let db = try f.open(fs: faults)
        try await db.apply(f.record(f.people[0]))
        faults.holdSync.store(true, ordering: .relaxed)
        faults.failNextSync.store(true, ordering: .relaxed)
        var correction = RegisterEvent()
        correction.kind = .correct
        correction.reason = .shusei
        var corrected = f.people[1]
        corrected.relationship = "妻"
        correction.resident = corrected
        let events = [f.record(f.people[1]), f.record(f.people[2]), correction, f.record(f.people[3])]
        let outcomes = await withTaskGroup(of: StatusCode?.self) { group in
            for (i, e) in events.enumerated() {
                group.addTask {
                    do {
                        try await db.apply(e)
                        return nil
                    } catch let error as RPCError {
                        return error.code
                    } catch {
                        return .unknown
                    }
                }
                // The first is with the log (held in its fdatasync); the rest wait behind it.
                if i == 0 { try? await faults.waitUntilHeld() }
            }
            // The other three accepted behind it, validated against a state with the first.
            for _ in 0..<6000 where db.acceptedNotDurable < 4 { try? await Task.sleep(for: .milliseconds(5)) }
            #expect(db.acceptedNotDurable == 4)
            faults.holdSync.store(false, ordering: .relaxed)
            var codes: [StatusCode?] = []
            for await c in group { codes.append(c) }
            return codes
        }
        #expect(outcomes.count == 4 && outcomes.allSatisfy { $0 == .unavailable }, "\(outcomes)")
        #expect(db.current.count == 1)
        // The writer starts again from the durable state: the same records are accepted.
        #expect(try await db.apply(f.record(f.people[1])) == 2)
        db.close()
        let again = try f.open()
        #expect(again.current.count == 2)
        #expect(try again.current.person(f.people[1].integratedAtenaNumber)?.resident() == f.people[1])
        again.close()
    }

    /// Two batches may be with the log. When the second is refused (the log closing) while
    /// the first is still in its fdatasync, the refusal arrives first but is handled after
    /// the first batch's outcome: the first, which does become durable, is acknowledged —
    /// and so is a retry of it waiting on its idempotency key — not reset away as failed.
    @Test func aRefusalOvertakingAnEarlierBatchIsHandledAfterIt() async throws {
        let f = try DatabaseFixture(people: 4)
        let faults = FaultyFileSystem()
        let db = try f.open(fs: faults)
        try await db.apply(f.record(f.people[0]))
        var first = f.record(f.people[1])
        first.idempotencyKey = "K1"
        first.requestDigest = [UInt8](repeating: 1, count: 32)
        faults.holdSync.store(true, ordering: .relaxed)
        async let a = db.write(first)
        try await faults.waitUntilHeld()  // A is in its fdatasync, held
        async let retry = db.write(first)  // waits on A's sequence
        try await Task.sleep(for: .milliseconds(50))
        // The log stops taking appends; A is still held. `close` blocks until the log is done,
        // so it runs on a thread of its own, not one of the few of Swift's pool.
        let closing = Task { await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in Thread { db.close(); done.resume() }.start() } }
        try await Task.sleep(for: .milliseconds(100))
        let b = Task { try await db.write(f.record(f.people[2])) }  // refused at once (the log is closed), answered after A
        try await Task.sleep(for: .milliseconds(100))
        faults.holdSync.store(false, ordering: .relaxed)
        await #expect(throws: RPCError.self) { try await b.value }
        let (ackA, ackRetry) = try await (a, retry)
        #expect(ackA.sequence == 2 && !ackA.replayed)
        #expect(ackRetry.sequence == 2 && ackRetry.replayed)
        await closing.value
        let again = try f.open()
        #expect(again.current.count == 2 && again.current.person(f.people[1].integratedAtenaNumber) != nil)
        again.close()
    }

    /// A snapshot restored alone (no log): writes continue after its sequence.
    @Test func aRestoredSnapshotWithoutItsLogTakesWrites() async throws {
        let f = try DatabaseFixture(people: 30)
        let db = try f.open()
        for r in f.people.prefix(20) { try await db.apply(f.record(r)) }
        try db.snapshot()
        db.close()
        for name in try PosixFileSystem().list(db.walDirectory) { try PosixFileSystem().remove("\(db.walDirectory)/\(name)") }
        let restored = try f.open()
        #expect(restored.current.count == 20)
        #expect(try await restored.apply(f.record(f.people[20])) == 21)
        restored.close()
        let again = try f.open()
        #expect(again.current.count == 21 && again.current.sequence == 21)
        again.close()
    }

    /// A snapshot restored beside an older log (one that ends before it): the log's
    /// segments are set aside, not deleted, and writes continue after the snapshot.
    @Test func aLogThatEndsBeforeTheSnapshotIsSetAside() async throws {
        let f = try DatabaseFixture(people: 30)
        var db = try f.open()
        for r in f.people.prefix(10) { try await db.apply(f.record(r)) }
        db.close()
        let older = NSTemporaryDirectory() + "chukan-older-wal-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: db.walDirectory, toPath: older)
        db = try f.open()
        for r in f.people[10..<20] { try await db.apply(f.record(r)) }
        try db.snapshot()
        db.close()
        try FileManager.default.removeItem(atPath: db.walDirectory)
        try FileManager.default.copyItem(atPath: older, toPath: db.walDirectory)
        let restored = try f.open()
        #expect(restored.current.count == 20)
        let aside = try #require(restored.recovery.wal.setAside)
        #expect(aside.segments >= 1 && aside.folder.hasPrefix(restored.walDirectory + "/superseded-"))
        #expect(try PosixFileSystem().list(aside.folder).filter { $0.hasSuffix(".wal") }.count == aside.segments)
        #expect(try await restored.apply(f.record(f.people[20])) == 21)
        restored.close()
        let again = try f.open()
        #expect(again.current.count == 21 && again.recovery.wal.setAside == nil)
        again.close()
    }

    /// Failures in the middle of many concurrent writes: whatever was acknowledged is
    /// there after a restart, the restart equals what was published, and nothing
    /// validated against a failed write reached the log.
    @Test func failuresUnderConcurrencyKeepLogAndStateConsistent() async throws {
        let f = try DatabaseFixture(people: 1200)
        let faults = FaultyFileSystem()
        let db = try f.open(fs: faults)
        var acknowledged = Set<String>()
        for round in 0..<6 {
            let slice = Array(f.people[(round * 200)..<((round + 1) * 200)])
            let acks = await withTaskGroup(of: String?.self) { group in
                for (i, r) in slice.enumerated() {
                    group.addTask {
                        if i == 60 { faults.failNextSync.store(true, ordering: .relaxed) }
                        return (try? await db.apply(f.record(r))) == nil ? nil : r.integratedAtenaNumber
                    }
                }
                var out: [String] = []
                for await a in group { if let a { out.append(a) } }
                return out
            }
            acknowledged.formUnion(acks)
        }
        let published = db.current
        db.close()
        let again = try f.open()
        let same = again.current == published
        #expect(same, "the restart differs from the last published state")
        #expect(acknowledged.allSatisfy { again.current.person($0) != nil })
        #expect(acknowledged.count == again.current.count)
        again.close()
    }

    @Test func pruneKeepsTheNewestSnapshotsAndTheLogTheyNeed() async throws {
        let f = try DatabaseFixture()
        let options = Self.smallSegments(keeping: 2)
        let db = try TenantDatabase.open(directory: f.dir, keyRing: f.keys, options: options)
        for (i, r) in f.people.enumerated() {
            try await db.apply(f.record(r))
            if i % 60 == 59 { try db.snapshot() }
        }
        db.close()
        let kept = Snapshots.list(directory: db.snapshotDirectory)
        #expect(kept.count == 2)
        // The log's segments from before the oldest kept snapshot (sequence 240) are gone;
        // the one holding record 241 stays.
        let segments = try PosixFileSystem().list(db.walDirectory).filter { $0.hasSuffix(".wal") }.sorted()
        let starts = segments.compactMap { UInt64($0.prefix(16), radix: 16) }
        #expect(segments.count > 2 && starts.count == segments.count)
        #expect(Snapshots.header(path: kept[1])?.sequence == 240)
        #expect(starts.first.map { $0 > 1 && $0 <= 241 } == true, "\(segments)")
        // The oldest kept snapshot can still be brought to the latest state.
        let newest = Snapshots.list(directory: db.snapshotDirectory)[0]
        try PosixFileSystem().remove(newest)
        let again = try TenantDatabase.open(directory: f.dir, keyRing: f.keys, options: options)
        #expect(again.current.count == 300)
        again.close()
    }
}

@Suite struct RetentionAndKeyRotationTests {
    /// 除票 are due 150 years after 消除年月日 (counted in Asia/Tokyo days by the caller),
    /// and a purge is one logged event that survives a restart.
    @Test func purgeDeletesOnlyWhatIsDue() async throws {
        let f = try DatabaseFixture(people: 3)
        let db = try f.open()
        for r in f.people { try await db.apply(f.record(r)) }
        var remove = RegisterEvent()
        remove.kind = .remove
        remove.reason = .shibou
        remove.person = f.people[0].integratedAtenaNumber
        remove.eventDate = CalendarDate(1875, 5, 1)
        try await db.apply(remove)
        // Kept through 2025-05-01 (the period starts the day after the removal and ends on
        // the anniversary's eve of that day); due from 2025-05-02.
        #expect(db.purgeDue(today: CalendarDate(2025, 5, 1)).isEmpty)
        #expect(db.purgeDue(today: CalendarDate(2025, 5, 2)) == [f.people[0].integratedAtenaNumber])
        #expect(try await db.purge(today: CalendarDate(2025, 5, 1)) == 0)
        // A purge event that names a 除票 before its day is refused by the register itself.
        var early = RegisterEvent()
        early.kind = .purge
        early.eventDate = CalendarDate(2025, 5, 1)
        early.persons = [f.people[0].integratedAtenaNumber]
        await #expect(throws: RPCError(.failedPrecondition, "event.persons: a 除票 is still within its 150-year retention")) { try await db.apply(early) }
        // As the log replays it, though, a purge is applied as it was accepted (an earlier
        // rule may have accepted it): the check belongs to admission, not to apply.
        var replayed = db.current
        _ = try replayed.apply(early, sequence: replayed.sequence + 1)
        #expect(replayed.person(f.people[0].integratedAtenaNumber) == nil)
        #expect(try await db.purge(today: CalendarDate(2025, 5, 2)) == 1)
        #expect(db.current.count == 2 && db.current.person(f.people[0].integratedAtenaNumber) == nil)
        db.close()
        let again = try f.open()
        #expect(again.current.count == 2)
        again.close()
    }

    /// 150 years counted as the Civil Code counts them (民法140条, 143条): from the day
    /// after the removal, so purging begins on that day's anniversary; a 29 February the
    /// year lacks gives 1 March; partial dates count from their latest day; an unknown
    /// date keeps the record.
    @Test func retentionCountsYearsAsTheCivilCodeDoes() {
        func due(_ y: UInt32, _ m: UInt32, _ d: UInt32, _ precision: CalendarDatePrecision = .full) -> String? {
            var removed = CalendarDate(y, m, d)
            removed.precision = precision
            return Retention.purgeableFrom(removedOn: removed)?.key
        }
        #expect(due(2000, 3, 1) == "21500302")
        #expect(due(1876, 2, 29) == "20260301")  // starts 1 March
        #expect(due(2000, 2, 28) == "21500301")  // starts 29 February; 2150 has none
        #expect(due(1850, 2, 28) == "20000301")  // starts 1 March 1850; 2000-02-29 is still kept
        #expect(due(2000, 12, 31) == "21510101")
        #expect(due(2060, 6, 30) == "22100701")  // past the years a resident's dates may take
        #expect(due(2000, 0, 0, .yearOnly) == "21510101")
        #expect(due(2000, 2, 0, .yearMonth) == "21500301")
        #expect(due(2001, 4, 0, .yearMonth) == "21510501")
        #expect(due(0, 0, 0, .unknown) == nil)
    }

    /// A new key version: new segments and snapshots use it, files under the old one
    /// stay readable.
    @Test func keyRotationKeepsOldFilesReadable() async throws {
        let f = try DatabaseFixture(people: 40)
        let db = try f.open()
        for r in f.people.prefix(20) { try await db.apply(f.record(r)) }
        db.close()
        let keyDir = f.dir + "-keys"
        #expect(try TenantKeyRing.addVersion(tenant: "012041", directory: keyDir) == 2)
        let rotated = try TenantKeyRing.load(tenant: "012041", directory: keyDir)
        let db2 = try TenantDatabase.open(directory: f.dir, keyRing: rotated)
        #expect(db2.current.count == 20)
        for r in f.people.dropFirst(20) { try await db2.apply(f.record(r)) }
        // The log now holds a segment under each key version, and both replay.
        let segments = try PosixFileSystem().list(db2.walDirectory).filter { $0.hasSuffix(".wal") }
        let versions = try segments.map { try WALFormat.SegmentHeader.decode(PosixFileSystem().read("\(db2.walDirectory)/\($0)")[...])!.keyVersion }
        #expect(versions.contains(1) && versions.contains(2))
        db2.close()
        let replayed = try TenantDatabase.open(directory: f.dir, keyRing: rotated)
        #expect(replayed.current.count == 40)
        let info = try replayed.snapshot()
        #expect(info.header.keyVersion == 2)
        replayed.close()
        let again = try TenantDatabase.open(directory: f.dir, keyRing: rotated)
        #expect(again.current.count == 40)
        again.close()
    }
}
