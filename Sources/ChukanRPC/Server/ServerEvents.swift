/// Sent down every connection's pipeline when the server begins a graceful shutdown:
/// finish what is in flight, refuse new calls with UNAVAILABLE, then close.
public struct ServerDrainEvent: Sendable {
    public init() {}
}
