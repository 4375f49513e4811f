import ArgumentParser
import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanService
import ChukanStore
import Foundation

extension ItemGroup: ExpressibleByArgument {
    public init?(argument: String) { self.init(listName: argument) }
    public static var allValueStrings: [String] { listed.map(\.listName) }
}

/// 提供 as the national network's gateway sends it: a permit (from `dev permit`), the
/// inquirer's public key, and the request; the sealed answer goes to a file.
struct Provide: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "chukan.v1.Provision/Provide: answer an inquiry under a permit (network-gateway).",
        discussion: """
        The answer is sealed to the inquirer's key: open it with 'chukanctl dev open-answer'. A held answer \
        (自動応答不可) prints its pending id; fetch it with 'chukanctl call held fetch' once an approver released it.
        """)
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Tenant (地方公共団体コード) that provides.") var tenant = "012041"
    @Option(help: "機関 code of the inquiring agency.") var inquirer: String
    @Option(help: "主務省令第2条の表 項番号.") var row: UInt32
    @Option(help: "The person's 符号 in this tenant.") var fugo: String
    @Option(help: "Item group: \(ItemGroup.allValueStrings.joined(separator: ", ")).") var group: ItemGroup
    @Option(help: "The signed permit: a file written by 'chukanctl dev permit'.") var permit: String
    @Option(name: .customLong("inquirer-key"), help: "The inquirer's X25519 public key (PEM, from 'chukanctl dev inquirer-key').")
    var inquirerKey: String
    @Option(help: "経路情報, as the network sends it.") var route = "demo-route"
    @Option(help: "Where to write the sealed answer.") var out = "answer.bin"

    func run() async throws {
        var r = ProvideRequest()
        r.tenant = tenant
        r.inquirer = inquirer
        r.legalRow = row
        r.fugo = fugo
        r.itemGroup = group
        r.route = route
        r.permit = try SignedPermit(protobuf: readFile(permit))
        r.inquirerPublicKey = try X25519Key(pem: String(decoding: readFile(inquirerKey), as: UTF8.self)).publicKey
        let client = try await connection.connect()
        let response = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Provision", method: "Provide", request: r, as: ProvideResponse.self, metadata: connection.metadata, timeout: connection.duration)
        }
        guard let answer = response.answer else { throw ValidationError("the server answered without an answer") }
        try writeFile(out, answer.encodedBytes)
        print("sealed answer for permit \(answer.permitId) written to \(out) (\(answer.ciphertext.count) bytes); open it with: chukanctl dev open-answer --key <inquirer.key> \(out)")
    }
}

/// Held provisions (自動応答不可): the approver lists, reviews and decides; the gateway fetches.
struct Held: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Held provisions (自動応答不可): list, review, release, refuse (approver); fetch (network-gateway).",
        subcommands: [List.self, Review.self, Release.self, Refuse.self, Fetch.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "chukan.v1.Provision/ListHeld: provisions awaiting review (approver).")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
        @Flag(help: "Include released and refused ones.") var all = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            var r = ListHeldRequest()
            r.tenant = tenant
            r.all = all
            let client = try await connection.connect()
            let list = try await runCall(closing: client) {
                try await client.unary(service: "chukan.v1.Provision", method: "ListHeld", request: r, as: HeldList.self, metadata: connection.metadata, timeout: connection.duration)
            }
            if json { printJSON(list.held.map { jsonValue($0) ?? [:] }); return }
            for p in list.held {
                print("\(p.pendingId)  \(p.state)  項 \(p.legalRow)  inquirer \(p.inquirer)  \(p.itemGroup.listName)  person \(p.person)  held \(isoTime(p.heldUnixMs))  — \(p.reason)")
            }
            print("\(list.held.count) held provision(s)")
        }
    }

    struct Review: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "chukan.v1.Provision/ReviewHeld: the request and what would be sent (approver).")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
        @Argument(help: "Pending id.") var pendingID: String

        func run() async throws {
            var r = HeldRequest()
            r.tenant = tenant
            r.pendingId = pendingID
            let client = try await connection.connect()
            let review = try await runCall(closing: client) {
                try await client.unary(service: "chukan.v1.Provision", method: "ReviewHeld", request: r, as: HeldReview.self, metadata: connection.metadata, timeout: connection.duration)
            }
            printJSON([
                "pending": jsonValue(review.pending as Any) ?? [:], "would_send": jsonValue(review.wouldSend as Any) ?? [:],
                "would_send_sha256": Hex.encode(review.wouldSendSha256),
            ])
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "chukan.v1.Provision/DecideHeld: release a held provision (approver).",
            discussion: """
                A release names the review it approves: 'held review' prints would_send_sha256, and the \
                answer goes out only if it is still exactly what that review showed (else FAILED_PRECONDITION: \
                review it again).
                """)
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
        @Option(help: "A note for the record (no personal data).") var note = ""
        @Option(help: "would_send_sha256 of the review approved (64 hex digits, from 'held review').") var reviewed: String
        @Argument(help: "Pending id.") var pendingID: String
        func run() async throws {
            guard let digest = Hex.decode(reviewed), digest.count == 32 else {
                throw ValidationError("--reviewed must be the 64 hex digits of would_send_sha256 from 'chukanctl call held review'")
            }
            try await decide(connection, tenant: tenant, pendingID: pendingID, note: note, refuse: false, reviewed: digest)
        }
    }

    struct Refuse: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "chukan.v1.Provision/DecideHeld: refuse a held provision (approver).")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
        @Option(help: "A note for the record (no personal data).") var note = ""
        @Argument(help: "Pending id.") var pendingID: String
        func run() async throws { try await decide(connection, tenant: tenant, pendingID: pendingID, note: note, refuse: true) }
    }

    static func decide(_ connection: ConnectionOptions, tenant: String, pendingID: String, note: String, refuse: Bool, reviewed: [UInt8] = []) async throws {
        var r = HeldRequest()
        r.tenant = tenant
        r.pendingId = pendingID
        r.note = note
        r.refuse = refuse
        r.reviewedSha256 = reviewed
        let client = try await connection.connect()
        let p = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Provision", method: "DecideHeld", request: r, as: PendingProvision.self, metadata: connection.metadata, timeout: connection.duration)
        }
        print("\(p.pendingId): \(p.state) by \(p.decidedBy)")
    }

    struct Fetch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "chukan.v1.Provision/FetchHeld: the sealed answer of a released provision (network-gateway).")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
        @Option(help: "Where to write the sealed answer.") var out = "answer.bin"
        @Argument(help: "Pending id.") var pendingID: String

        func run() async throws {
            var r = HeldRequest()
            r.tenant = tenant
            r.pendingId = pendingID
            let client = try await connection.connect()
            let response = try await runCall(closing: client) {
                try await client.unary(service: "chukan.v1.Provision", method: "FetchHeld", request: r, as: ProvideResponse.self, metadata: connection.metadata, timeout: connection.duration)
            }
            guard let answer = response.answer else { throw ValidationError("the server answered without an answer") }
            try writeFile(out, answer.encodedBytes)
            print("sealed answer for permit \(answer.permitId) written to \(out)")
        }
    }
}

