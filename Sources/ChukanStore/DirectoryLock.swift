#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// An exclusive `flock` on `<directory>/LOCK`, so a server and an offline `chukanctl`
/// never open the same tenant at once. Released on `release()` or process exit.
public final class DirectoryLock: Sendable {
    private let fd = Mutex<Int32>(-1)
    public let path: String

    public init(directory: String) throws {
        path = "\(directory)/LOCK"
        let f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard f >= 0 else { throw StoreIOError("open", path, errno: errno) }
        guard flock(f, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(f)
            throw StoreIOError("lock (is a server or another chukanctl using this tenant?)", path, errno: EWOULDBLOCK)
        }
        fd.withLock { $0 = f }
    }

    public func release() {
        fd.withLock { f in
            if f >= 0 {
                flock(f, LOCK_UN)
                Glibc.close(f)
                f = -1
            }
        }
    }

    deinit { release() }
}
