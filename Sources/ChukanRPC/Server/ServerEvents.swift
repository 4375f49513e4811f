/// Sent down every connection's pipeline when the server begins a graceful shutdown:
/// finish what is in flight, refuse new calls with UNAVAILABLE, then close.
public struct ServerDrainEvent: Sendable {
    public init() {}
}

/// Sent up a connection's pipeline when `ReadPacingHandler` starts holding back reads: the
/// server, not the client, is slowing the bytes down, so a frame's timeout must wait.
public struct ReadsPacedEvent: Sendable {
    public init() {}
}
