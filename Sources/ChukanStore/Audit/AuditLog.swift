import ChukanCore
import ChukanProto
import Foundation
import Synchronization

/// One stream of the audit trail: `AuditRecord`s in a write-ahead log of their own
/// (`<directory>/`, encrypted under the stream's key like the register's log), each
/// holding the SHA-256 of the record before it. `record` returns once the record is
/// durable, so a caller that awaits it before answering never answers unrecorded.
///
/// The WAL's sequence numbers and checksums already find torn and changed bytes; the
/// chain makes a dropped, reordered or rewritten record visible to `AuditLog.verify`
/// even to someone who holds the key (docs/SECURITY.md, "The audit trail").
public final class AuditLog: Sendable {
    public static let recordType: UInt8 = 2
    public static let genesis = [UInt8](repeating: 0, count: SHA256.size)

    private struct Chain {
        /// Hash of the last record handed to the log (durable or not).
        var lastHash: [UInt8]
        var nextSequence: UInt64
        /// Bumped when the chain restarts after a failure; the failures of records queued
        /// before that restart were dealt with by it.
        var generation: UInt64 = 0
    }

    /// Hash and sequence of the last durable record: where the chain restarts after a
    /// failure. Apart from `Chain` so that the log's thread, which notes every record
    /// made durable, does not contend for the chain with the callers appending.
    private struct Durable {
        var hash: [UInt8]
        var sequence: UInt64
    }

    public let directory: String
    let keyRing: TenantKeyRing
    let fs: any StoreFileSystem
    private let log: WriteAheadLog
    private let chain: Locked<Chain>
    private let durable: Locked<Durable>
    /// Permit ids of 提供 this stream recorded, while their permits are valid.
    public let permits: PermitClaims

    private init(directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem, log: WriteAheadLog, lastHash: [UInt8], lastSequence: UInt64, permits: PermitClaims) {
        self.permits = permits
        self.directory = directory
        self.keyRing = keyRing
        self.fs = fs
        self.log = log
        chain = Locked(Chain(lastHash: lastHash, nextSequence: lastSequence + 1))
        durable = Locked(Durable(hash: lastHash, sequence: lastSequence))
    }

    /// Opens (or creates) the stream, checking the chain of what is there.
    public static func open(
        directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem = PosixFileSystem(), options: WriteAheadLog.Options = .init()
    ) throws -> AuditLog {
        let checkpoint = try AuditCheckpoint.read(directory: directory, fs: fs)
        var verifier = ChainVerifier(checkpoint: checkpoint)
        let permits = PermitClaims()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let (log, _) = try WriteAheadLog.open(directory: directory, keyRing: keyRing, fs: fs, options: options) { record in
            try verifier.check(record, file: directory)
            if let r = verifier.last, !r.permitId.isEmpty { permits.restore(r.permitId, expiresUnixMs: r.permitExpiresUnixMs, nowUnixMs: now) }
        }
        // As `verify`: a checkpoint stands only if the chain recorded that purge (one
        // written by hand to hide deleted segments is refused here too).
        if let c = checkpoint, !verifier.purgesSeen.contains(c.claim) {
            log.close()
            throw AuditChainError(description: Self.unrecordedCheckpoint(directory, c))
        }
        return AuditLog(directory: directory, keyRing: keyRing, fs: fs, log: log, lastHash: verifier.lastHash, lastSequence: verifier.lastSequence, permits: permits)
    }

