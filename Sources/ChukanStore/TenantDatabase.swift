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
/// Layout under the tenant's data directory: `wal/` (segments) and `snapshots/`.
public final class TenantDatabase: Sendable {
    public struct Options: Sendable {
        public var wal = WriteAheadLog.Options()
        /// Snapshots kept by `snapshot()`; the log is kept back to the oldest of them.
        public var keepSnapshots = 3
        public init() {}
    }

    private struct Writer {
        var pending: RegisterState
        var nextSequence: UInt64
        /// Bumped at each reset after a failed write; a failure reported for an older
        /// generation was already dealt with.
        var generation: UInt64 = 0
    }

    public let tenant: String
    public let directory: String
    public let keyRing: TenantKeyRing
    public let recovery: TenantRecovery
    private let options: Options
    private let fs: any StoreFileSystem
    private let log: WriteAheadLog
    private let published: Mutex<RegisterState>
    private let writer: Mutex<Writer>

    private let lock: DirectoryLock

    private init(tenant: String, directory: String, keyRing: TenantKeyRing, recovery: TenantRecovery, options: Options, fs: any StoreFileSystem, log: WriteAheadLog, state: RegisterState, lock: DirectoryLock) {
        self.lock = lock
        self.tenant = tenant
        self.directory = directory
        self.keyRing = keyRing
        self.recovery = recovery
        self.options = options
        self.fs = fs
        self.log = log
        self.published = Mutex(state)
        self.writer = Mutex(Writer(pending: state, nextSequence: state.sequence + 1))
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
            do { state = try state.applying(event, sequence: record.sequence) } catch {
                throw WALError.corruptRecord(file: "\(directory)/wal", offset: 0, reason: "record \(record.sequence) does not apply: \(error)")
            }
            replayed += 1
        }
        if walReport.lastSequence > state.sequence {
            log.close()
            throw WALError.sequenceGap(file: "\(directory)/wal", offset: 0, expected: state.sequence + 1, found: walReport.lastSequence)
        }
        recovery.wal = walReport
        recovery.replayed = replayed
        recovery.records = state.count
        recovery.seconds = Date().timeIntervalSince(started)
        return TenantDatabase(tenant: tenant, directory: directory, keyRing: keyRing, recovery: recovery, options: options, fs: fs, log: log, state: state, lock: lock)
    }

    /// The latest durable version. Holding it costs nothing; it never changes.
    public var current: RegisterState { published.withLock { $0 } }

    /// Validates `event`, logs it, and returns its sequence once it is durable and
    /// visible. A refused event (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
    /// ALREADY_EXISTS) is never logged; a log failure is UNAVAILABLE and the event is
    /// neither visible nor replayed.
    @discardableResult
    public func apply(_ event: RegisterEvent) async throws -> UInt64 {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<UInt64, Error>) in
            do {
                try writer.withLock { w in
                    let sequence = w.nextSequence
                    let generation = w.generation
                    let next = try w.pending.applying(event, sequence: sequence)
                    w.pending = next
                    w.nextSequence += 1
                    log.append(sequence: sequence, type: 1, payload: event.encodedBytes) { [self] result in
                        switch result {
                        case .success:
                            published.withLock { if next.sequence > $0.sequence { $0 = next } }
                            continuation.resume(returning: sequence)
                        case let .failure(error):
                            // The log failed this write and everything queued behind it, and
                            // is blocked. Forget what is not durable, then let writes in again.
                            writer.withLock { w in
                                guard w.generation == generation else { return }
                                let durable = published.withLock { $0 }
                                w.pending = durable
                                w.nextSequence = durable.sequence + 1
                                w.generation += 1
                                log.unblock()
                            }
                            continuation.resume(throwing: RPCError.unavailable("the write was not made durable: \(error)"))
                        }
                    }
                }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// Writes a snapshot of the current version (writes go on meanwhile), then keeps the
    /// newest `keepSnapshots` and the log back to the oldest of them.
    @discardableResult
    public func snapshot() throws -> SnapshotInfo {
        let info = try Snapshots.write(current, directory: snapshotDirectory, keyRing: keyRing, fs: fs)
        try prune()
        return info
    }

    /// Removes snapshots beyond `keepSnapshots`, and log segments wholly before the oldest kept.
    public func prune() throws {
        let all = Snapshots.list(directory: snapshotDirectory, fs: fs)
        guard options.keepSnapshots >= 1 else { return }
        for old in all.dropFirst(options.keepSnapshots) { try fs.remove(old) }
        try fs.syncDirectory(snapshotDirectory)
        guard let oldest = all.prefix(options.keepSnapshots).last,
              let header = SnapshotFormat.Header.decode(try fs.read(oldest).prefix(SnapshotFormat.headerSize))
        else { return }
        let segments = try WriteAheadLog.segmentFiles(walDirectory, fs: fs)
        // A segment is needed unless the next one starts at or before the oldest snapshot.
        for (i, name) in segments.enumerated() where i + 1 < segments.count {
            guard let next = UInt64(segments[i + 1].prefix(16), radix: 16), next <= header.sequence + 1 else { break }
            try fs.remove("\(walDirectory)/\(name)")
        }
        try fs.syncDirectory(walDirectory)
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

    public func close() {
        log.close()
        lock.release()
    }
}
