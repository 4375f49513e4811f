import ChukanStore
import Foundation
import Synchronization
import Testing

/// A fresh data directory and key ring for tenant 012041.
struct LogFixture {
    let dir = NSTemporaryDirectory() + "chukan-wal-\(UUID().uuidString)"
    var walDir: String { "\(dir)/wal" }
    let keys: TenantKeyRing

    init() throws {
        let keyDir = dir + "-keys"
        try TenantKeyRing.addVersion(tenant: "012041", directory: keyDir)
        keys = try TenantKeyRing.load(tenant: "012041", directory: keyDir)
    }

    func open(fs: any StoreFileSystem = PosixFileSystem(), keys: TenantKeyRing? = nil, options: WriteAheadLog.Options = .init(), after: UInt64 = 0) throws -> (WriteAheadLog, WALRecoveryReport, [WALRecord]) {
        var records: [WALRecord] = []
        let (log, report) = try WriteAheadLog.open(directory: walDir, keyRing: keys ?? self.keys, fs: fs, options: options, replayAfter: after) { records.append($0) }
        return (log, report, records)
    }

    func segments() throws -> [String] { try PosixFileSystem().list(walDir).filter { $0.hasSuffix(".wal") } }

    /// A log of `payload(0)`, `payload(1)` … written in group commits of the given sizes
    /// (a group of one by `append`, larger ones by `append(batch:)`), then closed.
    /// `count` records, one append each, in segments of 1 KiB (so many segments).
    func writeInSmallSegments(_ count: Int) async throws {
        var options = WriteAheadLog.Options()
        options.segmentSize = 1024
        let (log, _, _) = try open(options: options)
        for i in 0..<count { _ = try await log.append(type: 1, payload: payload(i)) }
        log.close()
    }

    func write(groups: [Int]) async throws {
        let (log, _, _) = try open()
        var next = 0
        for size in groups {
            if size == 1 {
                _ = try await log.append(type: 1, payload: payload(next))
            } else {
                let batch = (next..<next + size).map { (UInt64($0 + 1), UInt8(1), payload($0)) }
                _ = try await withCheckedThrowingContinuation { (c: CheckedContinuation<UInt64, Error>) in
                    log.append(batch: batch) { c.resume(with: $0.mapError { $0 as Error }) }
                }
            }
            next += size
        }
        log.close()
    }