    /// Appends `record` (its sequence and previous hash are set here) and returns once it
    /// is durable. Throws UNAVAILABLE when the log cannot make it durable.
    @discardableResult
    public func record(_ record: AuditRecord) async throws -> UInt64 {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<UInt64, Error>) in
            self.record(record) { continuation.resume(with: $0) }
        }
    }

    /// Appends `record`; `done` runs on the log's writer thread once it is durable, or with
    /// UNAVAILABLE when the log cannot make it durable. For callers that answer from an
    /// event loop without a task (`AccessControl.performNow`).
    public func record(_ record: AuditRecord, done: @escaping @Sendable (Result<UInt64, Error>) -> Void) {
        // The record is encoded before the chain is taken; the chain's lock covers only its
        // two fields, appended here, the hash and the hand-over to the log. Protobuf readers
        // take fields in any order, and the hash covers the bytes as stored.
        var body = record
        body.schemaVersion = 1
        body.sequence = 0
        body.previousHash = []
        let encoded = body.encoded(capacity: 512)  // a record is a few hundred bytes
        // Room for the chain's fields, so that appending them does not copy the bytes.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(encoded.readableBytes + Self.chainFieldsSize)
        bytes += encoded.readableBytesView
        chain.withLock { c in
            let sequence = c.nextSequence
            Self.appendChainFields(sequence: sequence, previousHash: c.lastHash, to: &bytes)
            c.lastHash = SHA256.hash(bytes)
            c.nextSequence += 1
            let hash = c.lastHash
            let generation = c.generation
            log.append(sequence: sequence, type: Self.recordType, payload: bytes) { [self] result in
                switch result {
                case .success:
                    durable.withLock { d in
                        if sequence > d.sequence {
                            d.sequence = sequence
                            d.hash = hash
                        }
                    }
                    done(.success(sequence))
                case let .failure(error):
                    // Everything queued behind this record failed with it; the chain
                    // continues from the last durable record.
                    chain.withLock { c in
                        guard c.generation == generation else { return }
                        let d = durable.withLock { $0 }
                        c.lastHash = d.hash
                        c.nextSequence = d.sequence + 1
                        c.generation += 1
                        log.unblock()
                    }
                    done(.failure(RPCError.unavailable("the audit record could not be made durable: \(error)")))
                }
            }
        }
    }

    /// The most bytes `appendChainFields` appends: two tags, a sequence of up to ten
    /// bytes, a length and the hash.
    static let chainFieldsSize = 1 + 10 + 1 + 1 + SHA256.size

    /// `sequence` (field 2, varint) and `previous_hash` (field 14, bytes) in protobuf's
    /// wire format, appended to a record encoded without them.
    public static func appendChainFields(sequence: UInt64, previousHash: [UInt8], to bytes: inout [UInt8]) {
        bytes.appendProtobufVarint(2 << 3 | 0)
        bytes.appendProtobufVarint(sequence)
        bytes.appendProtobufVarint(14 << 3 | 2)
        bytes.appendProtobufVarint(UInt64(previousHash.count))
        bytes.append(contentsOf: previousHash)
    }

    public func close() { log.close() }

    /// Every durable record of this stream, in order (disclosure, queries while serving).
    /// Reads through the last durable record only: the writer may be writing past it.
    public func readAll() throws -> [AuditRecord] { try Self.read(directory: directory, keyRing: keyRing, fs: fs, through: log.lastSequence) }

    // MARK: retention

    /// The operation of the record a purge writes into the chain.
    public static let purgeOperation = "chukan.audit/Purge"
    /// Records are kept this long (DOMAIN.md: 情報提供等記録, 7 years).
    public static let retentionYears = 7

    /// Deletes the oldest segments whose records were all made before `cutoffUnixMs` (never
    /// the segment being written). Before deleting, it records the purge in the chain and
    /// writes a checkpoint — the last purged record's sequence and hash — from which the
    /// rest still verifies. Returns how many records were purged.
    @discardableResult
    public func purge(before cutoffUnixMs: Int64) async throws -> Int {
        let names = try WriteAheadLog.segmentFiles(directory, fs: fs)
        var doomed: [String] = []
        var through: (sequence: UInt64, hash: [UInt8])?
        var purged = 0
        var next: [UInt8]? = nil
        for (i, name) in names.enumerated().dropLast() {
            let path = "\(directory)/\(name)"
            let bytes = try next ?? fs.read(path)
            // The next segment's header says where acknowledged records ended in this one: a
            // segment abandoned after a failed flush may hold a record past it that was never
            // acknowledged, and the chain goes on from the next segment's record instead.
            next = try fs.read("\(directory)/\(names[i + 1])")
            let limit = WALFormat.SegmentHeader.decode(next![...])?.previousLastAcknowledged
            let segment = try WALReader.read(bytes, file: path, keyRing: keyRing, lastAcknowledged: limit)
            guard let last = segment.records.last else { break }
            // Records are appended as they are made: a segment that ends with a record too
            // young to purge is kept without decoding the rest (a segment holds ~10^5).
            guard try AuditRecord(protobuf: last.payload).timeUnixMs < cutoffUnixMs else { break }
            let records = try segment.records.map { try AuditRecord(protobuf: $0.payload) }
            guard records.allSatisfy({ $0.timeUnixMs < cutoffUnixMs }) else { break }
            doomed.append(path)
            through = (last.sequence, SHA256.hash(last.payload))
            purged += records.count
        }
        guard let through else { return 0 }
        let checkpoint = AuditCheckpoint(sequence: through.sequence, hash: through.hash)
        var note = AuditRecord()
        note.operation = Self.purgeOperation
        note.subject = "through \(through.sequence)"
        note.outcomeDetail = checkpoint.claim
        note.timeUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        try await record(note)
        try checkpoint.write(directory: directory, fs: fs)
        for path in doomed { try fs.remove(path) }
        try fs.syncDirectory(directory)
        return purged
    }

    /// Reads a stream and checks its chain; the answer names the first bad record.
    public static func verify(directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem = PosixFileSystem()) throws -> AuditVerification {
        let checkpoint: AuditCheckpoint?
        do { checkpoint = try AuditCheckpoint.read(directory: directory, fs: fs) } catch {
            return AuditVerification(records: 0, firstBad: "\(error)", lastHash: [])
        }
        var verifier = ChainVerifier(checkpoint: checkpoint)
        do {
            let report = try WriteAheadLog.read(directory: directory, keyRing: keyRing, fs: fs) { record in
                try verifier.check(record, file: directory)
            }
            // A damaged last record reads like a torn write (the next start cuts it), but
            // it may as well be a change: either way the trail does not hold it.
            if let torn = report.truncated.first {
                let file = torn.file.contains("/") ? torn.file : "\(directory)/\(torn.file)"
                return AuditVerification(
                    records: verifier.count, firstBad: "\(file) at offset \(torn.offset): the stream ends in a damaged record (a torn write, or a change)",
                    lastHash: verifier.lastHash)
            }
        } catch let e as AuditChainError {
            return AuditVerification(records: verifier.count, firstBad: e.description, lastHash: verifier.lastHash)
        } catch let e as WALError {
            // Changed bytes fail their checksum or authentication tag before the chain is read.
            return AuditVerification(records: verifier.count, firstBad: e.description, lastHash: verifier.lastHash)
        }
        // A checkpoint stands only if the chain itself recorded that purge.
        if let c = checkpoint, !verifier.purgesSeen.contains(c.claim) {
            return AuditVerification(records: verifier.count, firstBad: unrecordedCheckpoint(directory, c), lastHash: verifier.lastHash)
        }
        return AuditVerification(records: verifier.count, firstBad: nil, lastHash: verifier.lastHash)
    }

    static func unrecordedCheckpoint(_ directory: String, _ c: AuditCheckpoint) -> String {
        "\(directory): the checkpoint (records through \(c.sequence) purged) is not recorded in the chain"
    }

    /// Every record of a stream, in order (for queries); fails on a broken chain, a
    /// checkpoint the chain did not record included.
    public static func read(directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem = PosixFileSystem(), through: UInt64? = nil) throws -> [AuditRecord] {
        try readReportingTail(directory: directory, keyRing: keyRing, fs: fs, through: through).records
    }

    /// `read`, and where the stream ends in a damaged record, which it stops before: a
    /// torn write (the server's group commit being written now, or cut at its next
    /// start) or a change — `verify` calls it damage, a query must say so too.
    public static func readReportingTail(
        directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem = PosixFileSystem(), through: UInt64? = nil
    ) throws -> (records: [AuditRecord], damagedTail: String?) {
        let checkpoint = try AuditCheckpoint.read(directory: directory, fs: fs)
        var verifier = ChainVerifier(checkpoint: checkpoint)
        var records: [AuditRecord] = []
        let report = try WriteAheadLog.read(directory: directory, keyRing: keyRing, fs: fs, through: through) { record in
            try verifier.check(record, file: directory)
            records.append(verifier.last!)
        }
        if let c = checkpoint, !verifier.purgesSeen.contains(c.claim) { throw AuditChainError(description: unrecordedCheckpoint(directory, c)) }
        let tail = report.truncated.first.map { torn in
            "\(torn.file.contains("/") ? torn.file : "\(directory)/\(torn.file)") at offset \(torn.offset): the stream ends in a damaged record (a torn write, or a change)"
        }
        return (records, tail)
    }
}

