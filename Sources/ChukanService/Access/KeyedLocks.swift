/// One holder at a time per key (a staff account; a held provision being decided),
/// others wait their turn.
actor KeyedLocks {
    private var held: Set<String> = []
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]

    func serialized<T: Sendable>(_ key: String, honoringCancellation: Bool = true, _ body: @Sendable () async throws -> T) async throws -> T {
        await acquire(key)
        // A caller whose call ended while it waited (its deadline, the connection) must not
        // act after its answer said it did not; the server's own follow-up writes (a lock
        // already counted) are made all the same.
        if honoringCancellation && Task.isCancelled {
            release(key)
            throw CancellationError()
        }
        do {
            let value = try await body()
            release(key)
            return value
        } catch {
            release(key)
            throw error
        }
    }

    private func acquire(_ key: String) async {
        guard held.contains(key) else {
            held.insert(key)
            return
        }
        await withCheckedContinuation { waiting[key, default: []].append($0) }
    }

    private func release(_ key: String) {
        guard var queue = waiting[key], !queue.isEmpty else {
            held.remove(key)
            return
        }
        let next = queue.removeFirst()
        waiting[key] = queue.isEmpty ? nil : queue
        next.resume()  // the key stays held: it passes to the next in line
    }
}