    /// Zeros record `index` (0-based; records 0-9 are all `singleDigitRecordSize`) of the first segment, in place.
    func zeroRecord(_ index: Int) throws {
        let path = "\(walDir)/\(try segments()[0])"
        var bytes = try PosixFileSystem().read(path)
        let start = WALFormat.headerSize + index * singleDigitRecordSize
        for i in start..<(start + singleDigitRecordSize) { bytes[i] = 0 }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

/// The size on disk of a record of `payload(0)` … `payload(9)`.
let singleDigitRecordSize = WALFormat.recordHeaderSize + payload(0).count + 16

func payload(_ i: Int) -> [UInt8] { Array("record \(i) 旭川市".utf8) }

@Suite struct WriteAheadLogTests {
    @Test func concurrentAppendsAreDurableAndReplayInOrder() async throws {
        let f = try LogFixture()
        let (log, report, replayed) = try f.open()
        #expect(report.records == 0 && replayed.isEmpty)
        let sequences = try await withThrowingTaskGroup(of: (Int, UInt64).self) { group in
            for i in 0..<640 { group.addTask { (i, try await log.append(type: 1, payload: payload(i))) } }
            var out: [(Int, UInt64)] = []
            for try await r in group { out.append(r) }
            return out
        }
        #expect(Set(sequences.map(\.1)) == Set(1...640))
        #expect(log.lastSequence == 640)
        log.close()

        let (again, report2, records) = try f.open()
        #expect(report2.records == 640 && report2.lastSequence == 640 && report2.truncated.isEmpty)
        #expect(records.map(\.sequence) == Array(1...640))
        let bySequence = Dictionary(uniqueKeysWithValues: sequences.map { ($0.1, $0.0) })
        for r in records { #expect(r.payload == payload(bySequence[r.sequence]!)) }
        // Appends continue after the last sequence, in a new segment.
        #expect(try await again.append(type: 2, payload: [7]) == 641)
        again.close()
        #expect(try f.segments().count == 2)
        let (_, _, all) = try f.open(after: 640)
        #expect(all == [WALRecord(sequence: 641, type: 2, payload: [7])])
    }

    /// The commit window (`Options.commitWindowMicroseconds`): after a flush of several
    /// records, the next flush waits for more — and goes as soon as its group is full, not
    /// at the window's end; closing the log does not wait for the window either. (A window
    /// of a minute, so that waiting it out would show even in a loaded suite.)
    @Test func aCommitWindowGathersAGroupAndEndsWhenItIsFull() async throws {
        let f = try LogFixture()
        var options = WriteAheadLog.Options()
        options.commitWindowMicroseconds = 60_000_000
        options.groupTarget = 8
        let (log, _, _) = try f.open(options: options)
        // Two records in one flush: the next flush gathers.
        _ = try await withCheckedThrowingContinuation { (c: CheckedContinuation<UInt64, Error>) in
            log.append(batch: [(1, 1, payload(0)), (2, 1, payload(1))]) { c.resume(with: $0.mapError { $0 as Error }) }
        }
        #expect(log.groupCommits.syncs == 1)
        let started = Date()  // from here on, only this thread and the log's writer
        // Eight appends, each on its own (from this thread, so that no task scheduling
        // stands between them): one flush, when the eighth arrives.
        let acknowledged = Mutex<[UInt64]>([])
        let eight = DispatchSemaphore(value: 0)
        for i in 2..<10 {
            log.append(type: 1, payload: payload(i)) { result in
                if case let .success(sequence) = result { acknowledged.withLock { $0.append(sequence) } }
                eight.signal()
            }
        }
        var answered = 0
        while answered < 8, eight.wait(timeout: .now() + 30) == .success { answered += 1 }
        #expect(answered == 8, "the full group waited for the window")
        #expect(Set(acknowledged.withLock { $0 }) == Set(3...10))
        #expect(log.groupCommits.syncs == 2 && log.groupCommits.records == 10)
        // One more, inside a window that closing the log cuts short.
        let last = Mutex<UInt64?>(nil)
        log.append(type: 1, payload: payload(10)) { result in last.withLock { $0 = try? result.get() } }
        log.close()
        #expect(last.withLock { $0 } == 11)
        #expect(Date().timeIntervalSince(started) < 55, "a window was waited out")
        let (_, report, _) = try f.open()
        #expect(report.records == 11)
    }

    @Test func dataIsCiphertextOnDisk() async throws {
        let f = try LogFixture()
        let (log, _, _) = try f.open()
        _ = try await log.append(type: 1, payload: Array("ASAHIKAWA-SECRET-NAME".utf8))
        log.close()
        let bytes = try PosixFileSystem().read("\(f.walDir)/\(try f.segments()[0])")
        #expect(String(decoding: bytes, as: UTF8.self).contains("ASAHIKAWA") == false)
    }

    @Test func tornTailIsCutAndReported() async throws {
        let f = try LogFixture()
        let (log, _, _) = try f.open()
        for i in 0..<10 { _ = try await log.append(type: 1, payload: payload(i)) }
        log.close()
        let path = "\(f.walDir)/\(try f.segments()[0])"
        let goodSize = try PosixFileSystem().read(path).count
        // Half a record: as if the machine died mid-write.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0, 0, 0, 40, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11, 1, 2]))
        try handle.close()

        let (again, report, records) = try f.open()
        #expect(records.count == 10)
        #expect(report.truncated.count == 1 && report.truncated[0].offset == goodSize)
        #expect(try PosixFileSystem().read(path).count == goodSize)
        #expect(try await again.append(type: 1, payload: [1]) == 11)
        again.close()
        let (_, report2, records2) = try f.open()
        #expect(records2.count == 11 && report2.truncated.isEmpty)
    }

    /// Zeros are reserved ahead of the records while the log is open (`reserveAhead`); a
    /// copy taken then — the log as a crash leaves it — recovers every acknowledged record
    /// and reads the zeros as the clean end, not as a torn tail; extending the zeros as the
    /// records reach them keeps the records intact; closing cuts the zeros off.
    @Test func reservedZerosAreTheCleanEndAndAreCutOnClose() async throws {
        let f = try LogFixture()
        var options = WriteAheadLog.Options()
        options.reserveAhead = 4096
        let (log, _, _) = try f.open(options: options)
        for i in 0..<200 { _ = try await log.append(type: 1, payload: payload(i)) }  // ~10 KB: the zeros are extended
        let path = "\(f.walDir)/\(try f.segments()[0])"
        let open = try PosixFileSystem().read(path)
        let recordsEnd = WALFormat.headerSize + (0..<200).reduce(0) { $0 + WALFormat.recordHeaderSize + payload($1).count + 16 }
        #expect(open.count > recordsEnd && open[recordsEnd...].allSatisfy { $0 == 0 })

        // The log as a crash would leave it (the open file, zeros and all), in another directory.
        let crashed = try LogFixture()
        try PosixFileSystem().createDirectory(crashed.walDir)
        try Data(open).write(to: URL(fileURLWithPath: "\(crashed.walDir)/\(try f.segments()[0])"))
        let (recovered, report, records) = try crashed.open(keys: f.keys)
        #expect(records.map(\.sequence) == Array(1...200) && records.map(\.payload) == (0..<200).map(payload))
        #expect(report.truncated.isEmpty && report.lastSequence == 200)
        recovered.close()
        // Recovery cut the zeros off (they are of no use once a new segment is started).
        #expect(try PosixFileSystem().read("\(crashed.walDir)/\(try f.segments()[0])").count == recordsEnd)

        log.close()
        #expect(try PosixFileSystem().read(path).count == recordsEnd)
        let (_, again, all) = try f.open(options: options)
        #expect(all.count == 200 && again.truncated.isEmpty)
    }

    /// Zeros are the clean end only when nothing but zeros follows: a torn record before
    /// them is still cut and reported, and a valid record after them is still a hard error.
    @Test func zerosEndTheLogOnlyWhenNothingFollowsThem() async throws {
        let f = try LogFixture()
        try await f.write(groups: Array(repeating: 1, count: 10))
        let path = "\(f.walDir)/\(try f.segments()[0])"
        let good = try PosixFileSystem().read(path)
        let last = good.count - singleDigitRecordSize

        // Half of the last record, then zeros: a torn write into reserved space.
        var torn = Array(good[..<(last + singleDigitRecordSize / 2)])
        torn += [UInt8](repeating: 0, count: 8192)
        try Data(torn).write(to: URL(fileURLWithPath: path))
        let (reopened, report, records) = try f.open()
        reopened.close()
        #expect(records.count == 9 && report.truncated.count == 1 && report.truncated[0].offset == last)

        // The ninth record zeroed, the tenth (a later group commit) intact after it: damage, not an end.
        let g = try LogFixture()
        try await g.write(groups: Array(repeating: 1, count: 10))
        try g.zeroRecord(8)
        #expect(throws: WALError.self) { _ = try g.open() }
    }

    /// Until its fdatasync returns, a group commit's pages may reach the disk in any order:
    /// a crash can leave a hole inside the last group with its later records intact. That
    /// is a torn tail (cut, reported); the same hole in a group that a later group follows
    /// is damage. Each record's group offset (format version 2) tells the two apart.
    @Test func aHoleInsideTheLastGroupCommitIsATornTail() async throws {
        let f = try LogFixture()
        try await f.write(groups: [1, 1, 1, 5])  // records 4-8 in one group commit
        try f.zeroRecord(4)
        let (again, report, records) = try f.open()
        again.close()
        #expect(records.map(\.sequence) == [1, 2, 3, 4])
        #expect(report.truncated.count == 1 && report.truncated[0].offset == WALFormat.headerSize + 4 * singleDigitRecordSize)

        // The same hole in record 2, whose group (itself alone) later groups follow: damage.
        let g = try LogFixture()
        try await g.write(groups: [1, 1, 1])
        try g.zeroRecord(1)
        #expect(throws: WALError.self) { _ = try g.open() }
    }

    /// A hole in a group of several records, with more of that group and then a later
    /// group behind it: the later group proves the hole's group was durable — damage.
    @Test func aHoleInAGroupWithALaterGroupBehindItIsDamage() async throws {
        let f = try LogFixture()
        try await f.write(groups: [1, 1, 4, 1, 1])  // records 3-6 in one group commit
        try f.zeroRecord(3)  // record 4: the group's second
        #expect(throws: WALError.self) { _ = try f.open() }
    }

    /// `read(through:)` (the server reading its own audit stream) hands out exactly the
    /// records through that sequence, across segments, and takes damage there for what it is.
    @Test func readingThroughASequenceStopsThere() async throws {
        let f = try LogFixture()
        try await f.writeInSmallSegments(100)
        #expect(try f.segments().count > 3)
        for through in [UInt64(1), 37, 99, 100] {
            var seen: [UInt64] = []
            _ = try WriteAheadLog.read(directory: f.walDir, keyRing: f.keys, through: through) { seen.append($0.sequence) }
            #expect(seen == Array(1...through))
        }
        // Past the end of the log: an error, not a short answer.
        #expect(throws: WALError.self) { _ = try WriteAheadLog.read(directory: f.walDir, keyRing: f.keys, through: 101) { _ in } }
        // The last record damaged: through 99 reads; through 100 is damage (it was acknowledged).
        let last = "\(f.walDir)/\(try f.segments().last!)"
        var bytes = try PosixFileSystem().read(last)
        bytes[bytes.count - 3] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: last))
        _ = try WriteAheadLog.read(directory: f.walDir, keyRing: f.keys, through: 99) { _ in }
        #expect(throws: WALError.self) { _ = try WriteAheadLog.read(directory: f.walDir, keyRing: f.keys, through: 100) { _ in } }
    }

    /// Segments of format version 1 (written before version 2; no group offsets, the
    /// bytes zero, as a group of one has them) still read, and new writes go to version 2.
    @Test func versionOneSegmentsStillRead() async throws {
        let f = try LogFixture()
        try await f.write(groups: [1, 1, 1])
        let path = "\(f.walDir)/\(try f.segments()[0])"
        var bytes = try PosixFileSystem().read(path)
        #expect(bytes.readBigEndianUInt16(at: 8) == 2)
        // The header as version 1 wrote it: version 1, its CRC again.
        bytes[8] = 0
        bytes[9] = 1
        let crc = CRC32C.checksum(bytes[0..<56])
        for k in 0..<4 { bytes[56 + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(k))) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let (again, report, records) = try f.open()
        #expect(records.map(\.payload) == (0..<3).map(payload) && report.truncated.isEmpty)
        // New writes go to a new segment of version 2.
        #expect(try await again.append(type: 1, payload: [4]) == 4)
        again.close()
        let newest = try PosixFileSystem().read("\(f.walDir)/\(try f.segments().last!)")
        #expect(newest.readBigEndianUInt16(at: 8) == 2)
    }

    @Test func corruptionFollowedByGoodRecordsIsAHardError() async throws {
        let f = try LogFixture()
        let (log, _, _) = try f.open()
        for i in 0..<10 { _ = try await log.append(type: 1, payload: payload(i)) }
        log.close()
        let path = "\(f.walDir)/\(try f.segments()[0])"
        var bytes = try PosixFileSystem().read(path)
        let third = WALFormat.headerSize + 2 * singleDigitRecordSize
        bytes[third + WALFormat.recordHeaderSize + 3] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: WALError.self) { _ = try f.open() }
        do {
            _ = try f.open()
        } catch let e as WALError {
            guard case let .corruptRecord(file, offset, _) = e else {
                Issue.record("expected corruptRecord, got \(e)")
                return
            }
            #expect(file == path && offset == third)
        }
    }

