import ChukanTLS
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Limits and addresses of one listener.
public struct RPCServerConfiguration: Sendable, Hashable {
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (tests).
    public var port: Int = 7443
    /// Connections beyond this are closed as soon as they are accepted.
    public var maxConnections: Int = 4096
    /// Calls in flight on one connection; more are answered RESOURCE_EXHAUSTED.
    public var maxConcurrentStreams: Int = 1024
    /// Largest frame data accepted (at most ttrpc's 4 MiB).
    public var maxMessageSize: Int = 4 << 20
    /// A connection with no traffic and no calls for this long is closed; nil never.
    public var idleTimeout: TimeAmount? = .seconds(300)
    /// A frame whose first bytes have arrived must be whole within this long, or the
    /// connection is closed (slowloris); nil never.
    public var frameTimeout: TimeAmount? = .seconds(30)
    /// A client stream that brings no message for this long (while the server is reading)
    /// ends with DEADLINE_EXCEEDED: a stream opened and left silent would hold its call,
    /// and the connection with it, for good; nil never.
    public var clientStreamIdleTimeout: TimeAmount? = .seconds(60)
    /// Bytes a second one connection may make the server read (the encrypted stream), with
    /// a burst of `readBurst`; nil unpaced. Bounds what a client sending maximum-size frames
    /// in a loop costs everyone else (`ReadPacingHandler`).
    public var readBytesPerSecond: Int? = 64 << 20
    public var readBurst: Int = 8 << 20
    /// How long a graceful shutdown waits for calls in flight before closing.
    public var drainTimeout: TimeAmount = .seconds(30)

    public init() {}
}

/// One ttrpc-over-TLS listener: accepts connections, builds their pipelines, tracks
/// them, and drains them on shutdown. As a `Service` it runs until swift-service-lifecycle
/// asks for a graceful shutdown (SIGTERM, SIGINT), then drains.
public final class RPCServer: Service, Sendable {
    public let configuration: RPCServerConfiguration
    public let tls: ReloadableTLSContext
    public let router: RPCRouter
    public let metrics: ServerMetrics
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var serverChannel: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var nextConnectionID: UInt64 = 1
        /// Set when shutdown begins: a connection accepted after it is refused, so every
        /// connection admitted is one the drain reaches and waits for.
        var draining = false
    }

    public init(
        configuration: RPCServerConfiguration, tls: ReloadableTLSContext, router: RPCRouter,
        group: any EventLoopGroup, metrics: ServerMetrics = ServerMetrics(), logger: Logger = Logger(label: "chukan.rpc")
    ) {
        self.configuration = configuration
        self.tls = tls
        self.router = router
        self.group = group
        self.metrics = metrics
        self.logger = logger
    }

    /// The bound address, once started.
    public var localAddress: SocketAddress? { state.withLock { $0.serverChannel?.localAddress } }

    public var openConnections: Int { state.withLock { $0.connections.count } }

    /// Binds and starts accepting. Returns the bound address. A server once shut down is
    /// not started again (its connections would be refused as arriving during a drain).
    @discardableResult
    public func start() async throws -> SocketAddress {
        if let address = localAddress { return address }
        guard !state.withLock({ $0.draining }) else { throw ChannelError.ioOnClosedChannel }
        let limits = TTRPCServerHandler.Limits(
            maxMessageSize: min(configuration.maxMessageSize, 4 << 20),
            maxConcurrentStreams: configuration.maxConcurrentStreams,
            frameTimeout: configuration.frameTimeout,
            clientStreamIdleTimeout: configuration.clientStreamIdleTimeout)
        let idleTimeout = configuration.idleTimeout
        let readPace = configuration.readBytesPerSecond.map { ($0, configuration.readBurst) }
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 * 1024, high: 512 * 1024))
            .childChannelInitializer { [self] channel in
                guard let id = admit(channel) else {
                    return channel.eventLoop.makeFailedFuture(ChannelError.inappropriateOperationForState)
                }
                return channel.eventLoop.makeCompletedFuture {
                    var connectionLogger = logger
                    connectionLogger[metadataKey: "conn"] = "\(id)"
                    let sync = channel.pipeline.syncOperations
                    if let (rate, burst) = readPace { try sync.addHandler(ReadPacingHandler(bytesPerSecond: rate, burst: burst)) }
                    try sync.addHandler(OpenSSLHandler(context: tls.context, halfClose: true))  // calls made before a client's close_notify are answered
                    try sync.addHandler(BackPressureHandler())
                    if let idleTimeout { try sync.addHandler(IdleStateHandler(allTimeout: idleTimeout)) }
                    try sync.addHandler(TTRPCServerHandler(router: router, limits: limits, metrics: metrics, logger: connectionLogger))
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        // A shutdown that ran while this bound found no listener to close: close it here.
        guard state.withLock({ s in
            if !s.draining { s.serverChannel = channel }
            return !s.draining
        }) else {
            try? await channel.close()
            throw ChannelError.ioOnClosedChannel
        }
        logger.info("listening", metadata: ["endpoint": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        return channel.localAddress!
    }

    /// Registers a new connection, or refuses it when the server is full.
    private func admit(_ channel: any Channel) -> UInt64? {
        let (id, draining): (UInt64?, Bool) = state.withLock { s in
            guard !s.draining else { return (nil, true) }
            guard s.connections.count < configuration.maxConnections else { return (nil, false) }
            s.connections[ObjectIdentifier(channel)] = channel
            defer { s.nextConnectionID += 1 }
            return (s.nextConnectionID, false)
        }
        if draining { return nil }
        guard let id else {
            metrics.rejectedConnections.increment()
            logger.warning("connection refused: limit reached", metadata: ["limit": "\(configuration.maxConnections)"])
            return nil
        }
        metrics.acceptedConnections.increment()
        metrics.openConnections.increment()
        channel.closeFuture.whenComplete { [self] _ in
            state.withLock { _ = $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
            metrics.openConnections.decrement()
        }
        return id
    }

    /// Runs until a graceful shutdown is requested, then drains.
    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops accepting, lets calls in flight finish (up to the drain timeout), then closes.
    public func shutdown() async {
        let (server, connections) = state.withLock { s in
            defer { s.serverChannel = nil; s.draining = true }
            return (s.serverChannel, Array(s.connections.values))
        }
        try? await server?.close()
        guard !connections.isEmpty else { return }
        logger.info("draining", metadata: ["connections": "\(connections.count)"])
        for c in connections { c.pipeline.fireUserInboundEventTriggered(ServerDrainEvent()) }
        let loop = group.next()
        let all = EventLoopFuture.andAllComplete(connections.map(\.closeFuture), on: loop)
        let timer = loop.scheduleTask(in: configuration.drainTimeout) {
            for c in connections { c.close(promise: nil) }
        }
        try? await all.get()
        timer.cancel()
        logger.info("drained")
    }
}
