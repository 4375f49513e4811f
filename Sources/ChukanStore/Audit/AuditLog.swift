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
        /// Hash and sequence of the last durable record: where the chain restarts after a failure.
        var durableHash: [UInt8]
        var durableSequence: UInt64
        /// Bumped when the chain restarts after a failure; the failures of records queued
        /// before that restart were dealt with by it.
        var generation: UInt64 = 0
    }

    public let directory: String
    private let log: WriteAheadLog
    private let chain: Mutex<Chain>

    private init(directory: String, log: WriteAheadLog, lastHash: [UInt8], lastSequence: UInt64) {
        self.directory = directory
        self.log = log
        chain = Mutex(Chain(lastHash: lastHash, nextSequence: lastSequence + 1, durableHash: lastHash, durableSequence: lastSequence))
    }

    /// Opens (or creates) the stream, checking the chain of what is there.
    public static func open(directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem = PosixFileSystem()) throws -> AuditLog {
        var verifier = ChainVerifier()
        let (log, _) = try WriteAheadLog.open(directory: directory, keyRing: keyRing, fs: fs) { record in
            try verifier.check(record, file: directory)
        }
        return AuditLog(directory: directory, log: log, lastHash: verifier.lastHash, lastSequence: verifier.lastSequence)
    }

    /// Appends `record` (its sequence and previous hash are set here) and returns once it
    /// is durable. Throws UNAVAILABLE when the log cannot make it durable.
    @discardableResult
    public func record(_ record: AuditRecord) async throws -> UInt64 {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<UInt64, Error>) in
            chain.withLock { c in
                var r = record
                r.schemaVersion = 1
                r.sequence = c.nextSequence
                r.previousHash = c.lastHash
                let bytes = r.encodedBytes
                c.lastHash = SHA256.hash(bytes)
                c.nextSequence += 1
                let hash = c.lastHash
                let sequence = r.sequence
                let generation = c.generation
                log.append(sequence: sequence, type: Self.recordType, payload: bytes) { [self] result in
                    switch result {
                    case .success:
                        chain.withLock { c in
                            if sequence > c.durableSequence {
                                c.durableSequence = sequence
                                c.durableHash = hash
                            }
                        }
                        continuation.resume(returning: sequence)
                    case let .failure(error):
                        // Everything queued behind this record failed with it; the chain
                        // continues from the last durable record.
                        chain.withLock { c in
                            guard c.generation == generation else { return }
                            c.lastHash = c.durableHash
                            c.nextSequence = c.durableSequence + 1
                            c.generation += 1
                            log.unblock()
                        }
                        continuation.resume(throwing: RPCError.unavailable("the audit record could not be made durable: \(error)"))
                    }
                }
            }
        }
    }

    public func close() { log.close() }

    /// Reads a stream and checks its chain; the answer names the first bad record.
    public static func verify(directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem = PosixFileSystem()) throws -> AuditVerification {
        var verifier = ChainVerifier()
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
        return AuditVerification(records: verifier.count, firstBad: nil, lastHash: verifier.lastHash)
    }

    /// Every record of a stream, in order (for queries); fails on a broken chain.
    public static func read(directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem = PosixFileSystem()) throws -> [AuditRecord] {
        var verifier = ChainVerifier()
        var records: [AuditRecord] = []
        _ = try WriteAheadLog.read(directory: directory, keyRing: keyRing, fs: fs) { record in
            try verifier.check(record, file: directory)
            records.append(verifier.last!)
        }
        return records
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

    mutating func check(_ record: WALRecord, file: String) throws {
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
    }
}
