import ArgumentParser
import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanService
import ChukanTLS
import ChukanWire
import Foundation
import Histogram
import NIOCore
import NIOPosix

@main
struct ChukanBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chukan-bench",
        abstract: "Chukan's benchmarks: echo load over TLS, and the register.",
        subcommands: [ChukanBench.self, RegisterBench.self, SnapshotLoadBench.self, ProvisionSteps.self, Soak.self],
        defaultSubcommand: ChukanBench.self)

    /// Huge pages for the heap first (see `HugePages`): the process may start again here.
    static func main() async {
        HugePages.enableForThisProcess()
        await main(nil)
    }
}

struct ChukanBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo",
        abstract: "Load generator: N connections × M calls in flight against any ttrpc-over-TLS echo server.",
        discussion: """
        Calls chukan.v1.Echo/Echo with a fixed payload over mutual TLS. Each in-flight slot sends
        its next call as soon as the previous one returns. Warm-up calls are not counted.
        Latency is measured per call from send to answer (HdrHistogram, microseconds).
        Example: chukan-bench --server 127.0.0.1:7443 --connections 4 --in-flight 128 --duration 20
        """)

    @Option(help: "Server HOST:PORT.") var server = "127.0.0.1:7443"
    @Option(help: "CA bundle for the server certificate.") var ca = "demo/certs/ca.crt"
    @Option(help: "Client certificate.") var cert = "demo/certs/admin.crt"
    @Option(help: "Client key.") var key = "demo/certs/admin.key"
    @Option(name: .customLong("server-name"), help: "Name to verify in the server certificate.") var serverName = "localhost"
    @Option(help: "Connections to open.") var connections = 4
    @Option(name: .customLong("in-flight"), help: "Calls in flight in total, spread over the connections.") var inFlight = 16
    @Option(help: "Seconds to measure.") var duration: Double = 20
    @Option(help: "Seconds of warm-up before measuring.") var warmup: Double = 3
    @Option(help: "Payload bytes per call.") var payload = 1024
    @Option(help: "Client event-loop threads.") var threads = 1
    @Option(help: "A label for the output (e.g. the server's name).") var label = "server"
    @Option(help: "What to call: echo, lookup-atena (照会 by 宛名番号), lookup-fugo (照会 by 符号), acquire-code (符号取得), provide (提供).")
    var scenario: Scenario = .echo
    @Option(help: "Tenant of the service scenarios.") var tenant = "012041"
    @Option(help: "Synthetic residents in the tenant (ids A/T000000001 …): the scenarios pick among them.") var people = 100_000
    @Option(name: .customLong("code-key"), help: "The tenant's code key file (lookup-fugo and provide compute the 符号 they ask by).") var codeKey: String?
    @Option(name: .customLong("network-key"), help: "provide: the development network key (private) that signs the permits.") var networkKey: String?
    @Option(help: "provide: permits signed ahead of the run, one per call (a run that needs more fails).") var permits = 300_000

    enum Scenario: String, ExpressibleByArgument, CaseIterable {
        case echo, lookupAtena = "lookup-atena", lookupFugo = "lookup-fugo", acquireCode = "acquire-code", provide
    }

    /// The encoded requests the slots take in turn: one for echo, a pool of people
    /// otherwise, and for provide one request per call (a permit answers once).
    func requests() throws -> [ByteBuffer] {
        var rng = SystemRandomNumberGenerator()
        let ids = (0..<4096).map { _ in Int.random(in: 1...people, using: &rng) }
        func id(_ prefix: String, _ n: Int) -> String { prefix + String(repeating: "0", count: max(0, 9 - String(n).count)) + String(n) }
        switch scenario {
        case .echo:
            let body = EchoMessage(payload: ByteBuffer(repeating: 0x42, count: payload)).encoded()
            return [TTRPCRequest(service: "chukan.v1.Echo", method: "Echo", payload: body).encoded()]
        case .lookupAtena, .lookupFugo:
            let issuer = try codeKey.map { path -> LocalCodeIssuer in
                guard let key = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
                return try LocalCodeIssuer(key: Array(key))
            }
            if scenario == .lookupFugo && issuer == nil { throw ValidationError("lookup-fugo needs --code-key") }
            return ids.map { n in
                var r = LookupRequest()
                r.tenant = tenant
                if let issuer, scenario == .lookupFugo {
                    r.keyKind = .fugo
                    r.key = issuer.code(for: PackedID(id("T", n))!)
                } else {
                    r.keyKind = .atenaNumber
                    r.key = id("A", n)
                }
                return TTRPCRequest(service: "chukan.v1.Inquiry", method: "Lookup", payload: r.encoded()).encoded()
            }
        case .provide:
            return try ProvideLoad(tenant: tenant, people: people, codeKey: codeKey, networkKey: networkKey).requests(permits)
        case .acquireCode:
            return ids.map { n in
                var r = AcquireCodeRequest()
                r.tenant = tenant
                r.integratedAtenaNumber = id("T", n)
                return TTRPCRequest(service: "chukan.v1.Codes", method: "AcquireCode", payload: r.encoded()).encoded()
            }
        }
    }
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func validate() throws {
        guard connections > 0, inFlight > 0, duration > 0, warmup >= 0, payload >= 0, threads > 0 else {
            throw ValidationError("connections, in-flight, duration and threads must be positive")
        }
    }

    func run() async throws {
        guard let colon = server.lastIndex(of: ":"), let port = Int(server[server.index(after: colon)...]) else {
            throw ValidationError("--server must be HOST:PORT")
        }
        let host = String(server[..<colon])
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let tls = try TLSContext(.client(trustRootsPath: ca, serverHostname: serverName, certificateChainPath: cert, privateKeyPath: key))
        var clients: [RPCClient] = []
        for _ in 0..<connections {
            clients.append(try await RPCClient.connect(host: host, port: port, tls: tls, group: group))
        }
        let pool = try requests()
        let expected = scenario == .echo ? payload : 1

        let startNanos = DispatchTime.now().uptimeNanoseconds
        let measureFrom = startNanos + UInt64(warmup * 1e9)
        let stopAt = measureFrom + UInt64(duration * 1e9)
        // One recorder per connection, touched only on that connection's event loop.
        let recorders = clients.map { _ in Recorder() }
        var done: [EventLoopFuture<Void>] = []
        for slot in 0..<inFlight {
            let c = slot % connections
            let client = clients[c]
            done.append(client.eventLoop.flatSubmit {
                Slot(client: client, requests: pool, first: slot, step: inFlight, payload: expected, recorder: recorders[c], measureFrom: measureFrom, stopAt: stopAt).start()
            })
        }
        do {
            try await EventLoopFuture.andAllSucceed(done, on: group.next()).get()
        } catch {
            FileHandle.standardError.write(Data("chukan-bench: a call failed: \(error)\n".utf8))
            throw ExitCode(1)
        }
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var errors = 0
        for r in recorders {
            histogram.add(r.histogram)
            errors += r.errors
        }
        for c in clients { await c.close() }
        try await group.shutdownGracefully()

        let calls = Int(histogram.totalCount)
        let rate = Double(calls) / duration
        let p = { (q: Double) in Double(histogram.valueAtPercentile(q)) }
        if json {
            let object: [String: Any] = [
                "label": label, "scenario": scenario.rawValue, "connections": connections, "in_flight": inFlight, "payload_bytes": payload,
                "duration_s": duration, "calls": calls, "errors": errors, "calls_per_s": rate,
                "p50_us": p(50), "p99_us": p(99), "p999_us": p(99.9), "max_us": Double(histogram.max), "mean_us": histogram.mean,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("\(label): \(connections) connections × \(inFlight) in flight, \(scenario == .echo ? "\(payload)-byte echo" : scenario.rawValue), \(duration)s")
            print(String(format: "  %.0f calls/s   p50 %.0f µs   p99 %.0f µs   p99.9 %.0f µs   max %.0f µs   errors %d",
                         rate, p(50), p(99), p(99.9), Double(histogram.max), errors))
        }
        if errors > 0 { throw ExitCode(1) }
    }
}

