#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value behind a pthread mutex. Used where many threads contend: ThreadSanitizer
/// follows pthread mutexes, while `Synchronization.Mutex` hands over through a futex it
/// cannot see, so its contended path reads as a data race there.
///
/// On Linux the mutex is glibc's adaptive kind: a thread that finds it taken spins a
/// little before it sleeps. The sections kept here are short (a few dictionary reads, an
/// audit record's chain step), so the holder is usually done within the spin; a plain
/// mutex put the waiter to sleep at once, a futex call and a context switch each way —
/// about half a futex call per 照会 on the audit chain's lock alone.
public final class Locked<Value>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        #if canImport(Glibc)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        #endif
        let rc = pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
