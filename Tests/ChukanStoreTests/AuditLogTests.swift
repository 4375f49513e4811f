import ChukanCore
import ChukanProto
import ChukanStore
import Foundation
import Testing

/// The audit trail's chain: intact across restarts and failed syncs; a forged, dropped,
/// reordered or changed record is named by `verify`.
@Suite struct AuditLogTests {
    let dir = NSTemporaryDirectory() + "chukan-audit-\(UUID().uuidString)"
    let keys: TenantKeyRing

    init() throws {
        try TenantKeyRing.addVersion(tenant: "012041", directory: dir + "-keys")
        keys = try TenantKeyRing.load(tenant: "012041", directory: dir + "-keys")
    }

    func entry(_ i: Int) -> AuditRecord {
        var r = AuditRecord()
        r.principal = "clerk-\(i)"
        r.operation = "chukan.v1.Inquiry/Lookup"
        r.subject = "P\(i)"
        return r
    }

    /// Appends a record straight to the log, as someone holding the key could.
    func forge(_ r: AuditRecord) async throws {
        let (log, _) = try WriteAheadLog.open(directory: dir, keyRing: keys) { _ in }
        _ = try await log.append(type: AuditLog.recordType, payload: r.encodedBytes)
        log.close()
    }

    @Test func theChainHoldsAcrossRestartsAndNamesAForgedRecord() async throws {
        var audit = try AuditLog.open(directory: dir, keyRing: keys)
        for i in 1...3 { #expect(try await audit.record(entry(i)) == UInt64(i)) }
        audit.close()
        audit = try AuditLog.open(directory: dir, keyRing: keys)
        for i in 4...5 { try await audit.record(entry(i)) }
        audit.close()
        let records = try AuditLog.read(directory: dir, keyRing: keys)
        #expect(records.map(\.subject) == (1...5).map { "P\($0)" })
        #expect(try AuditLog.verify(directory: dir, keyRing: keys).firstBad == nil)

        // A record rewritten by someone with the key: its predecessor's hash is not the real one.
        var forged = entry(6)
        forged.sequence = 6
        forged.previousHash = SHA256.hash(try storedBytes(dir)[3])  // record 4's, not 5's
        try await forge(forged)
        let v = try AuditLog.verify(directory: dir, keyRing: keys)
        #expect(v.records == 5)
        #expect(v.firstBad?.contains("record 6 does not follow record 5") == true, "\(v.firstBad ?? "nil")")
        // And the server refuses to build on a broken chain.
        #expect(throws: (any Error).self) { _ = try AuditLog.open(directory: dir, keyRing: keys) }
    }

    /// A query's read of a stream whose last record is damaged (a changed byte reads like
    /// a torn write) lists the records before it and says where the damage is.
    @Test func aReadSaysWhereADamagedTailIs() async throws {
        let audit = try AuditLog.open(directory: dir, keyRing: keys)
        for i in 1...4 { try await audit.record(entry(i)) }
        audit.close()
        #expect(try AuditLog.readReportingTail(directory: dir, keyRing: keys).damagedTail == nil)
        let segment = "\(dir)/\(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".wal") }.sorted().last!)"
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: segment))
        // The last record's final byte: records sit before the zeros reserved ahead.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: segment))
        let end = try #require(bytes.lastIndex { $0 != 0 })
        try handle.seek(toOffset: UInt64(end))
        try handle.write(contentsOf: Data([bytes[end] ^ 0xFF]))
        try handle.close()
        let (records, tail) = try AuditLog.readReportingTail(directory: dir, keyRing: keys)
        #expect(records.map(\.subject) == ["P1", "P2", "P3"])
        #expect(tail?.contains("the stream ends in a damaged record") == true, "\(tail ?? "nil")")
    }

    @Test func aDroppedRecordAndAChangedByteAreNamed() async throws {
        let audit = try AuditLog.open(directory: dir, keyRing: keys)
        for i in 1...3 { try await audit.record(entry(i)) }
        audit.close()
        // Record 4 "dropped": what follows claims to be record 5.
        var skipping = entry(5)
        skipping.sequence = 5
        skipping.previousHash = SHA256.hash(try storedBytes(dir)[2])  // record 3's: only the sequence is wrong
        try await forge(skipping)
        #expect(try AuditLog.verify(directory: dir, keyRing: keys).firstBad?.contains("out of order") == true)

        // A changed byte fails the record's checksum or tag: named with file and offset.
        let other = dir + "-b"
        let second = try AuditLog.open(directory: other, keyRing: keys)
        for i in 1...3 { try await second.record(entry(i)) }
        second.close()
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: other).first { $0.hasSuffix(".wal") })
        var bytes = try PosixFileSystem().read("\(other)/\(segment)")
        bytes[bytes.count - 40] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: "\(other)/\(segment)"))
        let v = try AuditLog.verify(directory: other, keyRing: keys)
        #expect(v.firstBad?.contains(segment) == true, "\(v.firstBad ?? "nil")")
        #expect(v.records < 3)
    }

    @Test func aFailedSyncIsUnavailableAndTheChainGoesOn() async throws {
        let faults = FaultyFileSystem()
        let audit = try AuditLog.open(directory: dir, keyRing: keys, fs: faults)
        try await audit.record(entry(1))
        faults.failNextSync.store(true, ordering: .relaxed)
        do {
            try await audit.record(entry(2))
            Issue.record("a record whose sync failed was acknowledged")
        } catch let e as RPCError {
            #expect(e.code == .unavailable)
        }
        #expect(try await audit.record(entry(3)) == 2)
        audit.close()
        let records = try AuditLog.read(directory: dir, keyRing: keys)
        #expect(records.map(\.subject) == ["P1", "P3"])
        #expect(try AuditLog.verify(directory: dir, keyRing: keys).firstBad == nil)
    }

    /// A segment abandoned after a failed flush may still hold the refused record (its cut
    /// failed too); the chain goes on from the next segment's record of that sequence. A
    /// purge of the abandoned segment ends its checkpoint at the cut, not at the refused
    /// record, so the stream still verifies and opens.
    @Test func aPurgeEndsAtTheCutOfAnAbandonedSegment() async throws {
        let faults = FaultyFileSystem()
        let audit = try AuditLog.open(directory: dir, keyRing: keys, fs: faults)
        let old = Int64(1_500_000_000_000), recent = Int64(1_790_000_000_000)
        var first = entry(1), refused = entry(2), kept = entry(3)
        (first.timeUnixMs, refused.timeUnixMs, kept.timeUnixMs) = (old, old, recent)
        try await audit.record(first)
        faults.failNextSync.store(true, ordering: .relaxed)
        faults.failTruncate.store(true, ordering: .relaxed)
        await #expect(throws: RPCError.self) { try await audit.record(refused) }
        faults.failTruncate.store(false, ordering: .relaxed)
        #expect(try await audit.record(kept) == 2)
        #expect(try await audit.purge(before: recent) == 1, "the refused record is not purged: it was never in the chain")
        audit.close()
        #expect(try AuditLog.verify(directory: dir, keyRing: keys).firstBad == nil)
        let reopened = try AuditLog.open(directory: dir, keyRing: keys)
        reopened.close()
        #expect(try AuditLog.read(directory: dir, keyRing: keys).map(\.subject).prefix(1) == ["P3"])
    }

    /// Records past retention go segment by segment; the rest still verifies from the
    /// checkpoint, across a restart; a checkpoint the chain does not back is found.
    @Test func purgingOldSegmentsKeepsTheChainVerifiable() async throws {
        var options = WriteAheadLog.Options()
        options.segmentSize = 2048  // a few records per segment
        var audit = try AuditLog.open(directory: dir, keyRing: keys, options: options)
        let old = Int64(1_500_000_000_000), recent = Int64(1_790_000_000_000)
        for i in 1...60 {
            var r = entry(i)
            r.timeUnixMs = i <= 40 ? old : recent
            try await audit.record(r)
        }
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".wal") }.count
        #expect(segments > 3)
        let before = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".wal") }.sorted()
        let copies = try before.map { try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\($0)")) }
        let purged = try await audit.purge(before: recent)
        #expect(purged > 0 && purged <= 40)
        // A purge cut short after its checkpoint, before its last deletion (they go oldest
        // first): the stream still verifies, skipping what the checkpoint covers.
        let after = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        let lastDeleted = try #require(before.indices.last { !after.contains(before[$0]) })
        try copies[lastDeleted].write(to: URL(fileURLWithPath: "\(dir)/\(before[lastDeleted])"))
        #expect(try AuditLog.verify(directory: dir, keyRing: keys).firstBad == nil)
        // And it opens: the server starts on it, stepping over what the checkpoint covers.
        audit.close()
        audit = try AuditLog.open(directory: dir, keyRing: keys, options: options)
        try FileManager.default.removeItem(atPath: "\(dir)/\(before[lastDeleted])")
        #expect(try await audit.purge(before: recent) == 0, "nothing more is old enough")
        try await audit.record(entry(61))
        audit.close()
        let left = try AuditLog.read(directory: dir, keyRing: keys)
        #expect(left.first?.sequence == UInt64(purged) + 1)
        #expect(left.contains { $0.operation == AuditLog.purgeOperation })
        #expect(left.last?.subject == "P61")
        #expect(try AuditLog.verify(directory: dir, keyRing: keys).firstBad == nil)
        audit = try AuditLog.open(directory: dir, keyRing: keys, options: options)  // recovery starts from the checkpoint
        try await audit.record(entry(62))
        audit.close()
        #expect(try AuditLog.verify(directory: dir, keyRing: keys).firstBad == nil)

        // Someone deletes one more segment and writes a checkpoint to cover it.
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".wal") }.sorted()
        let doomed = "\(dir)/\(names[0])"
        try FileManager.default.removeItem(atPath: doomed)
        let firstLeft = try firstRecord(dir)
        let fake = "records through \(firstLeft.sequence - 1) purged; sha256 of record \(firstLeft.sequence - 1) = \(firstLeft.previousHash.map { String(format: "%02x", $0) }.joined())\n"
        try fake.write(toFile: "\(dir)/CHECKPOINT", atomically: true, encoding: .utf8)
        let v = try AuditLog.verify(directory: dir, keyRing: keys)
        #expect(v.firstBad?.contains("not recorded in the chain") == true, "\(v.firstBad ?? "nil")")
        // Opening the stream finds it too: the tenant would not start on it. Nor does a
        // query list what is left as if it were the whole trail.
        #expect(throws: AuditChainError.self) { _ = try AuditLog.open(directory: dir, keyRing: keys, options: options) }
        #expect(throws: AuditChainError.self) { _ = try AuditLog.read(directory: dir, keyRing: keys) }
    }

    /// Each record's bytes as stored: what the next record's previous_hash covers (the
    /// chain's fields are appended to the encoded record, not in field order).
    func storedBytes(_ directory: String) throws -> [[UInt8]] {
        var all: [[UInt8]] = []
        _ = try WriteAheadLog.read(directory: directory, keyRing: keys) { all.append($0.payload) }
        return all
    }

    func firstRecord(_ directory: String) throws -> AuditRecord {
        var first: AuditRecord?
        _ = try WriteAheadLog.read(directory: directory, keyRing: keys) { r in
            if first == nil { first = try AuditRecord(protobuf: r.payload) }
        }
        return try #require(first)
    }
}
