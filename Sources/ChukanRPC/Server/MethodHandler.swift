import ChukanCore
import ChukanProto
import NIOCore

/// How a method is served. Payloads are raw protobuf bytes here; the typed constructors
/// below decode and encode with protobuf-c and answer INVALID_ARGUMENT for bad payloads.
public enum MethodHandler: Sendable {
    /// Runs on the connection's event loop. Return `.now` for work done inline (no
    /// allocation, no hop) or `.later` for work finishing on some future.
    case unary(@Sendable (_ request: ByteBuffer, _ context: ServerCallContext) throws -> UnaryResult)
    /// Runs as a Swift task, cancelled when the deadline passes or the connection goes.
    case unaryAsync(@Sendable (_ request: ByteBuffer, _ context: ServerCallContext) async throws -> ByteBuffer)
    /// Sends any number of data frames, then the final response (its status ends the call).
    case serverStreaming(@Sendable (_ request: ByteBuffer, _ context: ServerCallContext, _ writer: ServerStreamWriter) async throws -> Void)
    /// Takes the client's messages as they arrive, then answers once. The client opens the
    /// stream with the remote-open flag and ends it with a remote-closed data frame.
    case clientStreaming(@Sendable (_ messages: ClientStream, _ context: ServerCallContext) async throws -> ByteBuffer)

    public var isStreaming: Bool {
        switch self {
        case .serverStreaming, .clientStreaming: true
        default: false
        }
    }
}

public enum UnaryResult: Sendable {
    case now(ByteBuffer)
    case later(EventLoopFuture<ByteBuffer>)
}

extension MethodHandler {
    /// A request holds at most this many fields, nested ones counted (a resident's record
    /// has a few hundred), checked in place before protobuf-c unpacks it: a 4 MiB payload
    /// of two-byte fields would otherwise cost the event loop some 60 times what 4 MiB of
    /// ordinary fields costs.
    public static let maxRequestFields = 4096

    static func decode<M: ProtoMessage>(_ type: M.Type, _ payload: ByteBuffer) throws -> M {
        do {
            try payload.withUnsafeReadableBytes {
                try ProtobufC.checkFieldCount(M.protobufCDescriptor, $0, name: M.protoName, limit: maxRequestFields)
            }
            return try M(protobuf: payload)
        } catch let error as ProtoDecodingError {
            throw RPCError.invalidArgument("request payload: \(error)")
        }
    }

    /// A unary method answered inline on the event loop.
    public static func unary<Request: ProtoMessage, Response: ProtoMessage>(
        _ request: Request.Type, _ body: @escaping @Sendable (Request, ServerCallContext) throws -> Response
    ) -> MethodHandler {
        .unary { payload, context in
            let response = try body(decode(Request.self, payload), context)
            var out = context.allocator.buffer(capacity: 64)
            response.encode(into: &out)
            return .now(out)
        }
    }

    /// A unary method whose answer comes later on a future (e.g. after a group commit).
    public static func unaryFuture<Request: ProtoMessage, Response: ProtoMessage>(
        _ request: Request.Type,
        _ body: @escaping @Sendable (Request, ServerCallContext) throws -> EventLoopFuture<Response>
    ) -> MethodHandler {
        .unary { payload, context in
            let allocator = context.allocator
            return .later(try body(decode(Request.self, payload), context).map { response in
                var out = allocator.buffer(capacity: 64)
                response.encode(into: &out)
                return out
            })
        }
    }

    /// A unary method that writes its answer's bytes itself (e.g. straight from stored
    /// bytes) and hands them over on a future.
    public static func unaryEncoded<Request: ProtoMessage>(
        _ request: Request.Type, _ body: @escaping @Sendable (Request, ServerCallContext) throws -> EventLoopFuture<ByteBuffer>
    ) -> MethodHandler {
        .unary { payload, context in .later(try body(decode(Request.self, payload), context)) }
    }

