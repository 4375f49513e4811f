import Dispatch
import Foundation

/// Why a write was not acknowledged. See `WriteAheadLog` for what recovery does with it.
public struct WALWriteError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A tenant's write-ahead log: encrypted, checksummed records in segment files, appended
/// by one writer thread that makes every batch durable with a single fdatasync (group
/// commit). `append` returns only after its record is durable.
///
/// After a failed write or sync the segment is abandoned: cut back to what was
/// acknowledged (and synced, if the disk still allows), never written again, and a new
/// segment is started at once whose header records the last acknowledged sequence, so
/// recovery drops anything after it. Only if the disk refuses even that, and the process
/// dies before a later write starts a segment, can a failed write reappear on restart
/// (docs/STORAGE.md). A segment is never reopened for writing, so an AES-GCM nonce (the
/// sequence number) never repeats under one segment key.
///
/// After a failure the log is blocked: everything queued and everything appended fails,
/// until the owner has reset its own pending state and calls `unblock()`. That keeps a
/// write validated against a state that included a failed one out of the log.
public final class WriteAheadLog: @unchecked Sendable {
    public struct Options: Sendable {
        /// A new segment is started once the current one reaches this size.
        public var segmentSize = 64 << 20
        /// The group commit window: after a flush that carried more than one record (records
        /// are arriving together), the writer waits up to this long, or until `groupTarget`
        /// records are queued, before the next flush. A flush costs about the same CPU and
        /// disk time whatever it carries (on the development VM ~0.1 ms of CPU in the virtio
        /// driver, 0.26-0.45 ms in all), so when the cores are the bound, fewer, larger
        /// flushes leave more of them to the calls; when they are not, the window is only
        /// latency (docs/STORAGE.md §4 has the figures). A lone record is flushed at once.
        /// 0, the default, turns the window off.
        public var commitWindowMicroseconds = 0
        public var groupTarget = 64
        /// Zeros are written this far ahead of the records (`AppendFile.reserve`), so that
        /// a group commit's fdatasync writes the records alone, not the inode of a file
        /// that grew: on the development VM that cut a flush from ~350 to ~220 µs and its
        /// CPU by about 40%. The zeros past the last record are the log's clean end
        /// (`WALReader`); a segment is cut back to its records when it is closed. 0 turns
        /// it off (every append grows the file).
        public var reserveAhead = 4 << 20
        public init() {}
    }

    private struct Pending {
        /// The sequence the caller expects this record to get (nil: whatever is next).
        var expected: UInt64?
        var type: UInt8
        var payload: [UInt8]
        var done: @Sendable (Result<UInt64, WALWriteError>) -> Void
    }

    private struct OpenSegment {
        var file: any AppendFile
        var cipher: AESGCM
        /// The end of the last record written.
        var size: Int
        /// The file's size: zeros from `size` on (`Options.reserveAhead`); `Int.max` once
        /// reserving failed (the disk nearly full): appends grow the file from then on.
        var reserved: Int
    }

    public let directory: String
    public let keyRing: TenantKeyRing
    private let fs: any StoreFileSystem
    private let options: Options

    // Shared with callers, under `condition`.
    private let condition = NSCondition()
    private var queue: [Pending] = []
    private var stopping = false
    private var blocked = false
    private var lastAcknowledgedShared: UInt64
    private var commitsShared = GroupCommits()

    // Owned by the writer thread.
    private var segment: OpenSegment?
    private var nextSequence: UInt64
    private var lastAcknowledged: UInt64
    private let finished = DispatchSemaphore(value: 0)

    private init(directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem, options: Options, lastSequence: UInt64) {
        self.directory = directory
        self.keyRing = keyRing
        self.fs = fs
        self.options = options
        self.nextSequence = lastSequence + 1
        self.lastAcknowledged = lastSequence
        self.lastAcknowledgedShared = lastSequence
    }

