import ArgumentParser
import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanTLS
import Foundation
import NIOCore

/// How client commands reach the server.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Server address, HOST:PORT.") var server = "127.0.0.1:7443"
    @Option(help: "CA bundle the server's certificate must chain to.") var ca = "demo/certs/ca.crt"
    @Option(help: "Client certificate (PEM); '' for none (the health-only listener).") var cert = "demo/certs/admin.crt"
    @Option(help: "Client private key (PEM); '' for none.") var key = "demo/certs/admin.key"
    @Option(name: .customLong("server-name"), help: "Name to verify in the server certificate (default: the host).") var serverName: String?
    @Option(help: "Seconds to wait for an answer (more than 0, at most 86400).") var timeout: Double = 10
    @Option(help: "A staff sign-in token (from 'chukanctl call login'), sent as 'authorization: Bearer TOKEN'. Or set CHUKAN_TOKEN.")
    var token: String?

    /// The call's metadata: the staff token, when there is one.
    var metadata: Metadata {
        guard let t = token ?? ProcessInfo.processInfo.environment["CHUKAN_TOKEN"], !t.isEmpty else { return [:] }
        return ["authorization": "Bearer \(t)"]
    }

    func connect() async throws -> RPCClient {
        guard timeout > 0, timeout <= 86_400 else { throw ValidationError("--timeout must be more than 0 and at most 86400 seconds") }
        guard let colon = server.lastIndex(of: ":"), let port = Int(server[server.index(after: colon)...]), (1...65_535).contains(port) else {
            throw ValidationError("--server must be HOST:PORT, the port 1-65535")
        }
        var host = String(server[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let tls = try TLSContext(.client(
            trustRootsPath: ca, serverHostname: serverName ?? host,
            certificateChainPath: cert.isEmpty ? nil : cert, privateKeyPath: cert.isEmpty ? nil : key))
        return try await RPCClient.connect(host: host, port: port, tls: tls)
    }

    var duration: Duration { .nanoseconds(Int64(min(max(timeout, 0.001), 86_400) * 1e9)) }
}

struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call the server's RPCs.",
        subcommands: [
            Health.self, Echo.self, Tenants.self, Login.self, Logout.self, ChangePassword.self, Lookup.self, Search.self, Household.self,
            AcquireCode.self, LookupCode.self, Import.self, ExportCommand.self, Stats.self, ReloadPolicy.self,
            Provide.self, Held.self, ReloadRules.self,
        ])

    struct Health: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "chukan.v1.Health/Check: is the server serving?")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Ask about one tenant (SERVING once it has recovered).") var tenant: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try await connection.connect()
            let response = try await runCall(closing: client) {
                try await client.unary(service: "chukan.v1.Health", method: "Check", request: HealthCheckRequest(tenant: tenant ?? ""),
                                       as: HealthCheckResponse.self, metadata: connection.metadata, timeout: connection.duration)
            }
            let status = switch response.status {
            case .serving: "SERVING"
            case .notServing: "NOT_SERVING"
            case .unknown: "UNKNOWN"
            }
            print(json ? #"{"status":"\#(status)"}"# : status)
            if response.status != .serving { throw ExitCode(2) }
        }
    }

    struct Echo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "chukan.v1.Echo/Echo: send bytes, get them back.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Text to send.") var text: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try await connection.connect()
            let response = try await runCall(closing: client) {
                try await client.unary(service: "chukan.v1.Echo", method: "Echo", request: EchoMessage(bytes: Array(text.utf8)),
                                       as: EchoMessage.self, metadata: connection.metadata, timeout: connection.duration)
            }
            let back = String(buffer: response.payload)
            if json {
                let data = try JSONSerialization.data(withJSONObject: ["payload": back])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(back)
            }
        }
    }
}

struct Tenants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "chukan.v1.Admin/ListTenants: each tenant's state, records, sequence and 除票 due for purge.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let client = try await connection.connect()
        let r = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Admin", method: "ListTenants", request: ListTenantsRequest(), as: ListTenantsResponse.self, metadata: connection.metadata, timeout: connection.duration)
        }
        if json {
            printJSON(["tenants": r.tenants.map { ["tenant": $0.tenant, "state": stateName($0.state), "records": Int($0.records), "sequence": Int($0.sequence), "purge_due": Int($0.purgeDue), "detail": $0.detail] }])
            return
        }
        print("TENANT  STATE       RECORDS   SEQUENCE  PURGE-DUE")
        for t in r.tenants {
            print("\(t.tenant)  \(stateName(t.state).padding(toLength: 10, withPad: " ", startingAt: 0))  \(t.records)  \(t.sequence)  \(t.purgeDue)\(t.detail.isEmpty ? "" : "  \(t.detail)")")
        }
    }
}

/// The proto's name for a tenant state, e.g. "SERVING".
func stateName(_ s: TenantStatusState) -> String {
    switch s {
    case .stateUnspecified: "STATE_UNSPECIFIED"
    case .recovering: "RECOVERING"
    case .serving: "SERVING"
    case .failed: "FAILED"
    }
}

/// Runs a call, closes the connection (close_notify), and turns a non-OK status into a
/// clear message and exit code 1.
func runCall<T>(closing client: RPCClient, _ body: () async throws -> T) async throws -> T {
    do {
        let result = try await body()
        await client.close()
        return result
    } catch let error as RPCError {
        await client.close()
        FileHandle.standardError.write(Data("chukanctl: \(error.code.name): \(error.message)\n".utf8))
        throw ExitCode(1)
    }
}
