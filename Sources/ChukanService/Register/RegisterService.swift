import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanStore
import Foundation

/// chukan.v1.Register: the resident system's writes into the replica (副本), one method per
/// operation, for the registrar role. Idempotency keys make retries safe: the key, the
/// time and a digest of the request travel in the WAL record, so a retry is recognised
/// after a restart too (`TenantDatabase.write`).
public struct RegisterService: RPCService {
    public static let name = "chukan.v1.Register"
    public let serviceName = RegisterService.name
    let tenants: TenantManager
    let access: AccessControl

    static let operations: [(method: String, kind: RegisterEventKind)] = [
        ("Record", .record), ("Correct", .correct), ("MoveWithin", .moveWithin), ("PlanMoveOut", .planMoveOut),
        ("ConfirmMoveOut", .confirmMoveOut), ("Remove", .remove), ("ChangeKojinBango", .changeKojinBango),
        ("ChangeHousehold", .changeHousehold),
    ]

    public init(tenants: TenantManager, access: AccessControl) {
        self.tenants = tenants
        self.access = access
    }

    public var methods: [String: MethodHandler] {
        var m: [String: MethodHandler] = [:]
        for (method, kind) in Self.operations {
            m[method] = .unaryAsync(WriteRequest.self) { request, context in
                let notes = AuditNotes()
                return try await access.perform(context, tenant: request.tenant, roles: [.registrar], subjectOf: { $0.person }, notes: notes) { _ in
                    let event = try Self.event(request, kind: kind)
                    let db = try tenants.database(request.tenant)
                    let result = try await db.write(event)
                    // A retry answered with the first write's result is not a second write:
                    // the trail says so, so that counting writes does not count it twice.
                    if result.replayed { notes.note { $0.outcomeDetail = "replayed: the write of sequence \(result.sequence)" } }
                    var r = WriteResponse()
                    r.sequence = result.sequence
                    r.person = result.person
                    r.replayed = result.replayed
                    return r
                }
            }
        }
        m["RequestExport"] = .unaryAsync(ExportRequest.self) { request, context in
            try await access.perform(context, tenant: request.tenant, roles: [.registrar], subjectOf: { $0.exportId }) { caller in
                let purpose = request.purpose.trimmingCharacters(in: .whitespaces)
                guard !purpose.isEmpty, purpose.count <= 200 else { throw RPCError.invalidArgument("purpose: say why, in at most 200 characters") }
                var t = ExportTicket()
                t.exportId = "EXP" + secureRandomBytes(8).map { String(format: "%02X", $0) }.joined()
                t.state = .requested
                t.requestedBy = Self.who(caller)
                t.purpose = purpose
                t.requestedUnixMs = Int64(access.now().timeIntervalSince1970 * 1000)
                try await Self.save(t, try tenants.database(request.tenant))
                return t
            }
        }
        m["ApproveExport"] = .unaryAsync(ExportRequest.self) { request, context in
            try await access.perform(context, tenant: request.tenant, roles: [.approver], subject: Self.recordable(exportID: request.exportId)) { caller in
                let db = try tenants.database(request.tenant)
                guard var t = db.current.exports[request.exportId] else { throw RPCError(.notFound, "no export with that export_id") }
                guard t.state == .requested else { throw RPCError(.failedPrecondition, "export \(t.exportId) is \(t.state), not awaiting approval") }
                // Four eyes: whoever asked for the replica does not approve it.
                guard Self.who(caller) != t.requestedBy else { throw RPCError.permissionDenied("an export is approved by someone other than its requester") }
                t.state = request.refuse ? .refused : .approved
                t.approvedBy = Self.who(caller)
                t.approvedUnixMs = Int64(access.now().timeIntervalSince1970 * 1000)
                try await Self.save(t, db)
                return t
            }
        }
        m["Export"] = .serverStreaming(ExportRequest.self, ExportChunk.self) { request, context, writer in
            try await access.perform(context, tenant: request.tenant, roles: [.registrar], subject: Self.recordable(exportID: request.exportId)) { caller in
                let db = try tenants.database(request.tenant)
                guard var t = db.current.exports[request.exportId] else { throw RPCError(.notFound, "no export with that export_id") }
                guard t.requestedBy == Self.who(caller) else { throw RPCError.permissionDenied("only the requester of an export may take it") }
                guard t.state == .approved else { throw RPCError(.failedPrecondition, "export \(t.exportId) is \(t.state); it needs an approver's approval and is taken once") }
                guard access.now().timeIntervalSince1970 * 1000 - Double(t.approvedUnixMs) <= 86_400_000 else {
                    throw RPCError(.failedPrecondition, "the approval of export \(t.exportId) is more than 24 hours old; ask again")
                }
                // Used before the first record leaves: a broken stream is not taken twice.
                t.state = .used
                try await Self.save(t, db)
                let version = db.current
                // The trail holds the export before any of it leaves: the stream's own record
                // comes only when it ends, and a crash meanwhile would leave none.
                var started = AccessControl.record(context, caller: caller, subject: t.exportId)
                started.outcomeDetail = "started: \(version.count) records through sequence \(version.sequence)"
                try await access.audit.record(started, tenant: caller.tenant)
                var chunk = ExportChunk()
                chunk.sequence = version.sequence
                chunk.total = UInt64(version.count)
                var chunkBytes = 0
                for (_, entry) in version.persons {
                    var v = PersonView()
                    let r = try entry.resident()
                    v.integratedAtenaNumber = r.integratedAtenaNumber
                    v.removed = entry.isRemoved
                    v.resident = r
                    chunk.people.append(v)
                    // At most 500 records and about 1 MiB a chunk: far below the 4 MiB frame
                    // limit however large records are (外字-heavy names, long histories).
                    chunkBytes += entry.record.count + 64
                    if chunk.people.count == 500 || chunkBytes >= 1 << 20 {
                        try await writer.write(chunk)
                        chunk.people.removeAll(keepingCapacity: true)
                        chunkBytes = 0
                    }
                }
                if !chunk.people.isEmpty || version.count == 0 { try await writer.write(chunk) }
            }
        }
        m["Import"] = .clientStreaming(WriteRequest.self, ImportSummary.self) { messages, context in
            let iterator = Reader(messages.makeAsyncIterator())
            // The first message names the tenant the whole stream writes to.
            guard let first = try await iterator.next() else { throw RPCError.invalidArgument("an import holds at least one write") }
            return try await access.perform(context, tenant: first.tenant, roles: [.registrar], subject: "import",
                                            subjectOf: { "import of \($0.accepted + $0.rejected) writes" }) { _ in
                let db = try tenants.database(first.tenant)
                var summary = ImportSummary()
                var index = 0
                var next: WriteRequest? = first
                // Each write joins the writer's queue in the order it arrived (`submit`); up to
                // 256 wait for their answers at once.
                let (results, sink) = AsyncStream<(Int, Result<TenantDatabase.WriteResult, Error>)>.makeStream()
                var answers = results.makeAsyncIterator()
                var inFlight = 0
                func collect(_ done: (Int, Result<TenantDatabase.WriteResult, Error>)) throws {
                    inFlight -= 1
                    switch done.1 {
                    case let .success(r):
                        summary.accepted += 1
                        summary.lastSequence = max(summary.lastSequence, r.sequence)
                    case let .failure(error):
                        let status = RPCError.from(error)
                        // The log itself failing is not one record's fault: stop the import.
                        if status.code == .unavailable { throw status }
                        summary.rejected += 1
                        if summary.rejections.count < 100 { summary.rejections.append("record \(done.0): \(status.code.name): \(status.message)") }
                    }
                }
                while let request = next {
                    try Task.checkCancellation()
                    index += 1
                    guard request.tenant == first.tenant else { throw RPCError.invalidArgument("record \(index): an import writes to one tenant only") }
                    let position = index
                    // Only the register's operations: never staff, export or purge events,
                    // which have their own methods, roles and checks.
                    let kind = request.event?.kind ?? .kindUnspecified
                    let write: Result<RegisterEvent, Error> = Self.operations.contains { $0.kind == kind } || kind == .kindUnspecified
                        ? Result { try Self.event(request, kind: kind == .kindUnspecified ? .record : kind) }
                        : .failure(RPCError.invalidArgument("event.kind: an import carries the register's operations (記載 … 世帯変更) only"))
                    inFlight += 1
                    switch write {
                    case let .success(event): db.submit(event) { sink.yield((position, $0)) }
                    case let .failure(error): sink.yield((position, .failure(error)))
                    }
                    while inFlight >= 256, let done = await answers.next() { try collect(done) }
                    next = try await iterator.next()
                }
                while inFlight > 0, let done = await answers.next() { try collect(done) }
                return summary
            }
        }
        return m
    }