    @Test func wrongKeyIsRefusedNamingTheFile() async throws {
        let f = try LogFixture()
        let (log, _, _) = try f.open()
        _ = try await log.append(type: 1, payload: [1, 2, 3])
        log.close()
        let other = try LogFixture()
        let path = "\(f.walDir)/\(try f.segments()[0])"
        #expect(throws: WALError.decryptionFailed(file: path, offset: WALFormat.headerSize)) { _ = try f.open(keys: other.keys) }
    }

    @Test func segmentsRollAtTheConfiguredSize() async throws {
        let f = try LogFixture()
        try await f.writeInSmallSegments(100)
        #expect(try f.segments().count > 3)
        let (_, report, records) = try f.open()
        let segmentCount = try f.segments().count
        #expect(records.map(\.sequence) == Array(1...100) && report.segments == segmentCount)
    }

    /// An fdatasync failure refuses the write, abandons the segment, and later writes go
    /// to a new one; after a restart only acknowledged writes are there.
    @Test func failedSyncIsNeverAcknowledgedNorReplayed() async throws {
        let f = try LogFixture()
        let faults = FaultyFileSystem()
        let (log, _, _) = try f.open(fs: faults)
        #expect(try await log.append(type: 1, payload: [1]) == 1)
        faults.failNextSync.store(true, ordering: .relaxed)
        await #expect(throws: WALWriteError.self) { _ = try await log.append(type: 1, payload: [2]) }
        // Blocked until the owner has caught up.
        await #expect(throws: WALWriteError.self) { _ = try await log.append(type: 1, payload: [9]) }
        log.unblock()
        #expect(try await log.append(type: 1, payload: [3]) == 2)
        log.close()
        let (_, report, records) = try f.open()
        #expect(records.map(\.payload) == [[1], [3]])
        #expect(records.map(\.sequence) == [1, 2])
        #expect(report.lastSequence == 2)
    }

