import Foundation
import Glibc
import Logging
import Synchronization

/// Watches the free space of the data directory's file system: below `warnPercent` it
/// warns (once per crossing), below `refusePercent` register writes are refused with
/// UNAVAILABLE until space is freed — well before the disk is full, so that the audit
/// trail and the log's own bookkeeping still have room.
public final class DiskWatch: Sendable {
    public let directory: String
    public let warnPercent: Double
    public let refusePercent: Double
    private let logger: Logger
    private let state = Mutex<(level: Int, freeBytes: UInt64, freePercent: Double)>((0, 0, 100))
    private let stopped = Atomic<Bool>(false)

    public init(directory: String, warnPercent: Double = 10, refusePercent: Double = 2, logger: Logger = Logger(label: "chukan.disk")) {
        self.directory = directory
        self.warnPercent = warnPercent
        self.refusePercent = refusePercent
        self.logger = logger
        check()
    }

    /// Why writes are refused now, or nil.
    public var refusal: String? {
        let s = state.withLock { $0 }
        guard s.level >= 2 else { return nil }
        return String(format: "the data disk has %.1f%% free, below the %.1f%% at which writes stop; free space first", s.freePercent, refusePercent)
    }

    public var freeBytes: UInt64 { state.withLock { $0.freeBytes } }

    /// Measures now; logs when the level changes.
    public func check() {
        var st = statvfs()
        guard statvfs(directory, &st) == 0, st.f_blocks > 0 else { return }
        let free = UInt64(st.f_bavail) * UInt64(st.f_frsize)
        let percent = Double(st.f_bavail) / Double(st.f_blocks) * 100
        let level = percent < refusePercent ? 2 : percent < warnPercent ? 1 : 0
        let before = state.withLock { s -> Int in
            defer { s = (level, free, percent) }
            return s.level
        }
        guard level != before else { return }
        let metadata: Logger.Metadata = ["free_percent": "\(String(format: "%.1f", percent))", "free_bytes": "\(free)"]
        switch level {
        case 2: logger.critical("data disk nearly full: register writes are refused until space is freed", metadata: metadata)
        case 1: logger.warning("data disk is filling up", metadata: metadata)
        default: logger.notice("data disk has room again", metadata: metadata)
        }
    }

    /// Checks every `seconds` on a thread of its own until `stop`.
    public func start(every seconds: Double = 5) {
        let thread = Thread { [self] in
            while !stopped.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: seconds)
                check()
            }
        }
        thread.name = "chukan-disk-watch"
        thread.start()
    }

    public func stop() { stopped.store(true, ordering: .relaxed) }
}