    /// The import's message iterator, read by one task only (the call's): a box so the
    /// `perform` closure may hold it.
    final class Reader<Base: AsyncIteratorProtocol>: @unchecked Sendable {
        var base: Base
        init(_ base: Base) { self.base = base }
        func next() async throws -> Base.Element? { try await base.next() }
    }

    /// Who acts, for export tickets: the staff member, or the system principal.
    /// An export id as the trail may hold it: only one of the form this server issues
    /// ("EXP" and 16 hex digits); anything else a caller sent is left out of the record.
    static func recordable(exportID s: String) -> String {
        s.utf8.count == 19 && s.hasPrefix("EXP") && s.utf8.dropFirst(3).allSatisfy { (48...57).contains($0) || (65...70).contains($0) } ? s : ""
    }

    static func who(_ caller: Caller) -> String { caller.staff.map { "staff:\($0)" } ?? caller.principal }

    static func save(_ ticket: ExportTicket, _ db: TenantDatabase) async throws {
        var e = RegisterEvent()
        e.kind = .exportTicket
        e.export = ticket
        try await db.apply(e)
    }

    /// The event to log: the method's kind, and the server's idempotency fields (whatever
    /// the client put there is replaced).
    static func event(_ request: WriteRequest, kind: RegisterEventKind, now: Date = Date()) throws -> RegisterEvent {
        guard var e = request.event else { throw RPCError.invalidArgument("event: is required") }
        if e.kind == .kindUnspecified { e.kind = kind }
        guard e.kind == kind else { throw RPCError.invalidArgument("event.kind: this method writes \(kind)") }
        let key = request.idempotencyKey
        guard key.utf8.count <= 128, key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw RPCError.invalidArgument("idempotency_key: at most 128 printable ASCII characters, no spaces")
        }
        e.idempotencyKey = ""
        e.acceptedUnixMs = 0
        e.requestDigest = []
        if !key.isEmpty {
            e.requestDigest = SHA256.hash(e.encodedBytes)
            e.idempotencyKey = key
            e.acceptedUnixMs = Int64(now.timeIntervalSince1970 * 1000)
        }
        return e
    }
}