    /// Recovers the log in `directory`, handing every record after `replayAfter` to
    /// `onRecord` in order, cuts a torn tail, and returns a log ready for appends.
    public static func open(
        directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem = PosixFileSystem(), options: Options = Options(),
        replayAfter: UInt64 = 0, onRecord: (WALRecord) throws -> Void
    ) throws -> (WriteAheadLog, WALRecoveryReport) {
        try fs.createDirectory(directory)
        var report = try recover(directory: directory, keyRing: keyRing, fs: fs, replayAfter: replayAfter, onRecord: onRecord)
        if report.lastSequence < replayAfter {
            // The log ends before the snapshot that was loaded (a restored snapshot; or a
            // tail lost below it): every segment it has is covered by the snapshot. They are
            // set aside, not deleted (they are the evidence of what happened, and what an
            // older snapshot would need), and the log starts after the snapshot.
            let names = try segmentFiles(directory, fs: fs)
            if !names.isEmpty {
                let aside = "\(directory)/superseded-\(Int(Date().timeIntervalSince1970))"
                try fs.createDirectory(aside)
                for name in names { try fs.rename("\(directory)/\(name)", "\(aside)/\(name)") }
                try fs.syncDirectory(aside)
                try fs.syncDirectory(directory)
                report.setAside = (folder: aside, segments: names.count)
            }
            report.lastSequence = replayAfter
        }
        let log = WriteAheadLog(directory: directory, keyRing: keyRing, fs: fs, options: options, lastSequence: report.lastSequence)
        let thread = Thread { [log] in log.writerLoop() }
        thread.name = "chukan-wal-\(keyRing.tenant)"
        thread.start()
        return (log, report)
    }

    static func segmentFiles(_ directory: String, fs: any StoreFileSystem) throws -> [String] {
        try fs.list(directory).filter { $0.hasSuffix(".wal") }.sorted()
    }

    /// Reads every record of the log in `directory` without changing a file (a torn tail is
    /// reported, not cut): what `chukanctl` uses to inspect a log that may be in use.
    /// `through`: stop after that sequence — a reader in the log's own process passes the
    /// log's `lastSequence`, so that it never reads bytes the writer may be writing (with
    /// space reserved ahead, those may show a hole before records of the same write).
    public static func read(
        directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem = PosixFileSystem(), through: UInt64? = nil,
        onRecord: (WALRecord) throws -> Void
    ) throws -> WALRecoveryReport {
        try recover(directory: directory, keyRing: keyRing, fs: fs, replayAfter: 0, readOnly: true, through: through, onRecord: onRecord)
    }

    private static func recover(
        directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem, replayAfter: UInt64, readOnly: Bool = false,
        through: UInt64? = nil, onRecord: (WALRecord) throws -> Void
    ) throws -> WALRecoveryReport {
        var report = WALRecoveryReport()
        var names = try segmentFiles(directory, fs: fs)
        // Segments are read one at a time, with the next one's bytes for its header (and the
        // last one's, checked first): a long log need not fit in memory at once.
        var lastBytes = try names.last.map { try fs.read("\(directory)/\($0)") }
        // A last segment whose header never became durable holds nothing acknowledged.
        if let last = lastBytes, WALFormat.SegmentHeader.decode(last[...]) == nil, last.count < WALFormat.headerSize || last.allSatisfy({ $0 == 0 }) {
            if !readOnly { try fs.remove("\(directory)/\(names.last!)") }
            report.truncated.append((file: names.last!, offset: 0))
            names.removeLast()
            lastBytes = nil
        }
        func contents(_ i: Int) throws -> [UInt8] {
            if i == names.count - 1, let lastBytes { return lastBytes }
            return try fs.read("\(directory)/\(names[i])")
        }
        var expected: UInt64? = nil
        var following: [UInt8]? = nil
        for i in names.indices {
            let bytes = try following ?? contents(i)
            following = i + 1 < names.count ? try contents(i + 1) : nil
            let file = "\(directory)/\(names[i])"
            // A later segment's header says where acknowledged writes ended in this one.
            let nextHeader = following.flatMap { WALFormat.SegmentHeader.decode($0[...]) }
            // With `through`, the read ends in this segment if it is the last, or if the next
            // one begins after `through` (a next header that does not decode is still an error).
            let endsHere = through.map { t in i + 1 == names.count || (nextHeader.map { $0.previousLastAcknowledged >= t } ?? false) } ?? false
            let limit = [nextHeader?.previousLastAcknowledged, through].compactMap { $0 }.min()
            let segment = try WALReader.read(bytes, file: file, keyRing: keyRing, lastAcknowledged: limit)
            if let e = expected, segment.header.firstSequence != e {
                throw WALError.sequenceGap(file: file, offset: 0, expected: e, found: segment.header.firstSequence)
            }
            report.segments += 1
            if i + 1 < names.count && !endsHere {
                guard let next = nextHeader else {
                    throw WALError.badHeader(file: "\(directory)/\(names[i + 1])")
                }
                // The next segment says where acknowledged writes ended in this one.
                let cut = next.previousLastAcknowledged
                let reached = segment.records.last?.sequence ?? (segment.header.firstSequence - 1)
                guard reached == cut else {
                    throw WALError.sequenceGap(file: file, offset: segment.goodEnd, expected: cut, found: reached)
                }
                expected = cut + 1
            } else {
                if let torn = segment.tornAt {
                    // Everything through `through` was acknowledged: a bad record there is damage.
                    if through != nil { throw WALError.corruptRecord(file: file, offset: torn, reason: "an acknowledged record does not read") }
                    if !readOnly { try fs.truncate(file, to: torn) }
                    report.truncated.append((file: file, offset: torn))
                } else if !readOnly && segment.goodEnd < bytes.count {
                    // Zeros reserved ahead, left by a crash: not a torn tail, and no use either.
                    // Cutting them is tidying only; if it fails they still read as the clean end.
                    try? fs.truncate(file, to: segment.goodEnd)
                }
                expected = (segment.records.last?.sequence ?? (segment.header.firstSequence - 1)) + 1
            }
            for r in segment.records {
                report.records += 1
                report.lastSequence = r.sequence
                if r.sequence > replayAfter { try onRecord(r) }
            }
            if segment.records.isEmpty { report.lastSequence = max(report.lastSequence, segment.header.firstSequence - 1) }
            if endsHere { break }
        }
        if let through, report.lastSequence < through {
            throw WALError.sequenceGap(file: directory, offset: 0, expected: through, found: report.lastSequence)
        }
        return report
    }

