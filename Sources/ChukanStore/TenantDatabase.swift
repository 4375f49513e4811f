import ChukanCore
import ChukanProto
import ChukanRegister
import Foundation
import Synchronization

/// How a tenant came back on start: which snapshot, how much log, how long.
public struct TenantRecovery: Sendable {
    public var snapshot: String?
    public var snapshotSequence: UInt64 = 0
    /// Snapshots that could not be used, newest first, with the reason.
    public var skippedSnapshots: [String] = []
    public var wal = WALRecoveryReport()
    public var replayed = 0
    public var records = 0
    public var seconds: Double = 0
}

/// One tenant's register made durable: the published version readers use, a single
/// writer that validates each event against the latest accepted state, logs it, and
/// publishes the new version once the log says it is durable.
///
/// Group commit reaches up to the register: while a batch is being made durable, new
/// events are validated and applied in place to the writer's working copy and wait in
/// `staged`, then go to the log as the next batch, with one version for all of it. So a
/// version (and the layers a new version costs) is made per batch, not per write. Two
/// batches may be with the log at once: the one being synced and the next, queued behind
/// it, so that the log starts the next flush the moment a sync returns instead of after
/// a round trip through the writer's queue (that wait, not the cores, bounded writes).
///
/// Layout under the tenant's data directory: `wal/` (segments) and `snapshots/`.
public final class TenantDatabase: Sendable {
    public struct Options: Sendable {
        /// The register's log. (It gathers its own groups — the writes staged while a batch
        /// is with the log — so a commit window there would only delay.)
        public var wal = WriteAheadLog.Options()
        /// The tenant's audit stream's log (the platform stream takes the same).
        public var audit = WriteAheadLog.Options()
        /// Snapshots kept by `snapshot()`; the log is kept back to the oldest of them.
        public var keepSnapshots = 3
        /// Asked before each write; a reason means the write is refused with UNAVAILABLE
        /// (the disk watch uses it to stop writes before the disk fills).
        public var writeGate: (@Sendable () -> String?)?
        public init() {}
    }

    /// Called once with what became of a write.
    public typealias Completion = @Sendable (Result<WriteResult, Error>) -> Void
    private typealias Waiter = Completion
    private typealias Staged = (result: WriteResult, payload: [UInt8], continuation: Waiter)
    /// What the log did with a batch: its writes, the version that includes them, the epoch
    /// it was sent in.
    private typealias Outcome = (batch: [Staged], version: RegisterState, epoch: Int, result: Result<UInt64, WALWriteError>)

    /// Owned by `writerQueue` (the mutex is never contended; it makes the state Sendable).
    private struct Writer {
        /// Every accepted event applied, durable or not. Changed in place.
        var working: RegisterState
        var nextSequence: UInt64
        /// Accepted events waiting until fewer than `maxBatchesInFlight` batches are with the log.
        var staged: [Staged] = []
        /// Batches with the log, at most `maxBatchesInFlight`.
        var inFlight = 0
        /// Counts the log's failures. A batch sent before the last failure (so validated
        /// against writes that never became durable) fails without touching the state.
        var epoch = 0
        /// Batches are numbered as they are sent and finished in that order (`completed`).
        var sent = 0
        var finishedThrough = 0
        /// Outcomes that arrived ahead of an earlier batch's, by number.
        var early: [Int: Outcome] = [:]
        /// Retries of idempotent writes not yet durable, answered when they are.
        var retries: [(WriteResult, Waiter)] = []
        /// When remembered idempotent writes past their retention were last forgotten.
        var lastTrim = Date()
    }

    public let tenant: String
    public let directory: String
    public let keyRing: TenantKeyRing
    public let recovery: TenantRecovery
    private let options: Options
    private let fs: any StoreFileSystem
    private let log: WriteAheadLog
    /// The tenant's audit trail (`audit/`): its own hash-chained log, same key.
    public let audit: AuditLog
    private let published: Mutex<RegisterVersion>
    private let writer: Mutex<Writer>
    /// Events handed in by callers, waiting for `writerQueue`.
    private struct Incoming {
        var events: [Submission] = []
        var scheduled = false
    }

    /// A write as it waits for the writer: its event encoded (and its resident prepared).
    private struct Submission {
        var event: RegisterEvent
        var payload: [UInt8]
        var prepared: PreparedResident?
        var completion: Waiter
    }
    private let incoming = Locked(Incoming())  // contended by every writer: see `Locked`
    /// Taken by a snapshot and by `close`; true once closed, so that a snapshot asked for
    /// before a close (a call still running while the tenant is removed) writes nothing
    /// into a folder that is gone or going.
    private let snapshotting = Locked(false)
    /// Snapshot files whose checksums `prune` has checked, by path, size and modification
    /// time: each is read once, not at every prune (a million residents' is ~450 MB).
    private let soundSnapshots = Locked(Set<String>())
    private let writerQueue = DispatchQueue(label: "chukan.tenant.writer")

