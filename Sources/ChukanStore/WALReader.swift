/// One record recovered from the log.
public struct WALRecord: Equatable, Sendable {
    public var sequence: UInt64
    public var type: UInt8
    public var payload: [UInt8]

    public init(sequence: UInt64, type: UInt8, payload: [UInt8]) {
        self.sequence = sequence
        self.type = type
        self.payload = payload
    }
}

/// Why the log cannot be replayed. Every case names the file, and the offset where it
/// applies; none carries data.
public enum WALError: Error, Equatable, Sendable, CustomStringConvertible {
    case badHeader(file: String)
    case wrongTenant(file: String, found: String)
    case corruptRecord(file: String, offset: Int, reason: String)
    case decryptionFailed(file: String, offset: Int)
    case sequenceGap(file: String, offset: Int, expected: UInt64, found: UInt64)
    case key(String)

    public var description: String {
        switch self {
        case let .badHeader(file): "\(file): not a Chukan WAL segment (bad header or checksum)"
        case let .wrongTenant(file, found): "\(file): segment belongs to tenant \(found)"
        case let .corruptRecord(file, offset, reason): "\(file) at offset \(offset): corrupt record (\(reason)) followed by valid records; refusing to skip it"
        case let .decryptionFailed(file, offset): "\(file) at offset \(offset): record does not decrypt (wrong key or changed bytes)"
        case let .sequenceGap(file, offset, expected, found): "\(file) at offset \(offset): expected sequence \(expected), found \(found)"
        case let .key(m): m
        }
    }
}

/// What recovery found and did, for the log line and `chukanctl`.
public struct WALRecoveryReport: Equatable, Sendable {
    public var segments = 0
    public var records = 0
    public var lastSequence: UInt64 = 0
    /// Torn tails cut: file and the offset it was cut back to.
    public var truncated: [(file: String, offset: Int)] = []
    /// Segments that ended before the loaded snapshot, moved into this folder.
    public var setAside: (folder: String, segments: Int)?

    public static func == (a: Self, b: Self) -> Bool {
        a.segments == b.segments && a.records == b.records && a.lastSequence == b.lastSequence
            && a.setAside?.folder == b.setAside?.folder && a.setAside?.segments == b.setAside?.segments
            && a.truncated.map(\.file) == b.truncated.map(\.file) && a.truncated.map(\.offset) == b.truncated.map(\.offset)
    }
}

/// Reads segments back, checking CRCs, sequence order and the AEAD tag of every record.
enum WALReader {
    struct Segment {
        var header: WALFormat.SegmentHeader
        var records: [WALRecord]
        /// The offset after the last good record.
        var goodEnd: Int
        /// Set when the segment ends in a torn or corrupt tail.
        var tornAt: Int?
    }

    /// Parses one segment. A bad record followed by a good one is a hard error; a bad
    /// record at the end (a torn write) is reported through `tornAt`; zeros to the end
    /// are the clean end of a segment written with space reserved ahead. With `lastAcknowledged`
    /// (an abandoned segment: the next segment's header says where acknowledged writes
    /// ended) reading stops there: what follows was never acknowledged, damaged or not.
    static func read(_ bytes: [UInt8], file: String, keyRing: TenantKeyRing, lastAcknowledged: UInt64? = nil) throws -> Segment {
        guard let header = WALFormat.SegmentHeader.decode(bytes[...]) else { throw WALError.badHeader(file: file) }
        guard header.tenant == keyRing.tenant else { throw WALError.wrongTenant(file: file, found: header.tenant) }
        let tenantKey: [UInt8]
        do { tenantKey = try keyRing.key(version: header.keyVersion) } catch { throw WALError.key("\(file): \(error)") }
        let cipher = try AESGCM(key: WALFormat.segmentKey(tenantKey: tenantKey, header: header))
        var records: [WALRecord] = []
        var offset = WALFormat.headerSize
        var expected = header.firstSequence
        while offset < bytes.count {
            if let last = lastAcknowledged, expected > last { break }
            switch parseRecord(bytes, at: offset, version: header.version) {
            case let .ok(type, sequence, _, dataRange, end):
                guard sequence == expected else {
                    throw WALError.sequenceGap(file: file, offset: offset, expected: expected, found: sequence)
                }
                let prefix = Array(bytes[offset..<offset + 16])
                let payload: [UInt8]
                do {
                    payload = try bytes[dataRange].withUnsafeBytes { data in
                        try prefix.withUnsafeBytes { aad in
                            try cipher.open(nonce: WALFormat.nonce(sequence: sequence), ciphertextAndTag: data, aad: aad)
                        }
                    }
                } catch {
                    throw WALError.decryptionFailed(file: file, offset: offset)
                }
                records.append(WALRecord(sequence: sequence, type: type, payload: payload))
                expected += 1
                offset = end
            case let .bad(reason):
                // Zeros to the end are space reserved ahead of the records
                // (`WriteAheadLog.Options.reserveAhead`): the log's clean end.
                if Self.allZero(bytes, from: offset) {
                    return Segment(header: header, records: records, goodEnd: offset, tornAt: nil)
                }
                // Torn tail, or corruption in the middle? A record after it that a later group
                // commit wrote proves this one had been made durable: damage. (A group
                // commit's pages reach the disk in any order until its fdatasync returns, so
                // after a crash its own later records may stand behind a hole.) Version 1
                // records carry no group offset: any valid record after it is damage.
                if let later = laterGroupRecord(bytes, after: offset, damagedSequence: expected, version: header.version) {
                    throw WALError.corruptRecord(file: file, offset: offset, reason: "\(reason); a valid record of a later group commit follows at offset \(later)")
                }
                return Segment(header: header, records: records, goodEnd: offset, tornAt: offset)
            }
        }
        return Segment(header: header, records: records, goodEnd: offset, tornAt: nil)
    }