    /// The last sequence number made durable.
    public var lastSequence: UInt64 { condition.withLock { lastAcknowledgedShared } }

    /// How many fdatasyncs made how many records durable since the log was opened.
    public struct GroupCommits: Sendable, Equatable {
        public var syncs = 0
        public var records = 0
        public var recordsPerSync: Double { syncs == 0 ? 0 : Double(records) / Double(syncs) }
    }

    public var groupCommits: GroupCommits { condition.withLock { commitsShared } }

    /// Appends a record; `done` runs (on the writer thread, in sequence order) once it is
    /// durable, or failed. With `sequence`, the record is written only if it gets exactly
    /// that number: after a failed write everything already queued behind it fails too,
    /// so a caller that validated writes against its own pending state never sees a later
    /// write land without an earlier one.
    public func append(sequence: UInt64? = nil, type: UInt8, payload: [UInt8], done: @escaping @Sendable (Result<UInt64, WALWriteError>) -> Void) {
        enqueue([Pending(expected: sequence, type: type, payload: payload, done: done)], failing: done)
    }

    /// Appends consecutive records that become durable together: they enter the queue at
    /// once, so the writer thread puts them in one group commit, and `done` runs once, with
    /// the last sequence, when all are durable — or with the failure, when none is.
    public func append(batch: [(sequence: UInt64, type: UInt8, payload: [UInt8])], done: @escaping @Sendable (Result<UInt64, WALWriteError>) -> Void) {
        // One group commit holds at most this many (a record's group offset numbers them).
        guard batch.count <= WALFormat.maxGroupRecords else {
            return Self.failLater(done, "a batch of \(batch.count) records exceeds the \(WALFormat.maxGroupRecords) one group commit holds")
        }
        var pending: [Pending] = []
        pending.reserveCapacity(batch.count)
        for (i, r) in batch.enumerated() {
            var callback: @Sendable (Result<UInt64, WALWriteError>) -> Void = { _ in }
            if i == batch.count - 1 { callback = done }
            pending.append(Pending(expected: r.sequence, type: r.type, payload: r.payload, done: callback))
        }
        enqueue(pending, failing: done)
    }