    /// A failed sync whose cut also failed leaves never-acknowledged records in the
    /// abandoned segment; damage there must not stop recovery.
    @Test func damageAfterTheCutOfAnAbandonedSegmentIsIgnored() async throws {
        let f = try LogFixture()
        let faults = FaultyFileSystem()
        let (log, _, _) = try f.open(fs: faults)
        for i in 0..<2 { _ = try await log.append(type: 1, payload: payload(i)) }
        // Hold the writer inside the sync of record 3, queue records 4 and 5 behind it so
        // they form one batch, and make that batch's sync and cut fail: both stay in the
        // first segment, never acknowledged.
        faults.holdSync.store(true, ordering: .relaxed)
        let done = Atomic<Int>(0)
        log.append(type: 1, payload: payload(2)) { _ in done.add(1, ordering: .relaxed) }
        try await faults.waitUntilHeld()
        log.append(type: 1, payload: payload(3)) { _ in done.add(1, ordering: .relaxed) }
        log.append(type: 1, payload: payload(4)) { _ in done.add(1, ordering: .relaxed) }
        faults.failNextSync.store(true, ordering: .relaxed)
        faults.failTruncate.store(true, ordering: .relaxed)
        faults.holdSync.store(false, ordering: .relaxed)
        while done.load(ordering: .relaxed) < 3 { try await Task.sleep(for: .milliseconds(5)) }
        faults.failTruncate.store(false, ordering: .relaxed)
        log.unblock()
        let after = try await log.append(type: 1, payload: payload(9))
        log.close()
        let first = "\(f.walDir)/\(try f.segments()[0])"
        var bytes = try PosixFileSystem().read(first)
        let recordSize = singleDigitRecordSize
        let acknowledgedEnd = WALFormat.headerSize + 3 * recordSize
        // Records 4 and 5 are still there (then the zeros reserved ahead, which the failed
        // cut left too); damage 4, leave 5 valid behind it.
        try #require(bytes.count >= acknowledgedEnd + 2 * recordSize)
        #expect(bytes[(acknowledgedEnd + 2 * recordSize)...].allSatisfy { $0 == 0 })
        bytes[acknowledgedEnd + WALFormat.recordHeaderSize + 1] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: first))
        let (_, _, records) = try f.open()
        #expect(records.map(\.sequence) == Array(1...3) + [after])
        #expect(records.last?.payload == payload(9))
    }
}

