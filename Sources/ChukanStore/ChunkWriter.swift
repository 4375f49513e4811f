import ChukanCore
import Dispatch

/// Appends a snapshot's sealed chunks to its file on a thread of its own, so that the
/// copy into the page cache (a third of a snapshot's CPU time) overlaps encoding and
/// sealing the next chunks. At most `depth` chunks wait; the first failure stops the
/// writing and is thrown from the next `enqueue` or from `finish`.
final class ChunkWriter: @unchecked Sendable {
    // @unchecked: `file` is used only on `queue` until `finish` has drained it.
    private let file: any AppendFile
    private let queue = DispatchQueue(label: "chukan.snapshot-writer")
    private let room: DispatchSemaphore
    private let failure = Locked<(any Error)?>(nil)

    init(file: any AppendFile, depth: Int = 4) {
        self.file = file
        room = DispatchSemaphore(value: depth)
    }

    func enqueue(_ bytes: [UInt8]) throws {
        if let error = failure.withLock({ $0 }) { throw error }
        room.wait()
        queue.async { [self] in
            defer { room.signal() }
            guard failure.withLock({ $0 == nil }) else { return }
            do {
                try bytes.withUnsafeBytes { try file.append($0) }
            } catch {
                failure.withLock { $0 = error }
            }
        }
    }

    /// Waits for every chunk handed over; throws the first failure.
    func finish() throws {
        queue.sync {}
        if let error = failure.withLock({ $0 }) { throw error }
    }
}