    private let lock: DirectoryLock

    private init(
        tenant: String, directory: String, keyRing: TenantKeyRing, recovery: TenantRecovery, options: Options, fs: any StoreFileSystem,
        log: WriteAheadLog, audit: AuditLog, state: RegisterState, lock: DirectoryLock
    ) {
        self.audit = audit
        self.lock = lock
        self.tenant = tenant
        self.directory = directory
        self.keyRing = keyRing
        self.recovery = recovery
        self.options = options
        self.fs = fs
        self.log = log
        self.published = Mutex(RegisterVersion(state))
        self.writer = Mutex(Writer(working: state, nextSequence: state.sequence + 1))
    }

    public var walDirectory: String { "\(directory)/wal" }
    public var snapshotDirectory: String { "\(directory)/snapshots" }

    /// Recovers the tenant: the newest snapshot that verifies and decrypts (falling back
    /// to older ones), then the log after it. Refuses to start, naming the file, when
    /// the data cannot be brought back, rather than start empty.
    public static func open(
        directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem = PosixFileSystem(), options: Options = Options()
    ) throws -> TenantDatabase {
        let started = Date()
        let tenant = keyRing.tenant
        try fs.createDirectory(directory)
        let lock = try DirectoryLock(directory: directory)
        var recovery = TenantRecovery()
        var state = RegisterState(tenant: tenant)
        let snapshots = Snapshots.list(directory: "\(directory)/snapshots", fs: fs)
        for path in snapshots {
            do {
                state = try Snapshots.load(path: path, keyRing: keyRing, fs: fs)
                recovery.snapshot = path
                recovery.snapshotSequence = state.sequence
                break
            } catch {
                recovery.skippedSnapshots.append("\(error)")
            }
        }
        if !snapshots.isEmpty && recovery.snapshot == nil {
            throw SnapshotError("tenant \(tenant): no snapshot could be loaded: \(recovery.skippedSnapshots.joined(separator: "; "))")
        }
        var replayed = 0
        let (log, walReport) = try WriteAheadLog.open(
            directory: "\(directory)/wal", keyRing: keyRing, fs: fs, options: options.wal, replayAfter: state.sequence
        ) { record in
            guard record.sequence == state.sequence + 1 else {
                throw WALError.sequenceGap(file: "\(directory)/wal", offset: 0, expected: state.sequence + 1, found: record.sequence)
            }
            let event: RegisterEvent
            do { event = try RegisterEvent(protobuf: record.payload) } catch {
                throw WALError.corruptRecord(file: "\(directory)/wal", offset: 0, reason: "record \(record.sequence) is not a RegisterEvent")
            }
            do { try state.apply(event, sequence: record.sequence) } catch {
                throw WALError.corruptRecord(file: "\(directory)/wal", offset: 0, reason: "record \(record.sequence) does not apply: \(error)")
            }
            replayed += 1
        }
        if walReport.lastSequence > state.sequence {
            log.close()
            throw WALError.sequenceGap(file: "\(directory)/wal", offset: 0, expected: state.sequence + 1, found: walReport.lastSequence)
        }
        // Idempotency keys are promised for a day; two are kept, then forgotten here.
        state.forgetIdempotentWrites(acceptedBefore: Int64(Date().timeIntervalSince1970 * 1000) - SnapshotFormat.idempotencyRetentionMs)
        recovery.wal = walReport
        recovery.replayed = replayed
        recovery.records = state.count
        recovery.seconds = Date().timeIntervalSince(started)
        let audit: AuditLog
        do { audit = try AuditLog.open(directory: "\(directory)/audit", keyRing: keyRing, fs: fs, options: options.audit) } catch {
            log.close()
            throw error
        }
        // A held provision spent its permit even if its record never reached the trail
        // (a crash between the hold and the record): claimed for good, so no second hold.
        for p in state.pending.values where !p.permitId.isEmpty {
            audit.permits.restore(p.permitId, expiresUnixMs: .max, nowUnixMs: 0)
        }
        return TenantDatabase(tenant: tenant, directory: directory, keyRing: keyRing, recovery: recovery, options: options, fs: fs, log: log, audit: audit, state: state, lock: lock)
    }

