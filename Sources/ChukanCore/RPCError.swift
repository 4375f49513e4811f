/// An error that travels to the caller as a ttrpc status.
///
/// Messages are written for the caller and for logs: they never carry personal data
/// (個人番号, names, addresses), only which field or rule failed.
public struct RPCError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String

    public init(_ code: StatusCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.name): \(message)" }

    public static func invalidArgument(_ m: String) -> RPCError { .init(.invalidArgument, m) }
    public static func unimplemented(_ m: String) -> RPCError { .init(.unimplemented, m) }
    public static func unavailable(_ m: String) -> RPCError { .init(.unavailable, m) }
    public static func resourceExhausted(_ m: String) -> RPCError { .init(.resourceExhausted, m) }
    public static func deadlineExceeded(_ m: String) -> RPCError { .init(.deadlineExceeded, m) }
    public static func permissionDenied(_ m: String) -> RPCError { .init(.permissionDenied, m) }
    public static func unauthenticated(_ m: String) -> RPCError { .init(.unauthenticated, m) }
    public static func `internal`(_ m: String) -> RPCError { .init(.internal, m) }
}

extension RPCError {
    /// The status any error reaches the caller as (the server's mapping): an `RPCError`
    /// as it is, a cancellation as CANCELLED, anything else as INTERNAL without its text,
    /// which may quote data.
    public static func from(_ error: Error) -> RPCError {
        switch error {
        case let e as RPCError: e
        case is CancellationError: RPCError(.cancelled, "the call was cancelled")
        default: RPCError(.internal, "internal error")
        }
    }
}