    private func enqueue(_ records: [Pending], failing done: @escaping @Sendable (Result<UInt64, WALWriteError>) -> Void) {
        for r in records where r.payload.count + AESGCM.tagSize > WALFormat.maxRecordData {
            Self.failLater(done, "a record of \(r.payload.count) bytes exceeds the log's \(WALFormat.maxRecordData)-byte limit")
            return
        }
        condition.lock()
        if stopping || blocked {
            let why = stopping ? "the log is closed" : "an earlier write failed; the log takes writes again once its owner has caught up"
            condition.unlock()
            // Never call back on the caller's thread: it may hold the lock its callback takes.
            Self.failLater(done, why)
            return
        }
        queue += records
        condition.signal()
        condition.unlock()
    }

    private static func failLater(_ done: @escaping @Sendable (Result<UInt64, WALWriteError>) -> Void, _ why: String) {
        DispatchQueue.global().async { done(.failure(WALWriteError(why))) }
    }

    /// Lets writes in again after a failure (see the type's comment).
    public func unblock() {
        condition.withLock { blocked = false }
    }

    /// Appends a record and returns its sequence number once it is durable.
    public func append(type: UInt8, payload: [UInt8]) async throws -> UInt64 {
        try await withCheckedThrowingContinuation { continuation in
            append(type: type, payload: payload) { continuation.resume(with: $0) }
        }
    }

    /// Finishes what is queued, then stops the writer and closes the segment.
    public func close() {
        condition.lock()
        let already = stopping
        stopping = true
        condition.signal()
        condition.unlock()
        if !already { finished.wait() }
    }

    // MARK: writer thread

