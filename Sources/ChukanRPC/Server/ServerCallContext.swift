import ChukanCore
import ChukanTLS
import Logging
import NIOCore

/// What a handler knows about the call it serves.
public struct ServerCallContext: Sendable {
    public let service: String
    public let method: String
    public let streamID: UInt32
    /// Metadata the caller sent (authorization token, trace id, ...).
    public let metadata: Metadata
    /// When the caller stops waiting; nil when it sent no `timeout_nano`.
    public let deadline: NIODeadline?
    /// The caller's verified certificate; nil on a listener without client certificates.
    public let peer: PeerIdentity?
    public let remoteAddress: SocketAddress?
    /// The connection's event loop: unary handlers run on it and must not block it.
    public let eventLoop: any EventLoop
    public let allocator: ByteBufferAllocator
    private let connectionLogger: Logger

    /// Carries the connection id, stream id, service and method; never personal data.
    /// Built when asked for, so calls that log nothing pay nothing for it.
    public var logger: Logger {
        var l = connectionLogger
        l[metadataKey: "stream"] = "\(streamID)"
        l[metadataKey: "rpc"] = "\(service)/\(method)"
        return l
    }

    public init(
        service: String, method: String, streamID: UInt32, metadata: Metadata, deadline: NIODeadline?,
        peer: PeerIdentity?, remoteAddress: SocketAddress?, eventLoop: any EventLoop,
        allocator: ByteBufferAllocator, logger: Logger
    ) {
        self.service = service
        self.method = method
        self.streamID = streamID
        self.metadata = metadata
        self.deadline = deadline
        self.peer = peer
        self.remoteAddress = remoteAddress
        self.eventLoop = eventLoop
        self.allocator = allocator
        self.connectionLogger = logger
    }

    /// Whether the deadline has passed.
    public var isPastDeadline: Bool { deadline.map { $0 <= .now() } ?? false }
}
