import ChukanProto
import ChukanRegister

/// The snapshot file format, version 1 (docs/SNAPSHOT.md has the full description).
///
///     header   72 bytes: "CHUKSNAP" · version u16 · reserved u16 · tenant 6 ASCII ·
///              reserved u16 · key version u32 · sequence u64 · record count u64 ·
///              created-at u64 (Unix seconds) · salt 16 · CRC-32C of the 64 bytes before u32 ·
///              reserved u32
///     chunks   each: sealed length u32 · CRC-32C of the sealed bytes u32 · sealed bytes
///              (AES-256-GCM of up to 1 MiB of entries; nonce = chunk number; associated
///              data = the header and the chunk number)
///     trailer  24 bytes: "CHUKEND\0" · chunk count u64 · CRC-32C of every byte before the
///              trailer u32 · reserved u32
///
/// The key is HKDF-SHA256(tenant key, salt, "chukan/snapshot/v1" ‖ tenant ‖ sequence).
/// Checksums cover ciphertext, so an operator without the key can verify a file.
/// Entries hold records and history only; indexes are rebuilt on load.
public enum SnapshotFormat {
    public static let magic: [UInt8] = Array("CHUKSNAP".utf8)
    public static let trailerMagic: [UInt8] = Array("CHUKEND".utf8) + [0]
    public static let version: UInt16 = 1
    public static let headerSize = 72
    public static let trailerSize = 24
    public static let chunkPlaintext = 1 << 20

    public struct Header: Equatable, Sendable {
        public var tenant: String
        public var keyVersion: UInt32
        /// The WAL sequence the snapshot includes.
        public var sequence: UInt64
        public var recordCount: UInt64
        public var createdAt: UInt64
        public var salt: [UInt8]

        public func encoded() -> [UInt8] {
            var b = FileHeaderCodec.begin(magic: magic, version: version, tenant: tenant)
            b.appendBE(keyVersion)
            b.appendBE(sequence)
            b.appendBE(recordCount)
            b.appendBE(createdAt)
            b += salt
            FileHeaderCodec.finish(&b)
            return b
        }

        public static func decode(_ b: ArraySlice<UInt8>) -> Header? {
            guard let h = FileHeaderCodec.open(b, magic: magic, version: version, size: headerSize) else { return nil }
            return Header(
                tenant: FileHeaderCodec.tenant(h),
                keyVersion: h.readBE(UInt32.self, at: 20), sequence: h.readBE(UInt64.self, at: 24),
                recordCount: h.readBE(UInt64.self, at: 32), createdAt: h.readBE(UInt64.self, at: 40), salt: Array(h[48..<64]))
        }
    }

    public static func fileName(sequence: UInt64) -> String {
        let hex = String(sequence, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex + ".snap"
    }

    static func key(tenantKey: [UInt8], header: Header) throws -> [UInt8] {
        var info = Array("chukan/snapshot/v1".utf8) + Array(header.tenant.utf8)
        info.appendBE(header.sequence)
        return try HKDF.sha256(key: tenantKey, salt: header.salt, info: info, length: AESGCM.keySize)
    }

    static func nonce(chunk: UInt64) -> [UInt8] {
        var n: [UInt8] = [0, 0, 0, 0]
        n.appendBE(chunk)
        return n
    }

    static func aad(header: [UInt8], chunk: UInt64) -> [UInt8] {
        var a = header
        a.appendBE(chunk)
        return a
    }

    // MARK: entries

    /// Entries whose id starts with this hold a remembered idempotent write
    /// (`chukan.v1.IdempotentWrite` in the record field), not a person.
    static let idempotencyPrefix = "#idem:"
    /// Entries whose id starts with this hold a staff account (`chukan.v1.StaffAccount`).
    static let staffPrefix = "#staff:"
    /// Entries whose id starts with this hold an export ticket (`chukan.v1.ExportTicket`).
    static let exportPrefix = "#export:"
    /// Entries whose id starts with this hold a held provision (`chukan.v1.PendingProvision`).
    static let pendingPrefix = "#pending:"
    /// Idempotent writes are kept in snapshots for two days (promised: at least one).
    static let idempotencyRetentionMs: Int64 = 48 * 3_600_000

    static func encode(id: String, entry: PersonEntry, into b: inout [UInt8]) {
        appendBytes(Array(id.utf8), &b)
        appendBytes(entry.record, &b)
        b.appendBE(UInt32(entry.history.count))
        for h in entry.history {
            b.appendBE(h.sequence)
            b.appendBE(UInt32(bitPattern: h.kind.rawValue))
            b.appendBE(UInt32(bitPattern: h.reason.rawValue))
            appendDate(h.eventDate, &b)
            appendDate(h.notifiedOn, &b)
            if let before = h.before {
                b.append(1)
                appendBytes(before, &b)
            } else {
                b.append(0)
            }
        }
    }

    static func appendBytes(_ bytes: [UInt8], _ b: inout [UInt8]) {
        b.appendBE(UInt32(bytes.count))
        b += bytes
    }

    static func appendDate(_ d: CalendarDate?, _ b: inout [UInt8]) {
        guard let d else {
            b.append(0)
            return
        }
        b.append(1)
        b.appendBE(d.year)
        b.append(UInt8(truncatingIfNeeded: d.month))
        b.append(UInt8(truncatingIfNeeded: d.day))
        b.append(UInt8(truncatingIfNeeded: d.precision.rawValue))
    }

    /// Reads entries back; nil when the bytes are not well formed.
    struct EntryReader {
        let b: [UInt8]
        var o = 0

        var atEnd: Bool { o >= b.count }

        mutating func u32() -> UInt32? {
            guard o + 4 <= b.count else { return nil }
            defer { o += 4 }
            return b.readBE(UInt32.self, at: o)
        }

        mutating func u64() -> UInt64? {
            guard o + 8 <= b.count else { return nil }
            defer { o += 8 }
            return b.readBE(UInt64.self, at: o)
        }

        mutating func u8() -> UInt8? {
            guard o < b.count else { return nil }
            defer { o += 1 }
            return b[o]
        }

        mutating func bytes() -> [UInt8]? {
            guard let n = u32(), o + Int(n) <= b.count else { return nil }
            defer { o += Int(n) }
            return Array(b[o..<o + Int(n)])
        }

        mutating func date() -> CalendarDate?? {
            guard let present = u8() else { return nil }
            if present == 0 { return .some(nil) }
            guard let y = u32(), let m = u8(), let d = u8(), let p = u8() else { return nil }
            var c = CalendarDate(y, UInt32(m), UInt32(d))
            c.precision = CalendarDatePrecision(rawValue: Int32(p)) ?? .full
            return .some(c)
        }

        mutating func entry() -> (String, PersonEntry)? {
            guard let id = bytes(), let record = bytes(), let n = u32() else { return nil }
            var history: [HistoryEntry] = []
            for _ in 0..<n {
                guard let seq = u64(), let kind = u32(), let reason = u32(), let e = date(), let notified = date(), let hasBefore = u8() else { return nil }
                var before: [UInt8]?
                if hasBefore == 1 {
                    guard let bb = bytes() else { return nil }
                    before = bb
                }
                history.append(HistoryEntry(
                    sequence: seq, kind: RegisterEventKind(rawValue: Int32(bitPattern: kind)) ?? .kindUnspecified,
                    reason: EventReason(rawValue: Int32(bitPattern: reason)) ?? .reasonUnspecified,
                    eventDate: e, notifiedOn: notified, before: before))
            }
            return (String(decoding: id, as: UTF8.self), PersonEntry(record: record, history: history, isRemoved: false, removedOn: nil))
        }
    }
}
