import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanService
import ChukanTLS
import Logging
import NIOCore
import NIOPosix

/// An RPC server on a free loopback port, with Health, Echo and the test services.
struct TestServer {
    let server: RPCServer
    let slow: SlowService
    let pki: TestPKI
    let port: Int

    static func start(
        pki: TestPKI = .shared, requireClientCertificate: Bool = true, crl: Bool = false,
        restrictTo: Set<String>? = nil, metrics: ServerMetrics = ServerMetrics(),
        _ configure: (inout RPCServerConfiguration) -> Void = { _ in }
    ) async throws -> TestServer {
        var c = RPCServerConfiguration()
        c.port = 0
        configure(&c)
        let slow = SlowService()
        var router = RPCRouter([HealthService(), EchoService(), slow])
        if let restrictTo { router = router.restricted(to: restrictTo) }
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let server = RPCServer(
            configuration: c, tls: try ReloadableTLSContext(pki.serverTLS(requireClientCertificate: requireClientCertificate, crl: crl)),
            router: router, group: MultiThreadedEventLoopGroup.singleton, metrics: metrics, logger: logger)
        let address = try await server.start()
        return TestServer(server: server, slow: slow, pki: pki, port: address.port!)
    }

    func client(_ name: String? = "admin", pki: TestPKI? = nil, trusting ca: String? = nil) async throws -> RPCClient {
        try await RPCClient.connect(host: "127.0.0.1", port: port, tls: (pki ?? self.pki).clientTLS(name, trusting: ca ?? self.pki.caPath))
    }

    func stop() async { await server.shutdown() }
}

extension RPCClient {
    func echo(_ text: String, timeout: Duration? = nil) async throws -> String {
        let r = try await unary(service: "chukan.v1.Echo", method: "Echo", request: EchoMessage(bytes: Array(text.utf8)), as: EchoMessage.self, timeout: timeout)
        return String(buffer: r.payload)
    }

    func health() async throws -> HealthCheckResponse.ServingStatus {
        try await unary(service: "chukan.v1.Health", method: "Check", request: HealthCheckRequest(), as: HealthCheckResponse.self).status
    }

    func slow(_ method: String, millis: Int, timeout: Duration? = nil) async throws -> String {
        let r = try await unary(service: "test.Slow", method: method, request: EchoMessage(bytes: Array("\(millis)".utf8)), as: EchoMessage.self, timeout: timeout)
        return String(buffer: r.payload)
    }
}

/// The status code of a failed call, or nil if it succeeded.
func statusCode(_ body: () async throws -> Void) async -> StatusCode? {
    do {
        try await body()
        return nil
    } catch let e as RPCError {
        return e.code
    } catch {
        return .unknown
    }
}
