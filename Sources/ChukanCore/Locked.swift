import Foundation

/// A value behind a pthread mutex (Foundation's `NSLock`). Used where many threads contend:
/// ThreadSanitizer follows pthread mutexes, while `Synchronization.Mutex` hands over
/// through a futex it cannot see, so its contended path reads as a data race there.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    public func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
