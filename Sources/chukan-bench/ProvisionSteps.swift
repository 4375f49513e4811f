import ArgumentParser
import ChukanProto
import ChukanRegister
import ChukanService
import ChukanStore
import Dispatch
import Foundation

/// The steps of one 提供, each timed alone on one core: where a call's CPU goes before
/// the network and the disk (Benchmarks/run-provision.sh prints it beside the load figures).
struct ProvisionSteps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision-steps", abstract: "Time each step of a 提供 on one core (µs per call).")
    @Option(help: "Iterations per step.") var iterations = 20_000
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Also verify permits on this many threads at once and print the rate (OpenSSL under contention).") var threads = 0

    func run() throws {
        let network = try ECDSAP256Key.generate()
        let verifier = try ECDSAP256Key(pem: try network.publicPEM())
        let inquirer = try X25519Key.generate()
        let sealer = try AnswerSealer()
        var resident = Array(SyntheticResidents(count: 1, seed: 1))[0]
        resident.restricted = false
        let entry = PersonEntry(record: resident.encodedBytes, history: [], isRemoved: false, removedOn: nil)
        let state = RegisterState(tenant: "012041")
        var p = ProvisionPermit()
        p.permitId = "STEP-1"
        p.inquirer = "LG011002"
        p.tenant = "012041"
        p.legalRow = 48
        p.fugo = String(repeating: "AB", count: 16)
        p.itemGroup = .nameAndBirth
        p.inquirerPublicKey = inquirer.publicKey
        p.issuedUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        p.expiresUnixMs = p.issuedUnixMs + 3_600_000
        let signed = try Permits.sign(p, with: network)
        let payload = try ProvisionPayloads.make(group: .nameAndBirth, person: entry, in: state, permit: p, nowUnixMs: p.issuedUnixMs).encodedBytes
        var record = AuditRecord()
        record.operation = "chukan.v1.Provision/Provide"
        record.subject = "T000000001"
        record.permitId = p.permitId
        let codeIssuer = try LocalCodeIssuer(key: Array(repeating: 1, count: 32))

        var results: [(String, Double)] = []
        func time(_ name: String, _ body: () throws -> Void) rethrows {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations { try body() }
            results.append((name, Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations) / 1000))
        }
        try time("permit: ECDSA P-256 verify + decode + checks") { _ = try Permits.open(signed, networkKey: verifier, nowUnixMs: p.issuedUnixMs + 1) }
        time("符号 → person (AES block)") { _ = codeIssuer.person(for: p.fugo) }
        try time("record decode (Resident)") { _ = try entry.resident() }
        try time("hold check") { _ = try ProvisionPayloads.holdReason(group: .nameAndBirth, person: entry, in: state) }
        try time("payload: build + encode") { _ = try ProvisionPayloads.make(group: .nameAndBirth, person: entry, in: state, permit: p, nowUnixMs: 1).encodedBytes }
        try time("seal: HKDF + AES-256-GCM (agreement cached)") { _ = try sealer.seal(payload, to: inquirer.publicKey, permitID: p.permitId) }
        try time("X25519 agreement (uncached)") { _ = try inquirer.agree(with: X25519Key(publicKey: sealer.publicKey)) }
        time("audit record: encode + chain fields + SHA-256") {
            var bytes = record.encodedBytes
            AuditLog.appendChainFields(sequence: 1, previousHash: AuditLog.genesis, to: &bytes)
            _ = SHA256.hash(bytes)
        }
        try time("request decode (ProvideRequest)") {
            var r = ProvideRequest()
            r.permit = signed
            r.inquirerPublicKey = inquirer.publicKey
            _ = try ProvideRequest(protobuf: r.encodedBytes)
        }
        var rate: (Int, Double)?
        if threads > 0 {
            let perThread = iterations
            let at = p.issuedUnixMs + 1
            let start = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: threads) { _ in
                for _ in 0..<perThread { _ = try? Permits.open(signed, networkKey: verifier, nowUnixMs: at) }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            rate = (threads, Double(threads * perThread) / seconds)
        }
        if json {
            var object: [String: Any] = ["steps": results.map { ["step": $0.0, "us": ($0.1 * 10).rounded() / 10] }]
            if let rate { object["verify_threads"] = rate.0; object["verify_per_s"] = rate.1.rounded() }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for (name, us) in results { print(String(format: "%8.1f µs  %@", us, name)) }
            if let rate { print(String(format: "%8.0f permits verified per second on %d threads (one shared key)", rate.1, rate.0)) }
        }
    }
}