    /// A unary method run as a Swift task.
    public static func unaryAsync<Request: ProtoMessage, Response: ProtoMessage>(
        _ request: Request.Type, _ body: @escaping @Sendable (Request, ServerCallContext) async throws -> Response
    ) -> MethodHandler {
        .unaryAsync { payload, context in
            let response = try await body(decode(Request.self, payload), context)
            var out = context.allocator.buffer(capacity: 64)
            response.encode(into: &out)
            return out
        }
    }

    /// A server-streaming method.
    public static func serverStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ request: Request.Type, _ response: Response.Type,
        _ body: @escaping @Sendable (Request, ServerCallContext, TypedStreamWriter<Response>) async throws -> Void
    ) -> MethodHandler {
        .serverStreaming { payload, context, writer in
            try await body(decode(Request.self, payload), context, TypedStreamWriter(writer: writer, allocator: context.allocator))
        }
    }

    /// A client-streaming method: each message decoded (a bad one ends the call with
    /// INVALID_ARGUMENT), one typed answer.
    public static func clientStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ request: Request.Type, _ response: Response.Type,
        _ body: @escaping @Sendable (AsyncThrowingMapSequence<ClientStream, Request>, ServerCallContext) async throws -> Response
    ) -> MethodHandler {
        .clientStreaming { messages, context in
            let typed = messages.map { try MethodHandler.decode(Request.self, $0) }
            return try await body(typed, context).encoded(allocator: context.allocator)
        }
    }
}

/// A service: a name ("chukan.v1.Echo") and its methods by name ("Echo").
public protocol RPCService: Sendable {
    var serviceName: String { get }
    var methods: [String: MethodHandler] { get }
}

/// Looks up handlers by service and method. Built once, read by every connection.
public struct RPCRouter: Sendable {
    private var services: [String: [String: MethodHandler]] = [:]

    public init(_ services: [any RPCService] = []) {
        for s in services { register(s) }
    }

    public mutating func register(_ service: any RPCService) {
        precondition(services[service.serviceName] == nil, "service \(service.serviceName) registered twice")
        services[service.serviceName] = service.methods
    }

    /// The same router limited to the named services.
    public func restricted(to names: Set<String>) -> RPCRouter {
        var r = RPCRouter()
        r.services = services.filter { names.contains($0.key) }
        return r
    }

    public var serviceNames: [String] { services.keys.sorted() }

    /// The handler, or UNIMPLEMENTED naming what is missing.
    public func handler(service: String, method: String) -> Result<MethodHandler, RPCError> {
        guard let methods = services[service] else {
            return .failure(.unimplemented("unknown service \(Self.printable(service))"))
        }
        guard let handler = methods[method] else {
            return .failure(.unimplemented("unknown method \(Self.printable(method)) of service \(service)"))
        }
        return .success(handler)
    }

    /// Service and method names come from the caller: keep them short and printable in errors.
    public static func printable(_ s: String) -> String { printableText(s) }

}

/// The messages of a client stream, in order, as raw payloads. Taking one tells the
/// connection it may read more: the server stops reading a connection whose streams hold
/// more than a few MiB not yet taken (backpressure), and reads again as they are taken.
public struct ClientStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    let base: AsyncThrowingStream<ByteBuffer, Error>
    let taken: @Sendable (Int) -> Void

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<ByteBuffer, Error>.AsyncIterator
        let taken: @Sendable (Int) -> Void

        public mutating func next() async throws -> ByteBuffer? {
            guard let message = try await base.next() else { return nil }
            taken(ClientStream.inboxCost(of: message))
            return message
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), taken: taken) }

    /// What a message waiting for its handler counts against the connection's inbox limit:
    /// its bytes, and at least `minimumInboxCost` for each (an empty message is an entry
    /// too: empty frames in a loop must reach the limit like any others).
    static let minimumInboxCost = 256
    static func inboxCost(of message: ByteBuffer) -> Int { Swift.max(message.readableBytes, minimumInboxCost) }
}
