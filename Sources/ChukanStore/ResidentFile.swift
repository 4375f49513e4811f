import ChukanProto

/// The bulk-load file of residents (the offline-media path from the resident system):
/// "CHUKRES1", then for each record its length (u32, big-endian) and an encoded
/// `chukan.v1.Resident`. Written by `chukanctl data generate`, read by `data import`.
public enum ResidentFile {
    public static let magic: [UInt8] = Array("CHUKRES1".utf8)
    public static let maxRecord = 1 << 20

    /// Appends records to a new file, flushing every `batch` records.
    public final class Writer {
        private let file: any AppendFile
        private var buffer: [UInt8] = []
        public private(set) var count = 0

        public init(path: String, fs: any StoreFileSystem = PosixFileSystem()) throws {
            if (try? fs.read(path)) != nil { try fs.remove(path) }
            file = try fs.createNew(path)
            buffer = magic
        }

        public func append(_ r: Resident) throws {
            let bytes = r.encodedBytes
            buffer.appendBE(UInt32(bytes.count))
            buffer += bytes
            count += 1
            if buffer.count > 1 << 20 { try flush() }
        }

        private func flush() throws {
            try buffer.withUnsafeBytes { try file.append($0) }
            buffer.removeAll(keepingCapacity: true)
        }

        /// Flushes, fsyncs and closes.
        public func finish() throws {
            try flush()
            try file.sync()
            file.close()
        }
    }

    /// Why a file or a record could not be read; never quotes the data.
    public struct FormatError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Reads records one at a time: a record that does not decode is reported by its
    /// index and the loader goes on; a broken frame stops the file.
    public struct Reader: Sequence, IteratorProtocol {
        let bytes: [UInt8]
        let path: String
        var offset: Int
        public private(set) var index = 0

        public init(path: String, fs: any StoreFileSystem = PosixFileSystem()) throws {
            bytes = try fs.read(path)
            self.path = path
            guard bytes.count >= 8, Array(bytes[0..<8]) == ResidentFile.magic else {
                throw FormatError(description: "\(path): not a Chukan resident file (no CHUKRES1 header)")
            }
            offset = 8
        }

        /// The total size, for progress.
        public var size: Int { bytes.count }
        public var position: Int { offset }

        public mutating func next() -> Result<Resident, FormatError>? {
            guard offset < bytes.count else { return nil }
            index += 1
            guard offset + 4 <= bytes.count else {
                let at = offset
                offset = bytes.count
                return .failure(FormatError(description: "record \(index): truncated length at offset \(at)"))
            }
            let n = Int(bytes.readBE(UInt32.self, at: offset))
            guard n <= ResidentFile.maxRecord, offset + 4 + n <= bytes.count else {
                let at = offset
                offset = bytes.count
                return .failure(FormatError(description: "record \(index): truncated or oversized record at offset \(at)"))
            }
            let slice = bytes[(offset + 4)..<(offset + 4 + n)]
            offset += 4 + n
            do {
                return .success(try slice.withUnsafeBytes { try Resident(protobuf: $0, limit: ResidentFile.maxRecord) })
            } catch {
                return .failure(FormatError(description: "record \(index): \(error)"))
            }
        }
    }
}
