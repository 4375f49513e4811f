import ArgumentParser
import ChukanCore
import ChukanProto
import ChukanRegister
import ChukanService
import ChukanStore
import Foundation

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Check and search the audit trail of a tenant, or of the platform (offline, read-only).",
        discussion: """
            Each tenant's trail is in <data>/<tenant>/audit, encrypted under the tenant's key; the platform's
            (operator actions, denials naming no serving tenant) in <data>/_platform/audit under the key
            \(AuditTrail.platformStream).vN.key. Both can be read while the server runs: nothing is written.
            """,
        subcommands: [Verify.self, Query.self])

    struct Stream: ParsableArguments {
        @Option(help: "Data directory (one folder per tenant).") var data = "demo/data"
        @Option(help: "Key directory.") var keys = "demo/keys"
        @Option(help: "Tenant whose trail to read (地方公共団体コード).") var tenant: String?
        @Flag(help: "Read the platform's trail instead of a tenant's.") var platform = false

        func validate() throws {
            guard platform != (tenant != nil) else { throw ValidationError("give exactly one of --tenant and --platform") }
            if let tenant, let p = Identifiers.localGovernmentCodeProblem(tenant) { throw ValidationError("--tenant \(p)") }
        }

        var directory: String {
            platform ? AuditTrail.platformDirectory(dataDirectory: data) : "\(data)/\(tenant!)/audit"
        }

        func keyRing() throws -> TenantKeyRing {
            try TenantKeyRing.load(tenant: platform ? AuditTrail.platformStream : tenant!, directory: keys)
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every record and the hash chain; name the first changed, dropped or reordered record. Exit 1 when one is found.")
        @OptionGroup var stream: Stream
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            guard FileManager.default.fileExists(atPath: stream.directory) else { throw ValidationError("no audit trail in \(stream.directory)") }
            let v = try AuditLog.verify(directory: stream.directory, keyRing: stream.keyRing())
            let head = Hex.encode(v.lastHash)
            if json {
                printJSON(["records": v.records, "intact": v.firstBad == nil, "first_bad": v.firstBad ?? "", "head_sha256": head])
            } else if let bad = v.firstBad {
                print("audit: BROKEN after \(v.records) good records: \(bad)")
            } else {
                print("audit: \(v.records) records, chain intact (head \(head.prefix(16))…)")
            }
            if v.firstBad != nil { throw ExitCode(1) }
        }
    }

    struct Query: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List records filtered by subject, principal or staff, operation and period.")
        @OptionGroup var stream: Stream
        @Option(help: "Subject: the internal id the record names (団体内統合宛名番号, tenant …).") var subject: String?
        @Option(help: "Principal (the policy's name) or staff id.") var who: String?
        @Option(help: "Operation, or its end (e.g. CreateSnapshot, chukan.v1.Admin/ListTenants).") var operation: String?
        @Option(help: "From this date (YYYY-MM-DD, Asia/Tokyo), inclusive.") var from: String?
        @Option(help: "Until this date (YYYY-MM-DD, Asia/Tokyo), inclusive.") var until: String?
        @Flag(help: "Only refusals (any status but OK).") var refused = false
        @Flag(help: "Print JSON lines.") var json = false

        // A bad date is the caller's mistake: say so before reading any file.
        func validate() throws {
            _ = try from.map { try Self.tokyoMidnight($0) }
            _ = try until.map { try Self.tokyoMidnight($0) }
        }

        func run() throws {
            let start = try from.map { try Self.tokyoMidnight($0) }
            let end = try until.map { try Self.tokyoMidnight($0) + 86_400_000 }
            let (records, damagedTail) = try AuditLog.readReportingTail(directory: stream.directory, keyRing: stream.keyRing())
            let matching = records.filter { r in
                (subject == nil || r.subject == subject) && (who == nil || r.principal == who || r.staff == who)
                    && (operation == nil || r.operation == operation || r.operation.hasSuffix("/\(operation!)"))
                    && (start == nil || r.timeUnixMs >= start!) && (end == nil || r.timeUnixMs < end!) && (!refused || r.outcomeCode != 0)
            }
            let time = ISO8601DateFormatter()
            time.timeZone = TimeZone(identifier: "Asia/Tokyo")
            for r in matching {
                let when = time.string(from: Date(timeIntervalSince1970: Double(r.timeUnixMs) / 1000))
                if json {
                    printJSON(["sequence": Int(r.sequence), "time": when, "tenant": r.tenant, "principal": r.principal, "certificate": r.certificate,
                               "staff": r.staff, "terminal": r.terminal, "operation": r.operation, "subject": r.subject,
                               "legal_row": r.legalRow, "outcome": Int(r.outcomeCode), "detail": r.outcomeDetail,
                               "inquirer": r.inquirer, "item_group": (ItemGroup(rawValue: Int32(bitPattern: r.itemGroup)) ?? .itemGroupUnspecified).listName,
                               "permit_id": r.permitId, "pending_id": r.pendingId, "route": r.route])
                } else {
                    // Fields a caller could choose (subject, detail, route) are printed
                    // printable: a record must not move the cursor or rewrite the screen.
                    let p = { (s: String) in printableText(s, limit: 512, keepSpaces: true) }
                    var who = r.principal.isEmpty ? "cert:\(r.certificate.isEmpty ? "-" : r.certificate)" : r.principal
                    if !r.staff.isEmpty { who = "\(r.staff)@\(who)" }  // a staff member on a terminal
                    // 情報提供等記録: to whom, under which row and permit.
                    let provision = r.inquirer.isEmpty && r.permitId.isEmpty && r.pendingId.isEmpty ? ""
                        : "to \(r.inquirer.isEmpty ? "-" : r.inquirer) 項 \(r.legalRow.isEmpty ? "-" : r.legalRow) permit \(r.permitId.isEmpty ? "-" : r.permitId)\(r.pendingId.isEmpty ? "" : " pending \(r.pendingId)")"
                    print(r.sequence, when, p(who), p(r.operation), p(r.subject.isEmpty ? "-" : r.subject), p(r.outcomeCode == 0 ? "OK" : "code \(r.outcomeCode): \(r.outcomeDetail)") + (provision.isEmpty ? "" : "\t" + p(provision)), separator: "\t")
                }
            }
            if !json { print("audit: \(matching.count) of \(records.count) records") }
            // The records before it are listed; the damage is not passed over in silence.
            if let damagedTail {
                FileHandle.standardError.write(Data("chukanctl: \(damagedTail); the records listed stop before it (chukanctl audit verify)\n".utf8))
                throw ExitCode(1)
            }
        }

        static func tokyoMidnight(_ s: String) throws -> Int64 {
            let parts = s.split(separator: "-").compactMap { Int($0) }
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "Asia/Tokyo")!
            // Calendar would take 2026-13-45 as a date in 2027: the date must read back the same.
            guard parts.count == 3, let d = calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2])),
                  calendar.dateComponents([.year, .month, .day], from: d) == DateComponents(year: parts[0], month: parts[1], day: parts[2])
            else {
                throw ValidationError("dates are YYYY-MM-DD, and must exist (\(s) does not)")
            }
            return Int64(d.timeIntervalSince1970 * 1000)
        }
    }
}
