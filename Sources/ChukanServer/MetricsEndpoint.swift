import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// Serves the Prometheus text format on GET /metrics, on its own (loopback) port, apart
/// from the RPC listener: scraping needs no client certificate and reaches no data.
public final class MetricsEndpoint: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let channel: any Channel

    public var localAddress: SocketAddress? { channel.localAddress }

    private init(registry: PrometheusCollectorRegistry, channel: any Channel) {
        self.registry = registry
        self.channel = channel
    }

    public static func start(host: String, port: Int, registry: PrometheusCollectorRegistry, group: any EventLoopGroup) async throws -> MetricsEndpoint {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry))
                }
            }
            .bind(host: host, port: port)
            .get()
        return MetricsEndpoint(registry: registry, channel: channel)
    }

    public func close() async { try? await channel.close() }
}

private final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry
    private var head: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(h): head = h
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            var status = HTTPResponseStatus.ok
            var body = ByteBuffer()
            var contentType = "text/plain; version=0.0.4; charset=utf-8"
            if head.method == .GET && (head.uri == "/metrics" || head.uri.hasPrefix("/metrics?")) {
                var bytes: [UInt8] = []
                registry.emit(into: &bytes)
                body.writeBytes(bytes)
            } else if head.method == .GET && head.uri == "/healthz" {
                // The metrics endpoint answers: the process is up (RPC health is chukan.v1.Health).
                contentType = "text/plain; charset=utf-8"
                body.writeString("ok\n")
            } else {
                status = .notFound
                contentType = "text/plain; charset=utf-8"
                body.writeString("not found; try GET /metrics\n")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: "\(body.readableBytes)")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            let keepAlive = head.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}
