import ChukanCore
import CoreMetrics
import NIOCore
import Synchronization

/// The server's metrics, through swift-metrics (exported as Prometheus text by the
/// admin endpoint). Metric objects are made once per label set and cached, so a call
/// costs one short lock and a few atomic adds.
public final class ServerMetrics: Sendable {
    private struct CallKey: Hashable {
        var service: String
        var method: String
        var code: Int32
    }
    private struct MethodKey: Hashable {
        var service: String
        var method: String
    }

    private let calls = Locked<[CallKey: Counter]>([:])
    private let latencies = Locked<[MethodKey: Timer]>([:])
    public let openConnections = Meter(label: "chukan_connections_open")
    public let acceptedConnections = Counter(label: "chukan_connections_accepted_total")
    public let rejectedConnections = Counter(label: "chukan_connections_rejected_total")
    public let bytesReceived = Counter(label: "chukan_bytes_received_total")
    public let bytesSent = Counter(label: "chukan_bytes_sent_total")
    public let handshakeFailures = Counter(label: "chukan_tls_handshake_failures_total")
    public let protocolErrors = Counter(label: "chukan_protocol_errors_total")
    /// Times a connection stopped being read because its client streams' messages waiting
    /// for their handlers passed the high mark (PROTOCOL.md §6); also readable here.
    public let clientStreamPauses = Counter(label: "chukan_client_stream_read_pauses_total")
    private let pauses = Atomic<Int>(0)

    public init() {}

    func clientStreamPaused() {
        clientStreamPauses.increment()
        pauses.add(1, ordering: .relaxed)
    }

    /// `chukan_client_stream_read_pauses_total` so far (for tests).
    public var clientStreamPauseCount: Int { pauses.load(ordering: .relaxed) }

    /// Records one finished call. Unknown services are recorded under "unknown" so a
    /// caller cannot grow the label space.
    func record(service: String, method: String, code: StatusCode, since start: NIODeadline) {
        let callKey = CallKey(service: service, method: method, code: code.rawValue)
        let counter = calls.withLock { cache in
            if let c = cache[callKey] { return c }
            let c = Counter(
                label: "chukan_rpc_calls_total",
                dimensions: [("service", service), ("method", method), ("code", code.name)])
            cache[callKey] = c
            return c
        }
        counter.increment()
        let methodKey = MethodKey(service: service, method: method)
        let timer = latencies.withLock { cache in
            if let t = cache[methodKey] { return t }
            let t = Timer(
                label: "chukan_rpc_duration_seconds", dimensions: [("service", service), ("method", method)],
                preferredDisplayUnit: .seconds)
            cache[methodKey] = t
            return t
        }
        timer.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
    }
}