/// 開示請求: what the replica holds about a person and every provision of their data.
struct Disclose: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "chukan.v1.Provision/Disclose: a person's record and every provision of it (auditor; recorded).",
        discussion: "Prints the whole record, 個人番号 included: hand it to the person who asked, and to no one else.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
    @Option(help: "Which key: \(Lookup.Key.allCases.map(\.rawValue).joined(separator: ", ")).") var by: Lookup.Key = .kojin
    @Argument(help: "The key's value (the person's 個人番号, as on their card, by default); '-' reads it from standard input, out of sight of ps.") var key: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        var r = DiscloseRequest()
        r.tenant = tenant
        r.key = try keyFromArgumentOrStdin(key)
        r.keyKind = by.kind
        let client = try await connection.connect()
        let d = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Provision", method: "Disclose", request: r, as: Disclosure.self, metadata: connection.metadata, timeout: connection.duration)
        }
        if json {
            printJSON(["person": jsonValue(d.person as Any) ?? [:], "provisions": d.provisions.map { jsonValue($0) ?? [:] }, "produced": isoTime(d.producedUnixMs)])
            return
        }
        print("開示 — produced \(isoTime(d.producedUnixMs))")
        print("\n■ What the replica holds (団体内統合宛名番号 \(d.person?.integratedAtenaNumber ?? "")\(d.person?.removed == true ? ", 除票" : ""))")
        if let resident = d.person?.resident, let fields = jsonValue(resident) as? [String: Any] {
            for (k, v) in fields.sorted(by: { $0.key < $1.key }) { print("  \(k): \(plainText(v))") }
        }
        print("\n■ Provisions of this person's data (\(d.provisions.count))")
        for p in d.provisions {
            let outcome = p.outcomeCode == 0 ? "provided" : "\(StatusCode(rawValue: Int32(p.outcomeCode)).name): \(p.outcomeDetail)"
            print("  \(isoTime(p.timeUnixMs))  \(p.operation)  to \(p.inquirer.isEmpty ? "-" : p.inquirer)  項 \(p.legalRow)  \(p.itemGroup.listName)  permit \(p.permitId)\(p.pendingId.isEmpty ? "" : "  pending \(p.pendingId)")  — \(outcome)")
        }
    }

}

struct ReloadRules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload-rules", abstract: "chukan.v1.Provision/ReloadRules: read the permission list again (platform operator).")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let client = try await connection.connect()
        let s = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Provision", method: "ReloadRules", request: RulesRequest(), as: RulesSummary.self, metadata: connection.metadata, timeout: connection.duration)
        }
        print("permission list \(s.version): \(s.rows) rows\(s.illustrative ? " (illustrative)" : "")")
    }
}

func isoTime(_ ms: Int64) -> String {
    let f = ISO8601DateFormatter()
    f.timeZone = TimeZone(identifier: "Asia/Tokyo")
    return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
}

func readFile(_ path: String) throws -> [UInt8] {
    guard let d = FileManager.default.contents(atPath: path) else { throw ValidationError("\(path) is missing or unreadable") }
    return Array(d)
}

/// Writes `bytes` to `path`. A `secret` (a private key) is created new, mode 0600 from
/// its first byte (never readable by others, not even for a moment), and never replaces
/// a file already there.
func writeFile(_ path: String, _ bytes: [UInt8], secret: Bool = false) throws {
    guard secret else {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { throw ValidationError("cannot write \(path)") }
        return
    }
    let fs = PosixFileSystem()
    let file: any AppendFile
    do { file = try fs.createNew(path) } catch let e as StoreIOError where e.errno == EEXIST {
        throw ValidationError("refusing to overwrite \(path) (a private key): remove it first")
    }
    defer { file.close() }
    do {
        try bytes.withUnsafeBytes { try file.append($0) }
        try file.sync()
    } catch {
        try? fs.remove(path)
        throw error
    }
}
