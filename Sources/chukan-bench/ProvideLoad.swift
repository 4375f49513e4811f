import ArgumentParser
import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanService
import ChukanStore
import ChukanWire
import Dispatch
import Foundation
import NIOCore

/// 提供 requests for the load generator, made before the run: each with its own permit
/// signed by the (development) network key, for a random person of the tenant, from one
/// of a few inquirers (whose keys the server's answer-key agreements then reuse). People
/// with a handling restriction (every thousandth) are left out: their answers are held.
struct ProvideLoad {
    let tenant: String
    let people: Int
    let issuer: LocalCodeIssuer
    let networkKey: ECDSAP256Key
    let inquirerKeys: [[UInt8]]

    init(tenant: String, people: Int, codeKey: String?, networkKey: String?) throws {
        guard let codeKey, let key = FileManager.default.contents(atPath: codeKey) else { throw ValidationError("provide needs --code-key") }
        guard let networkKey, let pem = FileManager.default.contents(atPath: networkKey) else { throw ValidationError("provide needs --network-key") }
        self.tenant = tenant
        self.people = people
        issuer = try LocalCodeIssuer(key: Array(key))
        self.networkKey = try ECDSAP256Key(pem: String(decoding: pem, as: UTF8.self))
        guard self.networkKey.isPrivate else { throw ValidationError("--network-key must be the private key") }
        inquirerKeys = try (0..<8).map { _ in try X25519Key.generate().publicKey }
    }

    /// `count` requests, signed on every core.
    func requests(_ count: Int) throws -> [ByteBuffer] {
        let started = DispatchTime.now().uptimeNanoseconds
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let out = UnsafeMutableBufferPointer<ByteBuffer>.allocate(capacity: count)
        out.initialize(repeating: ByteBuffer())
        defer { out.deallocate() }
        let slices = ProcessInfo.processInfo.activeProcessorCount * 4
        let failed = Locked(false)
        let target = UncheckedBuffer(out)
        DispatchQueue.concurrentPerform(iterations: slices) { s in
            var rng = SystemRandomNumberGenerator()
            for i in stride(from: s, to: count, by: slices) {
                var n = Int.random(in: 1...people, using: &rng)
                if n % 1000 == 0 { n -= 1 }
                let id = "T" + String(repeating: "0", count: max(0, 9 - String(n).count)) + String(n)
                var p = ProvisionPermit()
                p.permitId = "BENCH-\(now)-\(i)"
                // 項 48 (市町村長, local tax) covers 除票 too: every synthetic person is answerable.
                p.inquirer = "LG011002"
                p.tenant = tenant
                p.legalRow = 48
                p.fugo = issuer.code(for: PackedID(id)!)
                p.itemGroup = i % 2 == 0 ? .nameAndBirth : .address
                p.inquirerPublicKey = inquirerKeys[i % inquirerKeys.count]
                p.issuedUnixMs = now
                p.expiresUnixMs = now + 3_600_000
                var r = ProvideRequest()
                r.tenant = tenant
                r.inquirer = p.inquirer
                r.legalRow = p.legalRow
                r.fugo = p.fugo
                r.itemGroup = p.itemGroup
                r.route = "BENCH-GW"
                r.inquirerPublicKey = inquirerKeys[i % inquirerKeys.count]
                do { r.permit = try Permits.sign(p, with: networkKey) } catch { failed.withLock { $0 = true }; return }
                target.buffer[i] = TTRPCRequest(service: "chukan.v1.Provision", method: "Provide", payload: r.encoded()).encoded()
            }
        }
        if failed.withLock({ $0 }) { throw ValidationError("signing a permit failed") }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        FileHandle.standardError.write(Data("chukan-bench: \(count) permits signed in \(String(format: "%.1f", seconds)) s\n".utf8))
        return Array(out)
    }

    struct UncheckedBuffer: @unchecked Sendable {
        let buffer: UnsafeMutableBufferPointer<ByteBuffer>
        init(_ b: UnsafeMutableBufferPointer<ByteBuffer>) { buffer = b }
    }
}
