import CChukanCRC

/// CRC-32C (Castagnoli), as etcd's WAL and iSCSI use: detects torn and corrupt records.
/// The SSE 4.2 instruction where there is one (`Sources/CChukanCRC`).
public enum CRC32C {
    /// Continues `crc` over `bytes` (start with 0).
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        chukan_crc32c_update(crc, bytes.baseAddress, bytes.count)
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 { update(0, bytes) }

    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        if let crc = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0)) }) { return crc }
        return Array(bytes).withUnsafeBytes { checksum($0) }
    }

    /// The table-driven path alone (tests compare both paths).
    public static func softwareChecksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        chukan_crc32c_update_software(0, bytes.baseAddress, bytes.count)
    }

    /// Whether the hardware instruction is in use.
    public static var usesHardware: Bool { chukan_crc32c_hardware() == 1 }
}
