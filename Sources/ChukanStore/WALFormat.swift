/// The write-ahead log's on-disk format (docs/STORAGE.md).
///
/// A segment file `<first sequence, 16 hex digits>.wal` starts with a 64-byte header:
///
///     magic "CHUKWAL\0" · version u16 · reserved u16 · tenant 6 ASCII · reserved u16 ·
///     key version u32 · first sequence u64 · previous last acknowledged u64 ·
///     salt 16 bytes · CRC-32C of the 56 bytes before it u32 · reserved u32
///
/// then records, each: length u32 · type u8 · group offset u24 · sequence u64 · CRC-32C
/// u32 (over the 16 bytes before it and the data) · data (`length` bytes: AES-256-GCM
/// ciphertext and tag). All integers big-endian. The group offset (version 2; zero in
/// version 1) is the record's place in the group commit that wrote it: 0 for its first
/// record. Recovery uses it to tell a crash inside the last group commit from damage.
///
/// Each segment has its own key, HKDF-SHA256(tenant key, salt, "chukan/wal/v1" ‖ tenant ‖
/// first sequence), and the nonce of a record is its sequence number, so no nonce repeats
/// under a key: a segment is never appended to after a restart or a failed write.
public enum WALFormat {
    public static let magic: [UInt8] = Array("CHUKWAL".utf8) + [0]
    /// The version new segments are written in; version 1 (no group offsets) is read too.
    public static let version: UInt16 = 2
    public static let readableVersions: ClosedRange<UInt16> = 1...2
    /// A group commit writes at most this many records (the group offset's 24 bits).
    public static let maxGroupRecords = (1 << 24) - 1
    public static let headerSize = 64
    public static let recordHeaderSize = 20
    /// A record larger than this is corruption, not data.
    public static let maxRecordData = 16 << 20

    public struct SegmentHeader: Equatable, Sendable {
        public var tenant: String
        public var keyVersion: UInt32
        public var firstSequence: UInt64
        /// The last sequence acknowledged before this segment began (0: none). Records of
        /// the previous segment after it were never acknowledged and are not replayed.
        public var previousLastAcknowledged: UInt64
        public var salt: [UInt8]
        /// The format version (`WALFormat.version` for a segment written now).
        public var version: UInt16

        public init(tenant: String, keyVersion: UInt32, firstSequence: UInt64, previousLastAcknowledged: UInt64, salt: [UInt8], version: UInt16 = WALFormat.version) {
            self.version = version
            self.tenant = tenant
            self.keyVersion = keyVersion
            self.firstSequence = firstSequence
            self.previousLastAcknowledged = previousLastAcknowledged
            self.salt = salt
        }

        public func encoded() -> [UInt8] {
            var b = FileHeaderCodec.begin(magic: magic, version: self.version, tenant: tenant)
            b.appendBE(keyVersion)
            b.appendBE(firstSequence)
            b.appendBE(previousLastAcknowledged)
            b += salt
            FileHeaderCodec.finish(&b)
            return b
        }

        public static func decode(_ b: ArraySlice<UInt8>) -> SegmentHeader? {
            guard let h = FileHeaderCodec.open(b, magic: magic, versions: readableVersions, size: headerSize) else { return nil }
            let tenant = FileHeaderCodec.tenant(h)
            return SegmentHeader(
                tenant: tenant, keyVersion: h.readBE(UInt32.self, at: 20), firstSequence: h.readBE(UInt64.self, at: 24),
                previousLastAcknowledged: h.readBE(UInt64.self, at: 32), salt: Array(h[40..<56]), version: h.readBE(UInt16.self, at: 8))
        }
    }

    public static func segmentName(firstSequence: UInt64) -> String {
        let hex = String(firstSequence, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex + ".wal"
    }

    static func segmentKey(tenantKey: [UInt8], header: SegmentHeader) throws -> [UInt8] {
        var info = Array("chukan/wal/v1".utf8) + Array(header.tenant.utf8)
        info.appendBE(header.firstSequence)
        return try HKDF.sha256(key: tenantKey, salt: header.salt, info: info, length: AESGCM.keySize)
    }

    static func nonce(sequence: UInt64) -> [UInt8] {
        var n = [UInt8](repeating: 0, count: 12)
        n.setBE(sequence, at: 4)
        return n
    }

    /// Size of a record's prefix (`writeRecordPrefix`).
    static let recordPrefixSize = 16

    /// The 16 bytes before a record's CRC: also the AEAD's associated data. Written into
    /// `out` (at least 16 bytes), so that a writer builds it without an allocation.
    static func writeRecordPrefix(length: UInt32, type: UInt8, groupOffset: Int, sequence: UInt64, into out: UnsafeMutableRawBufferPointer) {
        precondition(groupOffset >= 0 && groupOffset <= maxGroupRecords && out.count >= recordPrefixSize)
        out.storeBytes(of: length.bigEndian, toByteOffset: 0, as: UInt32.self)
        // type, then the group offset in three bytes: the low 24 bits of a big-endian word.
        out.storeBytes(of: (UInt32(type) << 24 | UInt32(groupOffset)).bigEndian, toByteOffset: 4, as: UInt32.self)
        out.storeBytes(of: sequence.bigEndian, toByteOffset: 8, as: UInt64.self)
    }
}

/// The layout the WAL segment and snapshot headers share: magic (8 bytes) · version u16 ·
/// reserved u16 · tenant (6 ASCII, space-padded) · reserved u16 · the format's own fields ·
/// CRC-32C of every byte before it u32 · reserved u32.
enum FileHeaderCodec {
    static func begin(magic: [UInt8], version: UInt16, tenant: String) -> [UInt8] {
        var b = magic
        b.appendBE(version)
        b.appendBE(UInt16(0))
        b += Array(tenant.utf8.prefix(6)) + Array(repeating: 0x20, count: max(0, 6 - tenant.utf8.count))
        b.appendBE(UInt16(0))
        return b
    }

    static func finish(_ b: inout [UInt8]) {
        b.appendBE(CRC32C.checksum(b))
        b.appendBE(UInt32(0))
    }

    /// The header's bytes, if magic, version and checksum are right.
    static func open(_ b: ArraySlice<UInt8>, magic: [UInt8], version: UInt16, size: Int) -> [UInt8]? {
        open(b, magic: magic, versions: version...version, size: size)
    }

    static func open(_ b: ArraySlice<UInt8>, magic: [UInt8], versions: ClosedRange<UInt16>, size: Int) -> [UInt8]? {
        guard b.count >= size else { return nil }
        let h = Array(b.prefix(size))
        let crcAt = size - 8
        guard Array(h[0..<8]) == magic, versions.contains(h.readBE(UInt16.self, at: 8)),
              h.readBE(UInt32.self, at: crcAt) == CRC32C.checksum(h[0..<crcAt])
        else { return nil }
        return h
    }

    static func tenant(_ h: [UInt8]) -> String {
        String(decoding: h[12..<18], as: UTF8.self).trimmingCharacters(in: " ")
    }
}

extension Array where Element == UInt8 {
    @inlinable mutating func appendBE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.bigEndian) { append(contentsOf: $0) }
    }

    /// Overwrites the bytes at `offset` with `v`, big-endian.
    @inlinable mutating func setBE<T: FixedWidthInteger>(_ v: T, at offset: Int) {
        Swift.withUnsafeBytes(of: v.bigEndian) { replaceSubrange(offset..<offset + $0.count, with: $0) }
    }

    @inlinable func readBE<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v = (v << 8) | T(self[offset + i]) }
        return v
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.last == set || s.last == "\0" { s = s.dropLast() }
        return String(s)
    }
}
