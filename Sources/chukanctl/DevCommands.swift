import ArgumentParser
import ChukanProto
import ChukanRegister
import ChukanService
import ChukanStore
import Foundation

struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Development and test tools (synthetic data only).",
        subcommands: [WriteLoad.self, NetworkKey.self, InquirerKey.self, Permit.self, OpenAnswer.self])

    /// A development stand-in for the national network's permit-signing key.
    struct NetworkKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "network-key",
            abstract: "Make a development network key (ECDSA P-256): NAME.key signs permits, NAME.pub goes in the server's provision.network_key.",
            discussion: "Both files are marked as development keys: a server not started with 'development: true' refuses them.")
        @Option(help: "Folder to write into.") var out = "demo/provision"
        @Option(help: "File name stem.") var name = "network"

        func run() async throws {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let key = try ECDSAP256Key.generate()
            try writeFile("\(out)/\(name).key", Array(DevelopmentKey.mark(try key.privatePEM(), use: "national network permit-signing key").utf8), secret: true)
            try writeFile("\(out)/\(name).pub", Array(DevelopmentKey.mark(try key.publicPEM(), use: "national network permit-verification key").utf8))
            print("wrote \(out)/\(name).key (private, 0600) and \(out)/\(name).pub (for provision.network_key)")
        }
    }

    /// A development inquirer's X25519 key: answers are sealed to its public half.
    struct InquirerKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "inquirer-key",
            abstract: "Make a development inquirer key (X25519): NAME.key opens answers, NAME.pub is sent with each inquiry.")
        @Option(help: "Folder to write into.") var out = "demo/provision"
        @Option(help: "File name stem.") var name = "inquirer"

        func run() async throws {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let key = try X25519Key.generate()
            try writeFile("\(out)/\(name).key", Array(DevelopmentKey.mark(try key.privatePEM(), use: "inquirer answer key").utf8), secret: true)
            try writeFile("\(out)/\(name).pub", Array(DevelopmentKey.mark(try key.publicPEM(), use: "inquirer public key").utf8))
            print("wrote \(out)/\(name).key (private, 0600) and \(out)/\(name).pub")
        }
    }

    /// A permit signed offline with a development network key, as the network would issue it.
    struct Permit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign a development 提供許可証 for one inquiry, into a file for 'chukanctl call provide --permit'.")
        @Option(name: .customLong("network-key"), help: "The development network key (private).") var networkKey = "demo/provision/network.key"
        @Option(help: "機関 code of the inquirer.") var inquirer: String
        @Option(help: "Providing tenant.") var tenant = "012041"
        @Option(help: "主務省令第2条の表 項番号.") var row: UInt32
        @Option(help: "The person's 符号 in the providing tenant.") var fugo: String
        @Option(help: "Item group: \(ItemGroup.allValueStrings.joined(separator: ", ")).") var group: ItemGroup
        @Option(name: .customLong("inquirer-key"), help: "The inquirer's public key (PEM) the answer must be sealed to.") var inquirerKey = "demo/provision/inquirer.pub"
        @Option(help: "Permit id (default: random).") var id: String?
        @Option(help: "Seconds the permit is valid (at most 86400).") var validSeconds: Int64 = 600
        @Option(help: "Where to write the signed permit.") var out = "permit.bin"

        func run() async throws {
            let pem = String(decoding: try readFile(networkKey), as: UTF8.self)
            let key = try ECDSAP256Key(pem: pem)
            guard key.isPrivate else { throw ValidationError("--network-key must be the private key (NAME.key)") }
            guard (1...86_400).contains(validSeconds) else { throw ValidationError("--valid-seconds must be 1-86400") }
            var p = ProvisionPermit()
            p.permitId = id ?? "DEV-\(secureRandomHex(8))"
            if let problem = Permits.permitIDProblem(p.permitId) { throw ValidationError("--id \(problem)") }
            p.inquirer = inquirer
            p.tenant = tenant
            p.legalRow = row
            p.fugo = fugo
            p.itemGroup = group
            p.inquirerPublicKey = try X25519Key(pem: String(decoding: try readFile(inquirerKey), as: UTF8.self)).publicKey
            p.issuedUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
            p.expiresUnixMs = p.issuedUnixMs + validSeconds * 1000
            try writeFile(out, try Permits.sign(p, with: key).encodedBytes)
            print("permit \(p.permitId) for \(inquirer), 項 \(row), \(group.listName), valid \(validSeconds) s: \(out)")
        }
    }

    /// The inquirer's side: opens a sealed answer with the inquirer's private key.
    struct OpenAnswer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "open-answer", abstract: "Decrypt a sealed 提供 answer with the inquirer's private key and print it.")
        @Option(help: "The inquirer's private key.") var key = "demo/provision/inquirer.key"
        @Argument(help: "The sealed answer file (from 'call provide' or 'call held fetch').") var answer = "answer.bin"
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let inquirer = try X25519Key(pem: String(decoding: try readFile(key), as: UTF8.self))
            guard inquirer.isPrivate else { throw ValidationError("--key must be the inquirer's private key") }
            let sealed = try EncryptedAnswer(protobuf: try readFile(answer))
            let payload: ProvisionPayload
            do { payload = try AnswerSealer.open(sealed, with: inquirer) } catch {
                throw ValidationError("the answer does not open with this key (another inquirer's answer, or changed bytes)")
            }
            let value = jsonValue(payload) ?? [:]
            if json { printJSON(value); return }
            print("answer to permit \(payload.permitId) — \(payload.itemGroup.listName)\(payload.removed ? " (除票)" : "")")
            if let d = value as? [String: Any] {
                for (k, v) in d.sorted(by: { $0.key < $1.key }) where !["permit_id", "item_group", "schema_version"].contains(k) { print("  \(k): \(plainText(v))") }
            }
        }
    }

    /// The writer the crash test kills: applies synthetic residents with many writes in
    /// flight and prints "ack ID" the moment each one is durable.
    struct WriteLoad: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "write-load",
            abstract: "Write synthetic residents with N in flight, printing 'ack <id>' as each becomes durable (for crash tests).")
        @OptionGroup var store: StoreOptions
        @Option(help: "Residents to write in total (already present ones are skipped).") var count = 100_000
        @Option(help: "Writes in flight.") var concurrency = 64
        @Option(help: "Seed of the synthetic residents.") var seed: UInt64 = 5

        /// Unbuffered: the line must be out before the process can be killed.
        func ack(_ id: String) { FileHandle.standardOutput.write(Data("ack \(id)\n".utf8)) }

        func run() async throws {
            let db = try store.open()
            let present = db.current
            try await withThrowingTaskGroup(of: String.self) { group in
                var inFlight = 0
                for r in SyntheticResidents(count: count, seed: seed) where present.person(r.integratedAtenaNumber) == nil {
                    var resident = r
                    resident.removalReason = .reasonUnspecified
                    resident.removedOn = nil
                    var e = RegisterEvent()
                    e.kind = .record
                    e.reason = .tennyu
                    e.resident = resident
                    group.addTask {
                        try await db.apply(e)
                        return resident.integratedAtenaNumber
                    }
                    inFlight += 1
                    if inFlight >= concurrency, let id = try await group.next() {
                        ack(id)
                        inFlight -= 1
                    }
                }
                for try await id in group { ack(id) }
            }
            db.close()
        }
    }
}