    private func writerLoop() {
        var lastGroup = 0
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if lastGroup > 1 && options.commitWindowMicroseconds > 0 {
                // Records came together last time: let more join this flush (`Options`).
                // Slept in slices against the monotonic clock, not waited on the condition:
                // its timed wait runs on the wall clock, which may be set back.
                let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(options.commitWindowMicroseconds) * 1000
                while queue.count < options.groupTarget && !stopping {
                    let now = DispatchTime.now().uptimeNanoseconds
                    guard now < deadline else { break }
                    condition.unlock()
                    usleep(UInt32(min((deadline - now) / 1000, 100)) + 1)
                    condition.lock()
                }
            }
            var batch = queue
            if batch.count > WALFormat.maxGroupRecords {
                // More than a record's group offset can number: the rest goes in the next
                // flush. (That could split one `append(batch:)` between two flushes; it
                // takes 16.7M queued records, gigabytes, which no caller comes near.)
                batch = Array(queue.prefix(WALFormat.maxGroupRecords))
                queue.removeFirst(WALFormat.maxGroupRecords)
            } else {
                queue.removeAll(keepingCapacity: true)
            }
            let stop = stopping && batch.isEmpty
            condition.unlock()
            if stop { break }
            write(batch)
            lastGroup = batch.count
        }
        closeSegment()
        finished.signal()
    }

    private func write(_ batch: [Pending]) {
        var skipped = Set<Int>()
        do {
            if segment == nil || segment!.size >= options.segmentSize { try startSegment() }
            var buffer: [UInt8] = []
            buffer.reserveCapacity(batch.reduce(0) { $0 + $1.payload.count + 48 })
            var sequence = nextSequence
            var written: [Pending] = []
            for (i, p) in batch.enumerated() {
                if let expected = p.expected, expected != sequence {
                    skipped.insert(i)
                    p.done(.failure(WALWriteError("an earlier write failed; this one was not written")))
                    continue
                }
                try encode(p, sequence: sequence, groupOffset: Int(sequence - nextSequence), into: &buffer)
                written.append(p)
                sequence += 1
            }
            guard !written.isEmpty else { return }
            if options.reserveAhead > 0 && segment!.size + buffer.count > segment!.reserved {
                // The zeros reach past these records again; this flush makes them durable
                // too. Best effort: on a nearly full disk the records may still fit, and
                // appends to a growing file are only slower (zeros written in part are a
                // clean end like any others).
                let target = segment!.size + buffer.count + options.reserveAhead
                segment!.reserved = (try? segment!.file.reserve(upTo: target)) != nil ? target : Int.max
            }
            try buffer.withUnsafeBytes { try segment!.file.append($0) }
            try segment!.file.sync()
            segment!.size += buffer.count
            let first = nextSequence
            nextSequence = sequence
            lastAcknowledged = sequence - 1
            condition.withLock {
                lastAcknowledgedShared = lastAcknowledged
                commitsShared.syncs += 1
                commitsShared.records += written.count
            }
            for (i, p) in written.enumerated() { p.done(.success(first + UInt64(i))) }
        } catch {
            // Never retry on this file: cut it back to what was acknowledged, if we can,
            // and start a segment that records where acknowledged writes ended.
            if let s = segment {
                try? s.file.truncate(to: s.size)
                try? s.file.sync()
                s.file.close()
            }
            segment = nil
            try? startSegment()
            let failure = WALWriteError("the write-ahead log could not make the write durable: \(error)")
            // Block, and fail everything queued behind this batch: it was validated
            // against a state that included these writes.
            let queued: [Pending] = condition.withLock {
                blocked = true
                defer { queue.removeAll() }
                return queue
            }
            for (i, p) in batch.enumerated() where !skipped.contains(i) { p.done(.failure(failure)) }
            for p in queued { p.done(.failure(failure)) }
        }
    }

    private func encode(_ p: Pending, sequence: UInt64, groupOffset: Int, into buffer: inout [UInt8]) throws {
        // Framed in place at the end of `buffer` (prefix, CRC, sealed payload and tag): no
        // array a record, and no allocation on this thread to free on another's heap.
        try withUnsafeTemporaryAllocation(byteCount: WALFormat.recordPrefixSize, alignment: 8) { prefix in
            WALFormat.writeRecordPrefix(length: UInt32(p.payload.count + AESGCM.tagSize), type: p.type, groupOffset: groupOffset, sequence: sequence, into: prefix)
            let aad = UnsafeRawBufferPointer(prefix)
            buffer.append(contentsOf: aad)
            let crcAt = buffer.count
            buffer.appendBE(UInt32(0))  // set once the sealed bytes are there
            let sealedAt = buffer.count
            try p.payload.withUnsafeBytes { plaintext in
                try segment!.cipher.seal(nonce: WALFormat.nonce(sequence: sequence), plaintext: plaintext, aad: aad, into: &buffer)
            }
            var crc = CRC32C.checksum(aad)
            crc = buffer.withUnsafeBytes { CRC32C.update(crc, UnsafeRawBufferPointer(rebasing: $0[sealedAt...])) }
            buffer.setBE(crc, at: crcAt)
        }
    }

    /// Cuts the segment back to its records (dropping the zeros reserved past them; if
    /// that fails they are harmless, the clean end the reader knows) and closes it.
    private func closeSegment() {
        if let s = segment {
            if s.reserved > s.size { try? s.file.truncate(to: s.size) }
            s.file.close()
        }
        segment = nil
    }

    private func startSegment() throws {
        closeSegment()
        let header = WALFormat.SegmentHeader(
            tenant: keyRing.tenant, keyVersion: keyRing.currentVersion, firstSequence: nextSequence,
            previousLastAcknowledged: lastAcknowledged, salt: secureRandomBytes(16))
        let path = "\(directory)/\(WALFormat.segmentName(firstSequence: nextSequence))"
        let file: any AppendFile
        var replaced: String? = nil
        do {
            file = try fs.createNew(path)
        } catch let e as StoreIOError where e.errno == EEXIST {
            // An abandoned segment starting at the same sequence holds nothing acknowledged,
            // but its header may hold the cut for the segment before it: the new one is made
            // under another name and renamed over it once durable, so that a crash meanwhile
            // never leaves the segment before without its cut.
            let temporary = path + ".new"
            try? fs.remove(temporary)
            file = try fs.createNew(temporary)
            replaced = temporary
        }
        let bytes = header.encoded()
        var reserved = bytes.count + options.reserveAhead
        do {
            try bytes.withUnsafeBytes { try file.append($0) }
            if options.reserveAhead > 0 && (try? file.reserve(upTo: reserved)) == nil { reserved = Int.max }  // best effort, as in `write`
            try file.sync()
            if let replaced { try fs.rename(replaced, path) }
            try fs.syncDirectory(directory)
        } catch {
            file.close()  // a disk failing again and again must not also use up descriptors
            throw error
        }
        let key = try WALFormat.segmentKey(tenantKey: keyRing.key(version: header.keyVersion), header: header)
        segment = OpenSegment(file: file, cipher: try AESGCM(key: key), size: bytes.count, reserved: reserved)
    }
}
