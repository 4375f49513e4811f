import ChukanCore
import ChukanProto
import ChukanRegister
import ChukanStore
import Foundation
import Synchronization

/// Where audit records go: a tenant's own stream (in its data folder, under its key)
/// for everything done in that tenant, and the platform stream (`<data>/_platform/audit`,
/// under the platform's key `000000.vN.key`) for operator actions and for denials that
/// name no tenant that is serving.
public final class AuditTrail: Sendable {
    /// The key-ring name and WAL header tag of the platform stream (no municipality has it).
    public static let platformStream = "000000"

    let platform: AuditLog
    let tenants: TenantManager
    /// The line the retention job held to at its last run (see `agreedCutoff`).
    private let lastCutoffMs = Mutex<Int64?>(nil)

    /// The line the retention job held to at its last run, in Unix ms (nil before its first).
    public var retentionLineMs: Int64? { lastCutoffMs.withLock { $0 } }

    /// Opens the platform stream, creating its key on first start.
    public init(tenants: TenantManager) throws {
        self.tenants = tenants
        let keys = tenants.configuration.keyDirectory
        if !TenantKeyRing.hasAnyKey(tenant: Self.platformStream, directory: keys) {
            try TenantKeyRing.addVersion(tenant: Self.platformStream, directory: keys)
        }
        let ring = try TenantKeyRing.load(tenant: Self.platformStream, directory: keys)
        platform = try AuditLog.open(
            directory: Self.platformDirectory(dataDirectory: tenants.configuration.dataDirectory), keyRing: ring,
            options: tenants.configuration.options.audit)
    }

    public static func platformDirectory(dataDirectory: String) -> String { "\(dataDirectory)/_platform/audit" }

    /// Records `record` in the tenant's stream when `tenant` is serving, else in the
    /// platform stream; returns once it is durable.
    public func record(_ record: AuditRecord, tenant: String?) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            self.record(record, tenant: tenant) { continuation.resume(with: $0) }
        }
    }

    /// `record(_:tenant:)` with a callback, run on the log's writer thread once the record
    /// is durable (or failed).
    public func record(_ record: AuditRecord, tenant: String?, done: @escaping @Sendable (Result<Void, Error>) -> Void) {
        var r = record
        r.timeUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        let log: AuditLog
        if let tenant, let db = try? tenants.database(tenant) {
            r.tenant = tenant
            log = db.audit
        } else {
            r.tenant = Self.recordable(tenant: tenant)
            log = platform
        }
        log.record(r) { done($0.map { _ in () }) }
    }

    /// Records in the platform stream whatever the tenant (operator actions).
    public func recordPlatform(_ record: AuditRecord, tenant: String?) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            recordPlatform(record, tenant: tenant) { continuation.resume(with: $0) }
        }
    }

    public func recordPlatform(_ record: AuditRecord, tenant: String?, done: @escaping @Sendable (Result<Void, Error>) -> Void) {
        var r = record
        r.timeUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        r.tenant = Self.recordable(tenant: tenant)
        platform.record(r) { done($0.map { _ in () }) }
    }

    /// The tenant a caller named, as the platform stream keeps it (seven years): a
    /// 地方公共団体コード, or nothing — never arbitrary text a caller sent.
    static func recordable(tenant: String?) -> String {
        guard let tenant, Identifiers.localGovernmentCodeProblem(tenant) == nil else { return "" }
        return tenant
    }

    /// The retention job: in every serving tenant's stream and the platform's, purges the
    /// segments whose records are all older than 7 years (Asia/Tokyo calendar). Returns
    /// the records purged per stream ("platform" for the platform's).
    /// The wall clock alone does not decide: see `agreedCutoff`.
    public func purgeExpired(now: Date = Date()) async -> [(stream: String, purged: Int, error: String?)] {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Tokyo")!
        let cutoff = calendar.date(byAdding: .year, value: -AuditLog.retentionYears, to: now) ?? now
        let clockCutoffMs = Int64(cutoff.timeIntervalSince1970 * 1000)
        let agreed = lastCutoffMs.withLock { last in
            let agreed = Self.agreedCutoff(clock: clockCutoffMs, previous: last)
            // The line this run held to, not the clock's — and never pulled back by a clock
            // that went backwards for a run (purging would stall for as long).
            last = max(last ?? Int64.min, agreed ?? clockCutoffMs)
            return agreed
        }
        guard let cutoffMs = agreed else { return [] }
        var streams: [(String, AuditLog)] = [("platform", platform)]
        for t in tenants.tenants { if let db = try? tenants.database(t) { streams.append((t, db.audit)) } }
        var out: [(stream: String, purged: Int, error: String?)] = []
        for (name, log) in streams {
            do { out.append((name, try await log.purge(before: cutoffMs), nil)) } catch { out.append((name, 0, "\(error)")) }
        }
        return out
    }

    /// How far a run of the retention job may purge: never on its first run after a start
    /// (it only notes the clock's cutoff), then no further than two days past the line the
    /// run before held to. A clock set years ahead at boot (and corrected within the day),
    /// or jumping while the server runs, could otherwise delete years of records in one
    /// run, for good; after a jump the line creeps two days a day, never leaps. (A clock
    /// wrong from boot and for more than a day still moves the line; a server restarted
    /// more often than daily purges only when it runs a day.)
    public static func agreedCutoff(clock: Int64, previous: Int64?) -> Int64? {
        guard let previous else { return nil }
        return min(clock, previous + 2 * 86_400_000)
    }

    public func close() { platform.close() }
}