extension WriteAheadLogTests {
    /// The segment after an abandoned one holds its cut in its header. When that segment
    /// is abandoned too, before any record in it was acknowledged, its replacement takes
    /// its name: the old one is replaced only once the new one is durable, so a disk that
    /// refuses the replacement leaves the cut in place and recovery still drops the record
    /// that was refused.
    @Test func aRefusedReplacementLeavesTheCutInPlace() async throws {
        let f = try LogFixture()
        let faults = FaultyFileSystem()
        let (log, _, _) = try f.open(fs: faults)
        #expect(try await log.append(type: 1, payload: payload(0)) == 1)
        // Record 2's sync and cut fail: it stays, complete, in the first segment; the second
        // segment's header says acknowledged writes ended at 1.
        faults.failNextSync.store(true, ordering: .relaxed)
        faults.failTruncate.store(true, ordering: .relaxed)
        await #expect(throws: WALWriteError.self) { _ = try await log.append(type: 1, payload: payload(1)) }
        faults.failTruncate.store(false, ordering: .relaxed)
        log.unblock()
        #expect(try f.segments().count == 2)
        // The second segment's first batch fails too, and the disk refuses its replacement.
        faults.failNextSync.store(true, ordering: .relaxed)
        faults.failReplacement.store(true, ordering: .relaxed)
        await #expect(throws: WALWriteError.self) { _ = try await log.append(type: 1, payload: payload(2)) }
        log.close()
        #expect(try f.segments().count == 2, "the segment holding the cut is still there")
        let (_, report, records) = try f.open()
        #expect(records.map(\.sequence) == [1] && records.map(\.payload) == [payload(0)])
        #expect(report.lastSequence == 1)
    }
}