/// Latencies of one connection's calls.
final class Recorder: @unchecked Sendable {
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var errors = 0
}

/// One in-flight slot: sends a call, and on its answer the next, until the time is up.
struct Slot: @unchecked Sendable {
    let client: RPCClient
    let requests: [ByteBuffer]
    /// Where in `requests` this slot starts; it then takes every `step`-th (the slots
    /// together take each request once before any is taken again).
    let first: Int
    let step: Int
    let payload: Int
    let recorder: Recorder
    let measureFrom: UInt64
    let stopAt: UInt64

    func start() -> EventLoopFuture<Void> {
        let promise = client.eventLoop.makePromise(of: Void.self)
        next(promise, first)
        return promise.futureResult
    }

    private func next(_ promise: EventLoopPromise<Void>, _ i: Int) {
        let sent = DispatchTime.now().uptimeNanoseconds
        guard sent < stopAt else {
            promise.succeed()
            return
        }
        client.call(encodedRequest: requests[i % requests.count]).whenComplete { result in
            let now = DispatchTime.now().uptimeNanoseconds
            switch result {
            case let .success(bytes):
                // The echo must come back whole: payload plus its 2-3 bytes of framing.
                if bytes.readableBytes < payload { recorder.errors += 1 }
                if sent >= measureFrom && now <= stopAt { _ = recorder.histogram.record((now - sent) / 1000) }
                next(promise, i + step)
            case let .failure(error):
                recorder.errors += 1
                promise.fail(error)
            }
        }
    }
}