/// What `AuditLog.verify` found.
public struct AuditVerification: Sendable, Equatable {
    public var records: Int
    /// The first record that breaks the chain, and how; nil when the whole stream holds.
    public var firstBad: String?
    public var lastHash: [UInt8]
}

public struct AuditChainError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
}

/// Walks records in log order: each must decode, carry the next sequence number, and
/// name the hash of the record before it.
struct ChainVerifier {
    var lastHash = AuditLog.genesis
    var lastSequence: UInt64 = 0
    var count = 0
    var last: AuditRecord?
    /// What the chain's purge records say was purged.
    var purgesSeen: Set<String> = []

    /// From the start of the stream, or from where a purge left it.
    init(checkpoint: AuditCheckpoint? = nil) {
        if let c = checkpoint {
            lastHash = c.hash
            lastSequence = c.sequence
            skipThrough = (c.sequence, c.hash)
        }
    }

    /// Set from a checkpoint: records up to it may still be on disk when a purge stopped
    /// between writing the checkpoint and deleting the last old segment.
    var skipThrough: (sequence: UInt64, hash: [UInt8])?

    mutating func check(_ record: WALRecord, file: String) throws {
        if let skip = skipThrough, record.sequence <= skip.sequence {
            // Left over from an interrupted purge: the last of them must be the one the checkpoint names.
            if record.sequence == skip.sequence && SHA256.hash(record.payload) != skip.hash {
                throw AuditChainError(description: "\(file): record \(record.sequence) is not the one the checkpoint names")
            }
            return
        }
        let r: AuditRecord
        do { r = try AuditRecord(protobuf: record.payload) } catch {
            throw AuditChainError(description: "\(file): record \(record.sequence) is not an audit record")
        }
        guard r.sequence == lastSequence + 1, r.sequence == record.sequence else {
            throw AuditChainError(description: "\(file): record \(record.sequence) is out of order (expected \(lastSequence + 1))")
        }
        guard r.previousHash == lastHash else {
            throw AuditChainError(description: "\(file): record \(r.sequence) does not follow record \(lastSequence) (chain broken: a record was changed, dropped or reordered)")
        }
        lastHash = SHA256.hash(record.payload)
        lastSequence = r.sequence
        count += 1
        last = r
        if r.operation == AuditLog.purgeOperation { purgesSeen.insert(r.outcomeDetail) }
    }
}