    /// Whether every byte from `offset` to the end is zero (a word at a time: a segment
    /// may end in megabytes of them).
    static func allZero(_ b: [UInt8], from offset: Int) -> Bool {
        b.withUnsafeBytes { raw in
            var i = offset
            while i < raw.count && i % 8 != 0 {
                if raw[i] != 0 { return false }
                i += 1
            }
            while i + 8 <= raw.count {
                if raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { return false }
                i += 8
            }
            while i < raw.count {
                if raw[i] != 0 { return false }
                i += 1
            }
            return true
        }
    }

    enum Parsed {
        case ok(type: UInt8, sequence: UInt64, groupOffset: UInt64, data: Range<Int>, end: Int)
        case bad(String)
    }

    static func parseRecord(_ b: [UInt8], at offset: Int, version: UInt16) -> Parsed {
        guard b.count - offset >= WALFormat.recordHeaderSize else { return .bad("truncated record header") }
        let length = Int(b.readBE(UInt32.self, at: offset))
        guard length >= AESGCM.tagSize, length <= WALFormat.maxRecordData else { return .bad("impossible length \(length)") }
        let end = offset + WALFormat.recordHeaderSize + length
        guard end <= b.count else { return .bad("truncated record data") }
        // Version 1 reserved these bytes; version 2 keeps the group offset there.
        let groupOffset = UInt64(b[offset + 5]) << 16 | UInt64(b[offset + 6]) << 8 | UInt64(b[offset + 7])
        guard version >= 2 || groupOffset == 0 else { return .bad("reserved bytes set") }
        let stored = b.readBE(UInt32.self, at: offset + 16)
        var crc = b[offset..<offset + 16].withUnsafeBytes { CRC32C.checksum($0) }
        crc = b[(offset + WALFormat.recordHeaderSize)..<end].withUnsafeBytes { CRC32C.update(crc, $0) }
        guard crc == stored else { return .bad("checksum mismatch") }
        return .ok(type: b[offset + 4], sequence: b.readBE(UInt64.self, at: offset + 8), groupOffset: groupOffset, data: (offset + WALFormat.recordHeaderSize)..<end, end: end)
    }

    /// The offset of a valid record after `offset` that a group commit after the one of
    /// `damagedSequence` wrote (its group began after that sequence), if any. For version
    /// 1, any valid record at or after that sequence.
    static func laterGroupRecord(_ b: [UInt8], after offset: Int, damagedSequence: UInt64, version: UInt16) -> Int? {
        var o = offset + 1
        while let found = firstValidRecord(b, after: o - 1, sequenceAtLeast: damagedSequence, version: version) {
            guard version >= 2 else { return found }
            // A group offset the writer cannot have written (past the sequence) is damage too.
            if case let .ok(_, sequence, groupOffset, _, _) = parseRecord(b, at: found, version: version),
               groupOffset > sequence || sequence - groupOffset > damagedSequence {
                return found
            }
            o = found + 1
        }
        return nil
    }

    /// The offset of the first record after `offset` whose checksum verifies, if any.
    /// Only offsets whose sequence field is plausible are checksummed, so a long garbage
    /// tail costs a scan, not a CRC per byte.
    static func firstValidRecord(_ b: [UInt8], after offset: Int, sequenceAtLeast minimum: UInt64, version: UInt16) -> Int? {
        var o = offset + 1
        while o + WALFormat.recordHeaderSize <= b.count {
            let sequence = b.readBE(UInt64.self, at: o + 8)
            if sequence >= minimum && sequence - minimum < 1 << 32, case .ok = parseRecord(b, at: o, version: version) { return o }
            o += 1
        }
        return nil
    }
}
