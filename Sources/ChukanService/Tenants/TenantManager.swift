import ChukanCore
import ChukanProto
import ChukanRegister
import ChukanStore
import Foundation
import Logging
import Synchronization

/// The tenants a server holds: one folder each under the data directory, recovered in
/// the background on start. While a tenant recovers, its calls get UNAVAILABLE and
/// its health is NOT_SERVING; a tenant whose data cannot be brought back stays FAILED
/// rather than start empty.
public final class TenantManager: Sendable {
    public struct Configuration: Sendable {
        public var dataDirectory: String
        public var keyDirectory: String
        public var options = TenantDatabase.Options()
        public init(dataDirectory: String, keyDirectory: String) {
            self.dataDirectory = dataDirectory
            self.keyDirectory = keyDirectory
        }
    }

    enum Slot {
        case recovering
        case serving(TenantDatabase)
        case failed(String)
        /// `remove` has claimed it: not served, and no second removal or addition starts.
        case removing
    }

    public let configuration: Configuration
    /// A pthread mutex (`Locked`), not `Synchronization.Mutex`: recovery threads and callers
    /// contend on it, and ThreadSanitizer cannot follow Mutex's futex hand-over (RELIABILITY.md).
    private let slots = Locked<[String: Slot]>([:])
    private let logger: Logger