/// Where a purged stream now starts: the sequence and hash of the last purged record.
/// Kept in `<stream>/CHECKPOINT` (written whole, synced, renamed into place); the chain
/// holds a purge record with the same claim, so the file cannot be made up afterwards.
struct AuditCheckpoint: Equatable {
    var sequence: UInt64
    var hash: [UInt8]

    static let fileName = "CHECKPOINT"

    /// The words the purge record carries, and the file too.
    var claim: String { "records through \(sequence) purged; sha256 of record \(sequence) = \(Hex.encode(hash))" }

    static func read(directory: String, fs: any StoreFileSystem) throws -> AuditCheckpoint? {
        let path = "\(directory)/\(fileName)"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let text = String(decoding: try fs.read(path), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = text.split(separator: " ")
        guard parts.count == 10, text.hasPrefix("records through "), let sequence = UInt64(parts[2]),
              let hex = parts.last, let hash = Hex.decode(hex), hash.count == 32 else {
            throw AuditChainError(description: "\(path): not an audit checkpoint")
        }
        let c = AuditCheckpoint(sequence: sequence, hash: hash)
        guard c.claim == text else { throw AuditChainError(description: "\(path): not an audit checkpoint") }
        return c
    }

    func write(directory: String, fs: any StoreFileSystem) throws {
        let temp = "\(directory)/\(Self.fileName).tmp"
        try? fs.remove(temp)
        let file = try fs.createNew(temp)
        try Array((claim + "\n").utf8).withUnsafeBytes { try file.append($0) }
        try file.sync()
        file.close()
        try fs.rename(temp, "\(directory)/\(Self.fileName)")
        try fs.syncDirectory(directory)
    }
}