    /// The latest durable version. Holding it costs nothing; it never changes.
    public var current: RegisterState { version.state }

    /// The latest durable version, boxed: taken with one retain (`RegisterVersion`).
    /// Calls on the hot path use it and its point lookups.
    public var version: RegisterVersion { published.withLock { $0 } }

    /// Validates `event`, logs it, and returns its sequence once it is durable and
    /// visible. A refused event (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
    /// ALREADY_EXISTS) is never logged; a log failure is UNAVAILABLE and the event is
    /// neither visible nor replayed.
    @discardableResult
    public func apply(_ event: RegisterEvent) async throws -> UInt64 { try await write(event).sequence }

    /// What a write did.
    public struct WriteResult: Sendable, Equatable {
        public var sequence: UInt64
        /// 団体内統合宛名番号 of the person written (empty for a purge).
        public var person: String
        /// The event carried an idempotency key already used: this is the first write's result.
        public var replayed = false
    }

    /// `apply`, with what the write did. An event with an idempotency key that this tenant
    /// has seen (within the retention) is not applied again: the answer is the first
    /// write's, once that is durable; the same key with another request digest is refused.
    public func write(_ event: RegisterEvent) async throws -> WriteResult {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<WriteResult, Error>) in
            submit(event) { continuation.resume(with: $0) }
        }
    }

    /// `write`, without waiting: the event joins the writer's queue before this returns, so
    /// events submitted one after the other are applied in that order (a streamed import
    /// keeps its order with many writes in flight); `completion` runs once with the result.
    public func submit(_ event: RegisterEvent, completion: @escaping Completion) {
        if let refusal = options.writeGate?() { return completion(.failure(RPCError.unavailable(refusal))) }
        // Encoded, and its resident validated, encoded and keyed, here on the caller's
        // thread: the single writer's turn bounds the tenant's writes a second.
        let prepared = PreparedResident(event)
        let submission = Submission(event: event, payload: prepared?.eventBytes ?? event.encodedBytes, prepared: prepared, completion: completion)
        // Checked before it joins a batch, so that it cannot make the whole batch fail.
        guard submission.payload.count + AESGCM.tagSize <= WALFormat.maxRecordData else {
            return completion(.failure(RPCError(.resourceExhausted, "the event is \(submission.payload.count) bytes; the log takes at most \(WALFormat.maxRecordData - AESGCM.tagSize)")))
        }
        let schedule = incoming.withLock { i in
            i.events.append(submission)
            defer { i.scheduled = true }
            return !i.scheduled
        }
        if schedule { writerQueue.async { self.drainIncoming() } }
    }

    // The writer's state is touched only on `writerQueue`: validation, the log's
    // completions and the flushes they start take turns there, so no lock is held while
    // an event is validated and the log's thread never waits for one.

    /// Validates what has arrived, in arrival order, into the working copy.
    private func drainIncoming() {
        let events = incoming.withLock { i -> [Submission] in
            i.scheduled = false
            defer { i.events.removeAll(keepingCapacity: true) }
            return i.events
        }
        let durable = published.withLock { $0.state.sequence }
        var answers: [(Waiter, Result<WriteResult, Error>)] = []
        writer.withLock { w in
            // Hourly, forget idempotent writes past their retention, so that a long-running
            // server's memory does not grow with every key it ever saw.
            if Date().timeIntervalSince(w.lastTrim) > 3600 {
                w.lastTrim = Date()
                w.working.forgetIdempotentWrites(acceptedBefore: Int64(w.lastTrim.timeIntervalSince1970 * 1000) - SnapshotFormat.idempotencyRetentionMs)
            }
            for submission in events {
                let (event, continuation) = (submission.event, submission.completion)
                if !event.idempotencyKey.isEmpty, let earlier = w.working.idempotency[event.idempotencyKey] {
                    guard earlier.requestDigest == event.requestDigest else {
                        answers.append((continuation, .failure(RPCError(.failedPrecondition, "idempotency_key: already used for a different write"))))
                        continue
                    }
                    let result = WriteResult(sequence: earlier.sequence, person: earlier.person, replayed: true)
                    // A retry of a write still on its way to the disk waits for it.
                    if earlier.sequence <= durable { answers.append((continuation, .success(result))) } else { w.retries.append((result, continuation)) }
                    continue
                }
                // Retention is checked as a purge is admitted, not when the log is replayed:
                // a purge logged under an earlier rule must still replay.
                if let refusal = w.working.purgeRefusal(event) {
                    answers.append((continuation, .failure(refusal)))
                    continue
                }
                let sequence = w.nextSequence
                let person: String
                do { person = try w.working.apply(event, sequence: sequence, prepared: submission.prepared) } catch {
                    answers.append((continuation, .failure(error)))
                    continue
                }
                w.nextSequence += 1
                w.staged.append((WriteResult(sequence: sequence, person: person), submission.payload, continuation))
            }
            if w.inFlight < Self.maxBatchesInFlight { flush(&w) }
        }
        for (continuation, result) in answers { continuation(result) }
    }

    /// Why writes are refused now (the disk watch), or nil: a caller that must not start
    /// what it could not finish asks first.
    public var writeRefusal: String? { options.writeGate?() }

    /// Writes the writer accepted that are not yet durable (for tests that must know a
    /// write reached the writer).
    public var acceptedNotDurable: Int {
        let durable = published.withLock { $0.state.sequence }
        return writer.withLock { w in Int(w.nextSequence - 1 - durable) }
    }

    /// The one being synced and the next, queued behind it (see the type's comment).
    static let maxBatchesInFlight = 2

    /// Sends everything staged to the log as one batch, with the version that includes it.
    /// Each record carries its expected sequence, so the log writes none after one that failed.
    private func flush(_ w: inout Writer) {
        guard !w.staged.isEmpty else { return }
        let batch = w.staged
        w.staged.removeAll(keepingCapacity: true)
        w.inFlight += 1
        w.sent += 1
        let number = w.sent
        let version = w.working
        let epoch = w.epoch
        log.append(batch: batch.map { (sequence: $0.result.sequence, type: UInt8(1), payload: $0.payload) }) { [self] result in
            writerQueue.async { self.completed(number, (batch, version, epoch, result)) }
        }
    }

    /// Hands the log's outcomes to `finished` in the order the batches were sent. The log
    /// calls back in sequence order for what it writes, but a refusal (the log closed, a
    /// batch too large) comes through another queue and can overtake an earlier batch still
    /// being synced: finished first, it would reset the writer to a version without that
    /// batch, which may yet become durable.
    private func completed(_ number: Int, _ outcome: Outcome) {
        var ready: [Outcome] = []
        writer.withLock { w in
            w.early[number] = outcome
            while let next = w.early.removeValue(forKey: w.finishedThrough + 1) {
                w.finishedThrough += 1
                ready.append(next)
            }
        }
        for o in ready { finished(o.batch, version: o.version, epoch: o.epoch, result: o.result) }
    }

    /// The log has made `batch` durable, or failed it; batches come here in the order they
    /// were sent (`completed`).
    private func finished(_ batch: [Staged], version: RegisterState, epoch: Int, result: Result<UInt64, WALWriteError>) {
        if case .failure(let error) = result, writer.withLock({ $0.epoch != epoch }) {
            // Sent before a failure already handled: the log refused it unwritten, and the
            // working copy no longer includes it.
            let unavailable = RPCError.unavailable("the write was not made durable: \(error)")
            for item in batch { item.continuation(.failure(unavailable)) }
            return
        }
        switch result {
        case .success:
            // The version it replaces is freed elsewhere: releasing the nodes only it held
            // (and, after a compaction, a whole table) is work the writer need not wait
            // for. The writer must not hold the last reference even for a moment, or the
            // release lands back here: it hands over a box it never opens again.
            let next = RegisterVersion(version)
            let replaced = Disposal(published.withLock { p in
                defer { p = next }
                return p
            })
            DispatchQueue.global().async { replaced.dispose() }
            let retries = writer.withLock { w -> [(WriteResult, Waiter)] in
                w.inFlight -= 1
                flush(&w)
                let ready = w.retries.filter { $0.0.sequence <= version.sequence }
                w.retries.removeAll { $0.0.sequence <= version.sequence }
                return ready
            }
            for item in batch { item.continuation(.success(item.result)) }
            for (result, continuation) in retries { continuation(.success(result)) }
        case let .failure(error):
            // The log failed this batch and is blocked; it fails the batch queued behind
            // it too (that one comes back here with the old epoch). What is staged was
            // validated against a state that included the failed writes: forget all of it,
            // then let writes in again. Retries waiting for a failed write fail with it.
            let durable = published.withLock { $0 }.state
            let (dropped, retries) = writer.withLock { w -> ([Staged], [(WriteResult, Waiter)]) in
                w.inFlight = 0
                w.epoch += 1
                w.working = durable
                w.nextSequence = durable.sequence + 1
                defer {
                    w.staged.removeAll()
                    w.retries.removeAll()
                }
                return (w.staged, w.retries)
            }
            log.unblock()
            let unavailable = RPCError.unavailable("the write was not made durable: \(error)")
            for item in batch + dropped { item.continuation(.failure(unavailable)) }
            for (_, continuation) in retries { continuation(.failure(unavailable)) }
        }
    }

    /// Writes a snapshot of the current version (writes go on meanwhile), then keeps the
    /// newest `keepSnapshots` and the log back to the oldest of them.
    @discardableResult
    public func snapshot() throws -> SnapshotInfo {
        // One at a time: two at the same sequence would share a temp file, and prunes would race.
        try snapshotting.withLock { closed in
            guard !closed else { throw RPCError.unavailable("the tenant's database is closed") }
            let info = try Snapshots.write(current, directory: snapshotDirectory, keyRing: keyRing, fs: fs)
            try prune()
            return info
        }
    }

    /// Keeps the newest `keepSnapshots` snapshots that pass their checksums, and any newer
    /// than those; removes older ones, and log segments wholly before the oldest sound
    /// snapshot kept. A damaged snapshot does not count toward the number kept: pruning
    /// never leaves only damaged snapshots, nor cuts the log back to one (recovery falls
    /// back to an older snapshot and replays the log from it).
    public func prune() throws {
        guard options.keepSnapshots >= 1 else { return }
        let all = Snapshots.list(directory: snapshotDirectory, fs: fs)
        var kept = all.count, sound: [String] = [], unsound = Set<String>()
        while true {
            kept = all.count
            sound = []
            for (i, path) in all.enumerated() where !unsound.contains(path) && isSound(path, remembered: true) {
                sound.append(path)
                if sound.count == options.keepSnapshots {
                    kept = i + 1
                    break
                }
            }
            // The oldest kept is what the log is cut back to: checked again in full, before
            // anything is deleted, whatever was remembered; if it fails, choose again.
            guard let oldest = sound.last, !isSound(oldest, remembered: false) else { break }
            unsound.insert(oldest)
        }
        for old in all.dropFirst(kept) { try fs.remove(old) }
        try fs.syncDirectory(snapshotDirectory)
        guard let oldest = sound.last, let header = Snapshots.header(path: oldest) else { return }
        let segments = try WriteAheadLog.segmentFiles(walDirectory, fs: fs)
        // A segment is needed unless the next one starts at or before the oldest snapshot.
        for (i, name) in segments.enumerated() where i + 1 < segments.count {
            guard let next = UInt64(segments[i + 1].prefix(16), radix: 16), next <= header.sequence + 1 else { break }
            try fs.remove("\(walDirectory)/\(name)")
        }
        try fs.syncDirectory(walDirectory)
    }

    /// Whether a snapshot file passes its checksums (without the key), remembered by path,
    /// size and modification time so that an unchanged file is read once.
    private func isSound(_ path: String, remembered: Bool) -> Bool {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let identity = attributes.map { "\(path)|\(($0[.size] as? NSNumber)?.intValue ?? -1)|\(($0[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1)" }
        if remembered, let identity, soundSnapshots.withLock({ $0.contains(identity) }) { return true }
        guard (try? Snapshots.verify(path: path, fs: fs)) != nil else {
            if let identity { soundSnapshots.withLock { _ = $0.remove(identity) } }
            return false
        }
        if let identity { soundSnapshots.withLock { _ = $0.insert(identity) } }
        return true
    }

    /// 除票 due for deletion on `today` (Asia/Tokyo), without deleting anything.
    public func purgeDue(today: CalendarDate) -> [String] { current.purgeDue(today: today) }

    /// Deletes the 除票 due on `today` as one logged PURGE event; returns how many.
    @discardableResult
    public func purge(today: CalendarDate) async throws -> Int {
        let due = purgeDue(today: today)
        guard !due.isEmpty else { return 0 }
        var e = RegisterEvent()
        e.kind = .purge
        e.eventDate = today
        e.persons = due
        try await apply(e)
        return due.count
    }

    /// The log's group commits since the tenant was opened (records per fdatasync).
    public var groupCommits: WriteAheadLog.GroupCommits { log.groupCommits }

    public func close() {
        snapshotting.withLock { $0 = true }  // waits for a snapshot being written
        log.close()
        audit.close()
        lock.release()
    }
}

/// A replaced version on its way to be freed off the writer's thread: only `dispose`
/// (run once, elsewhere) touches what it holds.
private final class Disposal: @unchecked Sendable {
    private var version: RegisterVersion?
    init(_ version: RegisterVersion) { self.version = version }
    func dispose() { version = nil }
}