    public init(configuration: Configuration, logger: Logger = Logger(label: "chukan.tenants")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Starts recovering every tenant folder in the data directory; returns at once.
    public func startAll() {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: configuration.dataDirectory)) ?? [])
            .filter { Identifiers.localGovernmentCodeProblem($0) == nil }.sorted()
        for t in names { startRecovery(t) }
    }

    private func startRecovery(_ tenant: String) {
        slots.withLock { $0[tenant] = .recovering }
        // Recovery is blocking disk and CPU work: a thread of its own, not the task pool.
        let thread = Thread { [self] in
            do {
                let ring = try TenantKeyRing.load(tenant: tenant, directory: configuration.keyDirectory)
                let db = try TenantDatabase.open(directory: "\(configuration.dataDirectory)/\(tenant)", keyRing: ring, options: configuration.options)
                carryPermitClaims(of: tenant, into: db, keyRing: ring)
                let r = db.recovery
                var facts: Logger.Metadata = [
                    "tenant": "\(tenant)", "records": "\(r.records)", "snapshot_sequence": "\(r.snapshotSequence)",
                    "replayed": "\(r.replayed)", "torn_tails_cut": "\(r.wal.truncated.count)",
                    "skipped_snapshots": "\(r.skippedSnapshots.count)", "seconds": "\(String(format: "%.2f", r.seconds))",
                ]
                if let aside = r.wal.setAside { facts["wal_set_aside"] = "\(aside.segments) segments in \(aside.folder)" }
                logger.notice("tenant recovered", metadata: facts)
                // closeAll() may have run meanwhile: then close what was just opened.
                let kept = slots.withLock { s -> Bool in
                    guard case .recovering? = s[tenant] else { return false }
                    s[tenant] = .serving(db)
                    return true
                }
                if !kept { db.close() }
            } catch {
                logger.critical("tenant failed to recover; it will not serve", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
                slots.withLock { s in
                    if case .recovering? = s[tenant] { s[tenant] = .failed("\(error)") }
                }
            }
        }
        thread.name = "chukan-recover-\(tenant)"
        thread.start()
    }

    /// A tenant removed and added again starts a new audit stream, but permits used before
    /// the removal must stay used: the claims of streams under `.removed/` that were moved
    /// there while a permit could still be valid are claimed again. (Older ones hold no
    /// permit that could still be answered, and are not read.)
    private func carryPermitClaims(of tenant: String, into db: TenantDatabase, keyRing: TenantKeyRing) {
        let graveyard = "\(configuration.dataDirectory)/.removed"
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        let window = Permits.maximumLifetimeMs + Permits.clockSkewMs + PermitClaims.keptPastExpiryMs
        for name in (try? FileManager.default.contentsOfDirectory(atPath: graveyard)) ?? [] where name.hasPrefix("\(tenant)-") {
            guard let removedAt = Int64(name.dropFirst(tenant.count + 1)), removedAt * 1000 >= nowMs - window else { continue }
            let stream = "\(graveyard)/\(name)/audit"
            guard FileManager.default.fileExists(atPath: stream) else { continue }
            // A removed stream that cannot be read (its key dropped, a damaged segment) does
            // not stop the tenant: it is reported, and its claims are not carried.
            do {
                for r in try AuditLog.read(directory: stream, keyRing: keyRing) where !r.permitId.isEmpty {
                    db.audit.permits.restore(r.permitId, expiresUnixMs: r.permitExpiresUnixMs, nowUnixMs: nowMs)
                }
            } catch {
                logger.error("the permit claims of a removed stream could not be read; permits it used may be answered again until they expire",
                             metadata: ["tenant": "\(tenant)", "stream": "\(stream)", "error": "\(error)"])
            }
        }
    }

    /// The tenant's database, or the status that explains why there is none.
    public func database(_ tenant: String) throws -> TenantDatabase {
        switch slots.withLock({ $0[tenant] }) {
        case let .serving(db)?: return db
        case .recovering?: throw RPCError.unavailable("tenant \(tenant) is recovering")
        case .failed?: throw RPCError.unavailable("tenant \(tenant) failed to recover; see the server log")
        case .removing?: throw RPCError.unavailable("tenant \(tenant) is being removed")
        case nil: throw Self.notHeld(tenant)
        }
    }

    /// NOT_FOUND for a tenant the server does not hold. A caller's text is quoted only
    /// once it is a valid code.
    public static func notHeld(_ tenant: String) -> RPCError {
        guard Identifiers.localGovernmentCodeProblem(tenant) == nil else {
            return RPCError(.notFound, "no such tenant on this server (the tenant is not a valid 地方公共団体コード)")
        }
        return RPCError(.notFound, "no tenant \(tenant) on this server")
    }

    public func state(_ tenant: String) -> TenantStatusState? {
        switch slots.withLock({ $0[tenant] }) {
        case .serving?: .serving
        case .recovering?, .removing?: .recovering
        case .failed?: .failed
        case nil: nil
        }
    }

    public var tenants: [String] { slots.withLock { $0.keys.sorted() } }

    public func status(_ tenant: String, today: CalendarDate = TenantManager.tokyoToday()) -> TenantStatus? {
        guard let slot = slots.withLock({ $0[tenant] }) else { return nil }
        var s = TenantStatus()
        s.tenant = tenant
        switch slot {
        case .recovering: s.state = .recovering
        case .removing:
            s.state = .recovering
            s.detail = "being removed"
        case let .failed(why):
            s.state = .failed
            s.detail = why
        case let .serving(db):
            s.state = .serving
            let current = db.current
            s.records = UInt64(current.count)
            s.sequence = current.sequence
            s.purgeDue = UInt64(current.purgeDue(today: today).count)
        }
        return s
    }

    /// Creates a tenant folder and its first key (when it has none), and recovers it.
    public func add(_ tenant: String) throws {
        if let p = Identifiers.localGovernmentCodeProblem(tenant) { throw RPCError.invalidArgument("tenant: \(p)") }
        // Claimed in one step: two AddTenant calls at once must not both start a recovery.
        let claimed = slots.withLock { s -> Bool in
            guard s[tenant] == nil else { return false }
            s[tenant] = .recovering
            return true
        }
        guard claimed else { throw RPCError(.alreadyExists, "tenant \(tenant) exists") }
        do {
            try PosixFileSystem().createDirectory("\(configuration.dataDirectory)/\(tenant)")
            if !TenantKeyRing.hasAnyKey(tenant: tenant, directory: configuration.keyDirectory) {
                try TenantKeyRing.addVersion(tenant: tenant, directory: configuration.keyDirectory)
            }
            _ = try TenantKeyRing.codeKey(tenant: tenant, directory: configuration.keyDirectory, create: true)
        } catch {
            slots.withLock { $0[tenant] = nil }  // give the claim back
            throw error
        }
        startRecovery(tenant)
    }

    /// Removes a tenant: refused while it holds records unless `force`, which first
    /// writes a final snapshot. Its folder is moved under `.removed/`, never deleted.
    public func remove(_ tenant: String, force: Bool) throws -> String {
        _ = try database(tenant)  // the status that explains why it cannot be removed
        // Claimed in one step, from serving only: a second removal (a retry) meanwhile is
        // refused instead of writing into a closed database's folder.
        let claimed = slots.withLock { s -> TenantDatabase? in
            guard case let .serving(db)? = s[tenant] else { return nil }
            s[tenant] = .removing
            return db
        }
        guard let db = claimed else { throw RPCError.unavailable("tenant \(tenant) is being removed or is not serving") }
        do {
            let records = db.version.state.count
            if records > 0 && !force {
                throw RPCError(.failedPrecondition, "tenant \(tenant) still holds \(records) records; remove with force (a final snapshot is kept)")
            }
            if records > 0 { try db.snapshot() }
        } catch {
            // Nothing changed: it serves on — unless the server closed every tenant meanwhile.
            if !giveBack(tenant, { $0[tenant] = .serving(db) }) { db.close() }
            throw error
        }
        db.close()
        let graveyard = "\(configuration.dataDirectory)/.removed"
        let target = "\(graveyard)/\(tenant)-\(Int(Date().timeIntervalSince1970))"
        do {
            try PosixFileSystem().createDirectory(graveyard)
            try FileManager.default.moveItem(atPath: "\(configuration.dataDirectory)/\(tenant)", toPath: target)
        } catch {
            // Closed but still in place: opened again, as after a restart (unless the server
            // closed every tenant meanwhile).
            if giveBack(tenant, { $0[tenant] = .recovering }) { startRecovery(tenant) }
            throw error
        }
        _ = giveBack(tenant) { $0[tenant] = nil }
        logger.notice("tenant removed", metadata: ["tenant": "\(tenant)", "kept_in": "\(target)"])
        return target
    }

    /// Runs `change` if `tenant` is still claimed by `remove` (`closeAll` may have dropped
    /// it meanwhile); whether it ran.
    private func giveBack(_ tenant: String, _ change: (inout [String: Slot]) -> Void) -> Bool {
        slots.withLock { s in
            guard case .removing? = s[tenant] else { return false }
            change(&s)
            return true
        }
    }

    /// Logs, per tenant, how many 除票 are due for deletion (DOMAIN.md §6). Deleting them
    /// takes a tenant administrator's approval (`chukanctl purge --approve`).
    public func logPurgeDue(today: CalendarDate = TenantManager.tokyoToday()) {
        for t in tenants {
            guard let s = status(t, today: today), s.state == .serving, s.purgeDue > 0 else { continue }
            logger.notice("除票 past retention await approval", metadata: ["tenant": "\(t)", "due": "\(s.purgeDue)", "today": "\(today.key)"])
        }
    }

    public func closeAll() {
        let all = slots.withLock { s -> [TenantDatabase] in
            let dbs = s.values.compactMap { slot -> TenantDatabase? in
                if case let .serving(db) = slot { return db }
                return nil
            }
            s.removeAll()
            return dbs
        }
        for db in all { db.close() }
    }

    public static func tokyoToday(_ now: Date = Date()) -> CalendarDate {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Tokyo")!
        let c = calendar.dateComponents([.year, .month, .day], from: now)
        return CalendarDate(UInt32(c.year!), UInt32(c.month!), UInt32(c.day!))
    }
}