@Suite struct WriteAheadLogLimitTests {
    @Test func oversizedRecordsAreRefusedBeforeTheyReachTheLog() async throws {
        let f = try LogFixture()
        let (log, _, _) = try f.open()
        await #expect(throws: WALWriteError.self) { _ = try await log.append(type: 1, payload: [UInt8](repeating: 0, count: 16 << 20)) }
        #expect(try await log.append(type: 1, payload: [1]) == 1)
        log.close()
        // Appending after close fails (asynchronously), it does not hang or crash.
        await #expect(throws: WALWriteError.self) { _ = try await log.append(type: 1, payload: [2]) }
    }
}

/// Real files, with switches that make the disk fail as disks do: the next fdatasync
/// fails (EIO); every write fails with an errno (ENOSPC: the disk is full; EIO) until the
/// switch is cleared, new files too; or the next write is short (half its bytes reach the
/// file, then EIO).
final class FaultyFileSystem: StoreFileSystem, @unchecked Sendable {
    let real = PosixFileSystem()
    let failNextSync = Atomic<Bool>(false)
    /// While not 0, every append and every new file fails with this errno.
    let failWrites = Atomic<Int32>(0)
    let shortNextWrite = Atomic<Bool>(false)
    let failTruncate = Atomic<Bool>(false)
    /// Counts appends down; the one that takes it from 1 to 0 and every later one fail
    /// (see `failWritesAfter`).
    let appendsBeforeFailing = Atomic<Int>(0)
    let errnoAfterAppends = Atomic<Int32>(0)

    /// `appends` appends succeed, then every write fails with `errno` until `failWrites` is cleared.
    func failWritesAfter(appends: Int, errno: Int32) {
        errnoAfterAppends.store(errno, ordering: .relaxed)
        appendsBeforeFailing.store(appends + 1, ordering: .relaxed)
    }
    /// While set, each fdatasync waits (after deciding whether to fail) until it is cleared.
    let holdSync = Atomic<Bool>(false)
    /// How many fdatasyncs are waiting on `holdSync` now: a test waits for its write to be
    /// held rather than sleeping and hoping.
    let syncsHeld = Atomic<Int>(0)

