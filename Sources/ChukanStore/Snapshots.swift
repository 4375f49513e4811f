import Dispatch
import ChukanCore
import ChukanProto
import ChukanRegister
import Foundation

/// Why a snapshot cannot be used. Names the file; never carries data.
public struct SnapshotError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// What a snapshot holds, from its header and trailer (no key needed).
public struct SnapshotInfo: Equatable, Sendable {
    public var path: String
    public var header: SnapshotFormat.Header
    public var chunks: UInt64
    public var size: Int
}

/// What one chunk of a snapshot holds.
struct ChunkContents: @unchecked Sendable {
    var persons: [RegisterState.LoadedEntry] = []
    var idempotency: [IdempotentWrite] = []
    var staff: [StaffAccount] = []
    var exports: [ExportTicket] = []
    var pending: [PendingProvision] = []
}

/// Hands a buffer to `concurrentPerform`'s iterations, each writing its own element.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Writes and reads snapshots (SnapshotFormat). Writing reads only an immutable
/// `RegisterState`, so it runs beside writes without stopping them.
public enum Snapshots {
    /// Writes `state` into `directory` as `<sequence>.snap`: temp file, fsync, rename,
    /// directory fsync. Returns what was written.
    @discardableResult
    public static func write(
        _ state: RegisterState, directory: String, keyRing: TenantKeyRing, fs: any StoreFileSystem = PosixFileSystem(),
        now: UInt64 = UInt64(Date().timeIntervalSince1970)
    ) throws -> SnapshotInfo {
        try fs.createDirectory(directory)
        let header = SnapshotFormat.Header(
            tenant: keyRing.tenant, keyVersion: keyRing.currentVersion, sequence: state.sequence,
            recordCount: UInt64(state.count), createdAt: now, salt: secureRandomBytes(16))
        let headerBytes = header.encoded()
        let cipher = try AESGCM(key: SnapshotFormat.key(tenantKey: keyRing.key(version: header.keyVersion), header: header))
        let final = "\(directory)/\(SnapshotFormat.fileName(sequence: state.sequence))"
        let temp = final + ".tmp"
        if (try? fs.read(temp)) != nil { try fs.remove(temp) }
        let file = try fs.createNew(temp)
        let writer = ChunkWriter(file: file)
        var whole = CRC32C.checksum(headerBytes)
        var size = 0
        do {
            try writer.enqueue(headerBytes)
            size = headerBytes.count
            var chunk: UInt64 = 0
            var plain: [UInt8] = []
            plain.reserveCapacity(SnapshotFormat.chunkPlaintext + 4096)
            func seal() throws {
                // The frame (length, CRC-32C), then the sealed chunk written straight after it.
                var framed: [UInt8] = []
                framed.reserveCapacity(8 + plain.count + AESGCM.tagSize)
                framed.appendBE(UInt64(0))
                try plain.withUnsafeBytes { p in
                    try SnapshotFormat.aad(header: headerBytes, chunk: chunk).withUnsafeBytes { a in
                        try cipher.seal(nonce: SnapshotFormat.nonce(chunk: chunk), plaintext: p, aad: a, into: &framed)
                    }
                }
                let sealedCount = framed.count - 8
                let sealedCRC = framed.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[8...])) }
                framed.withUnsafeMutableBytes { f in
                    f.storeBytes(of: UInt32(sealedCount).bigEndian, toByteOffset: 0, as: UInt32.self)
                    f.storeBytes(of: sealedCRC.bigEndian, toByteOffset: 4, as: UInt32.self)
                }
                whole = framed.withUnsafeBytes { CRC32C.update(whole, $0) }
                try writer.enqueue(framed)
                size += framed.count
                chunk += 1
                plain.removeAll(keepingCapacity: true)
            }
            try state.forEachPerson { id, entry in
                SnapshotFormat.encode(id: id.string, entry: entry, into: &plain)
                if plain.count >= SnapshotFormat.chunkPlaintext { try seal() }
            }
            // Then the tenant's other state, as entries whose id no person can have.
            let cutoff = Int64(now) * 1000 - SnapshotFormat.idempotencyRetentionMs
            /// A metadata entry: its id names what it is, the record field holds the message.
            func meta(_ id: String, _ bytes: [UInt8]) throws {
                SnapshotFormat.encode(id: id, entry: PersonEntry(record: bytes, history: [], isRemoved: false, removedOn: nil), into: &plain)
                if plain.count >= SnapshotFormat.chunkPlaintext { try seal() }
            }
            for (id, account) in state.staff { try meta(SnapshotFormat.staffPrefix + id, account.encodedBytes) }
            for (id, ticket) in state.exports { try meta(SnapshotFormat.exportPrefix + id, ticket.encodedBytes) }
            for (id, held) in state.pending { try meta(SnapshotFormat.pendingPrefix + id, held.encodedBytes) }
            for (key, write) in state.idempotency where write.acceptedUnixMs >= cutoff {
                try meta(SnapshotFormat.idempotencyPrefix + key, write.encodedBytes)
            }
            if !plain.isEmpty || chunk == 0 { try seal() }
            var trailer = SnapshotFormat.trailerMagic
            trailer.appendBE(chunk)
            trailer.appendBE(whole)
            trailer.appendBE(UInt32(0))
            try writer.enqueue(trailer)
            try writer.finish()
            size += trailer.count
            try file.sync()
            file.close()
            try fs.rename(temp, final)
            try fs.syncDirectory(directory)
            return SnapshotInfo(path: final, header: header, chunks: chunk, size: size)
        } catch {
            try? writer.finish()  // nothing of this file is written after the close
            file.close()
            try? fs.remove(temp)
            throw error
        }
    }

    /// A snapshot's header alone (read without the rest of the file, checked by its own
    /// checksum); nil when the file does not start with one.
    public static func header(path: String) -> SnapshotFormat.Header? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: SnapshotFormat.headerSize) else { return nil }
        return SnapshotFormat.Header.decode(Array(data)[...])
    }

    /// Snapshot files in `directory`, newest (highest sequence) first.
    public static func list(directory: String, fs: any StoreFileSystem = PosixFileSystem()) -> [String] {
        ((try? fs.list(directory)) ?? []).filter { $0.hasSuffix(".snap") }.sorted(by: >).map { "\(directory)/\($0)" }
    }

    /// Checks the structure and every checksum, without the key (what a platform
    /// operator can do). Throws `SnapshotError` naming the file and the fault.
    public static func verify(path: String, fs: any StoreFileSystem = PosixFileSystem()) throws -> SnapshotInfo {
        let bytes = try fs.read(path)
        let (info, _) = try structure(bytes, path: path)
        return info
    }

    /// Verifies, decrypts every chunk and rebuilds the register with its indexes.
    public static func load(path: String, keyRing: TenantKeyRing, fs: any StoreFileSystem = PosixFileSystem()) throws -> RegisterState {
        let bytes = try fs.read(path)
        let (info, chunks) = try structure(bytes, path: path)
        guard info.header.tenant == keyRing.tenant else { throw SnapshotError("\(path): snapshot of tenant \(info.header.tenant)") }
        let tenantKey: [UInt8]
        do { tenantKey = try keyRing.key(version: info.header.keyVersion) } catch { throw SnapshotError("\(path): \(error)") }
        let headerBytes = Array(bytes[0..<SnapshotFormat.headerSize])
        let tenantKeyForChunks = try SnapshotFormat.key(tenantKey: tenantKey, header: info.header)
        // Decrypt, parse and decode index keys chunk by chunk on every core; only the
        // index insertion that follows is sequential.
        let results = UnsafeMutableBufferPointer<Result<ChunkContents, SnapshotError>>.allocate(capacity: chunks.count)
        results.initialize(repeating: .success(ChunkContents()))
        defer {
            _ = results.deinitialize()  // the per-chunk arrays, then the buffer
            results.deallocate()
        }
        let shared = UnsafeSendable(results)
        DispatchQueue.concurrentPerform(iterations: chunks.count) { i in
            shared.value[i] = Result {
                let chunkCipher: AESGCM
                do { chunkCipher = try AESGCM(key: tenantKeyForChunks) } catch { throw SnapshotError("\(path): \(error)") }
                let plain: [UInt8]
                do {
                    plain = try bytes[chunks[i]].withUnsafeBytes { s in
                        try SnapshotFormat.aad(header: headerBytes, chunk: UInt64(i)).withUnsafeBytes { a in
                            try chunkCipher.open(nonce: SnapshotFormat.nonce(chunk: UInt64(i)), ciphertextAndTag: s, aad: a)
                        }
                    }
                } catch {
                    throw SnapshotError("\(path): chunk \(i) does not decrypt (wrong key or changed bytes)")
                }
                var reader = SnapshotFormat.EntryReader(b: plain)
                var out = ChunkContents()
                while !reader.atEnd {
                    guard let (id, entry) = reader.entry() else { throw SnapshotError("\(path): chunk \(i) holds a malformed entry") }
                    if id.hasPrefix(SnapshotFormat.idempotencyPrefix) {
                        guard let w = try? IdempotentWrite(protobuf: entry.record) else {
                            throw SnapshotError("\(path): chunk \(i) holds an idempotency entry that does not decode")
                        }
                        out.idempotency.append(w)
                        continue
                    }
                    if id.hasPrefix(SnapshotFormat.exportPrefix) {
                        guard let t = try? ExportTicket(protobuf: entry.record) else {
                            throw SnapshotError("\(path): chunk \(i) holds an export entry that does not decode")
                        }
                        out.exports.append(t)
                        continue
                    }
                    if id.hasPrefix(SnapshotFormat.pendingPrefix) {
                        guard let p = try? PendingProvision(protobuf: entry.record) else {
                            throw SnapshotError("\(path): chunk \(i) holds a held-provision entry that does not decode")
                        }
                        out.pending.append(p)
                        continue
                    }
                    if id.hasPrefix(SnapshotFormat.staffPrefix) {
                        guard let a = try? StaffAccount(protobuf: entry.record) else {
                            throw SnapshotError("\(path): chunk \(i) holds a staff entry that does not decode")
                        }
                        out.staff.append(a)
                        continue
                    }
                    do { out.persons.append(try RegisterState.LoadedEntry(id: id, entry: entry)) } catch {
                        throw SnapshotError("\(path): chunk \(i) holds a record that does not decode")
                    }
                }
                return out
            }.mapError { $0 as? SnapshotError ?? SnapshotError("\(path): \($0)") }
        }
        var loaded: [[RegisterState.LoadedEntry]] = []
        var idempotency: [IdempotentWrite] = []
        var staff: [StaffAccount] = []
        var exports: [ExportTicket] = []
        var pending: [PendingProvision] = []
        for r in results {
            let contents = try r.get()
            loaded.append(contents.persons)  // the chunk's array itself, not a copy of its entries
            idempotency += contents.idempotency
            staff += contents.staff
            exports += contents.exports
            pending += contents.pending
        }
        let records = loaded.reduce(0) { $0 + $1.count }
        guard UInt64(records) == info.header.recordCount else {
            throw SnapshotError("\(path): header says \(info.header.recordCount) records, file holds \(records)")
        }
        do {
            return try RegisterState.rebuilding(tenant: info.header.tenant, sequence: info.header.sequence, loaded: loaded, idempotency: idempotency, staff: staff, exports: exports, pending: pending)
        } catch let e as RPCError {
            throw SnapshotError("\(path): \(e.message)")
        }
    }

    /// Parses header, chunk frames and trailer, checking every CRC.
    static func structure(_ bytes: [UInt8], path: String) throws -> (SnapshotInfo, [Range<Int>]) {
        guard let header = SnapshotFormat.Header.decode(bytes[...]) else {
            throw SnapshotError("\(path): not a Chukan snapshot (bad header or header checksum)")
        }
        guard bytes.count >= SnapshotFormat.headerSize + SnapshotFormat.trailerSize else {
            throw SnapshotError("\(path): truncated (no trailer)")
        }
        let trailerAt = bytes.count - SnapshotFormat.trailerSize
        guard Array(bytes[trailerAt..<trailerAt + 8]) == SnapshotFormat.trailerMagic else {
            throw SnapshotError("\(path): truncated or damaged (no trailer)")
        }
        let chunkCount = bytes.readBE(UInt64.self, at: trailerAt + 8)
        let stored = bytes.readBE(UInt32.self, at: trailerAt + 16)
        guard bytes[0..<trailerAt].withUnsafeBytes({ CRC32C.checksum($0) }) == stored else {
            throw SnapshotError("\(path): checksum mismatch (the file was changed or damaged)")
        }
        var ranges: [Range<Int>] = []
        var o = SnapshotFormat.headerSize
        while o < trailerAt {
            guard o + 8 <= trailerAt else { throw SnapshotError("\(path): damaged chunk frame at offset \(o)") }
            let n = Int(bytes.readBE(UInt32.self, at: o))
            let crc = bytes.readBE(UInt32.self, at: o + 4)
            guard o + 8 + n <= trailerAt else { throw SnapshotError("\(path): damaged chunk frame at offset \(o)") }
            guard bytes[(o + 8)..<(o + 8 + n)].withUnsafeBytes({ CRC32C.checksum($0) }) == crc else {
                throw SnapshotError("\(path): chunk at offset \(o) fails its checksum")
            }
            ranges.append((o + 8)..<(o + 8 + n))
            o += 8 + n
        }
        guard UInt64(ranges.count) == chunkCount else {
            throw SnapshotError("\(path): trailer says \(chunkCount) chunks, file holds \(ranges.count)")
        }
        return (SnapshotInfo(path: path, header: header, chunks: chunkCount, size: bytes.count), ranges)
    }
}
