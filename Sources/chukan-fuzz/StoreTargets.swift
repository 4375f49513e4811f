import ChukanRegister
import ChukanStore
import Foundation
import Synchronization

/// The store's readers over fuzzed files: a log segment, a snapshot. Files live in memory
/// (a read-only `StoreFileSystem`), under a fixed key ring, so the seeds (`--seeds`) hold
/// well-formed, decryptable files for the fuzzer to change.
enum StoreTargets {
    static let tenant = "012041"
    /// A fixed key for fuzzing only: the seeds are encrypted under it.
    static let keyRing = TenantKeyRing(tenant: tenant, keys: [1: Array(repeating: 0x5A, count: 32)])

    static func wal(_ input: UnsafeRawBufferPointer) {
        let fs = MemoryFileSystem(["/wal/\(WALFormat.segmentName(firstSequence: 1))": Array(input)])
        _ = try? WriteAheadLog.read(directory: "/wal", keyRing: keyRing, fs: fs) { _ in }
    }

    /// A disagreement between the two readers of a record's index keys is a finding.
    static func record(_ input: UnsafeRawBufferPointer) {
        if RegisterState.indexKeyReadersAgree(Array(input)) == false {
            fatalError("the wire-format reader and protobuf-c read different index keys")
        }
    }

    static func snapshot(_ input: UnsafeRawBufferPointer) {
        let path = "/snap/snapshot.chs"
        let fs = MemoryFileSystem([path: Array(input)])
        guard (try? Snapshots.verify(path: path, fs: fs)) != nil else { return }
        _ = try? Snapshots.load(path: path, keyRing: keyRing, fs: fs)
    }
}

/// Files held in memory, read-only: what the readers need, and nothing they could write.
struct MemoryFileSystem: StoreFileSystem {
    let files: [String: [UInt8]]
    init(_ files: [String: [UInt8]]) { self.files = files }

    struct ReadOnly: Error {}

    func read(_ path: String) throws -> [UInt8] {
        guard let f = files[path] else { throw ReadOnly() }
        return f
    }

    func list(_ directory: String) throws -> [String] {
        files.keys.filter { $0.hasPrefix(directory + "/") }.map { String($0.dropFirst(directory.count + 1)) }.sorted()
    }

    func createNew(_ path: String) throws -> any AppendFile { throw ReadOnly() }
    func truncate(_ path: String, to size: Int) throws { throw ReadOnly() }
    func remove(_ path: String) throws { throw ReadOnly() }
    func rename(_ from: String, _ to: String) throws { throw ReadOnly() }
    func createDirectory(_ path: String) throws { throw ReadOnly() }
    func syncDirectory(_ path: String) throws { throw ReadOnly() }
}