    /// Waits (politely, off no thread) until `count` fdatasyncs are held.
    func waitUntilHeld(_ count: Int = 1) async throws {
        for _ in 0..<6000 where syncsHeld.load(ordering: .relaxed) < count { try await Task.sleep(for: .milliseconds(5)) }
        #expect(syncsHeld.load(ordering: .relaxed) >= count, "no fdatasync was held")
    }

    final class File: AppendFile {
        let inner: any AppendFile
        let owner: FaultyFileSystem
        init(_ inner: any AppendFile, _ owner: FaultyFileSystem) {
            self.inner = inner
            self.owner = owner
        }
        var path: String { inner.path }
        func append(_ bytes: UnsafeRawBufferPointer) throws {
            if owner.appendsBeforeFailing.wrappingSubtract(1, ordering: .relaxed).oldValue == 1 {
                owner.failWrites.store(owner.errnoAfterAppends.load(ordering: .relaxed), ordering: .relaxed)
            }
            let errno = owner.failWrites.load(ordering: .relaxed)
            if errno != 0 { throw StoreIOError("write", path, errno: errno) }
            if owner.shortNextWrite.exchange(false, ordering: .relaxed) {
                try inner.append(UnsafeRawBufferPointer(rebasing: bytes.prefix(bytes.count / 2)))
                throw StoreIOError("write (short)", path, errno: EIO)
            }
            try inner.append(bytes)
        }
        func reserve(upTo size: Int) throws {
            let errno = owner.failWrites.load(ordering: .relaxed)
            if errno != 0 { throw StoreIOError("write (reserve)", path, errno: errno) }
            try inner.reserve(upTo: size)
        }
        func sync() throws {
            let fail = owner.failNextSync.exchange(false, ordering: .relaxed)
            if owner.holdSync.load(ordering: .relaxed) {
                owner.syncsHeld.add(1, ordering: .relaxed)
                while owner.holdSync.load(ordering: .relaxed) { usleep(1000) }
                owner.syncsHeld.subtract(1, ordering: .relaxed)
            }
            if fail { throw StoreIOError("fdatasync", path, errno: EIO) }
            try inner.sync()
        }
        func truncate(to size: Int) throws {
            if owner.failTruncate.load(ordering: .relaxed) { throw StoreIOError("truncate", path, errno: EIO) }
            try inner.truncate(to: size)
        }
        func close() { inner.close() }
    }

    /// While set, every new file made after one whose name was taken fails (EIO): the disk
    /// refuses the replacement of an abandoned segment.
    let failReplacement = Atomic<Bool>(false)
    private let sawTakenName = Atomic<Bool>(false)

    func createNew(_ path: String) throws -> any AppendFile {
        let errno = failWrites.load(ordering: .relaxed)
        if errno != 0 { throw StoreIOError("create", path, errno: errno) }
        if failReplacement.load(ordering: .relaxed) && sawTakenName.load(ordering: .relaxed) { throw StoreIOError("create", path, errno: EIO) }
        do {
            return File(try real.createNew(path), self)
        } catch let e as StoreIOError where e.errno == EEXIST {
            sawTakenName.store(true, ordering: .relaxed)
            throw e
        }
    }
    func read(_ path: String) throws -> [UInt8] { try real.read(path) }
    func truncate(_ path: String, to size: Int) throws { try real.truncate(path, to: size) }
    func list(_ directory: String) throws -> [String] { try real.list(directory) }
    func remove(_ path: String) throws { try real.remove(path) }
    func rename(_ from: String, _ to: String) throws { try real.rename(from, to) }
    func createDirectory(_ path: String) throws { try real.createDirectory(path) }
    func syncDirectory(_ path: String) throws { try real.syncDirectory(path) }
}

extension Array where Element == UInt8 {
    func readBigEndianUInt16(at offset: Int) -> UInt16 { UInt16(self[offset]) << 8 | UInt16(self[offset + 1]) }
}
