import CProtobufC
import ChukanCore
import ChukanProto
import ChukanProtoC
import NIOCore

/// One entry of `google.rpc.Status.details`, in `google.protobuf.Any`'s shape.
public struct StatusDetail: Sendable, Hashable {
    public var typeURL: String
    public var value: [UInt8]
    public init(typeURL: String, value: [UInt8]) {
        self.typeURL = typeURL
        self.value = value
    }
}

/// The status of a finished call, as `ttrpc.Status` (google.rpc.Status on the wire).
public struct RPCStatus: Sendable, Hashable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String
    public var details: [StatusDetail]

    public init(code: StatusCode, message: String = "", details: [StatusDetail] = []) {
        self.code = code
        self.message = message
        self.details = details
    }

    public init(_ error: RPCError) { self.init(code: error.code, message: error.message) }

    public static let ok = RPCStatus(code: .ok)

    public var isOK: Bool { code == .ok }
    public var error: RPCError? { isOK ? nil : RPCError(code, message) }
    public var description: String { message.isEmpty ? code.name : "\(code.name): \(message)" }
}

/// `ttrpc.Request`, the data of a request frame.
public struct TTRPCRequest: ProtoMessage, Equatable {
    public static let protoName = "ttrpc.Request"
    nonisolated(unsafe) static let descriptor = protobufDescriptor(Ttrpc__Request.self, ttrpc__request__init)
    public static var protobufCDescriptor: UnsafePointer<ProtobufCMessageDescriptor> { descriptor }

    public var service: String
    public var method: String
    public var payload: ByteBuffer
    /// Time the caller allows, in nanoseconds; 0 means no deadline.
    public var timeoutNanos: Int64
    public var metadata: Metadata

    public init(service: String, method: String, payload: ByteBuffer, timeoutNanos: Int64 = 0, metadata: Metadata = Metadata()) {
        self.service = service
        self.method = method
        self.payload = payload
        self.timeoutNanos = timeoutNanos
        self.metadata = metadata
    }

    public func encode(into buffer: inout ByteBuffer) {
        withArena { arena in
            var message = Ttrpc__Request()
            ttrpc__request__init(&message)
            message.service = arena.cString(service)
            message.method = arena.cString(method)
            message.payload = arena.binary(payload)
            message.timeout_nano = timeoutNanos
            var entries: [UnsafeMutablePointer<Ttrpc__KeyValue>] = []
            for (key, value) in metadata {
                var kv = Ttrpc__KeyValue()
                ttrpc__key_value__init(&kv)
                kv.key = arena.cString(key)
                kv.value = arena.cString(value)
                entries.append(arena.make(kv))
            }
            message.n_metadata = entries.count
            message.metadata = arena.pointerArray(entries)
            withMessageBase(&message) { _ = ProtobufC.pack($0, into: &buffer) }
        }
    }

    /// A request carries at most this much metadata: a frame full of tiny entries would
    /// otherwise cost millions of allocations to decode, and keep as many strings alive
    /// for as long as its call lasts.
    public static let maxMetadataEntries = 64
    public static let maxMetadataBytes = 16 << 10
    /// Fields ttrpc.Request does not have (protobuf-c keeps a copy of each), and repeats of
    /// its singular fields (each costs protobuf-c a pass, and one frame could hold two
    /// million): at most this many in all.
    public static let maxUnknownFields = 16

    /// What protobuf-c would pass unseen, refused before it unpacks anything: more
    /// metadata or unknown fields than the limits above, and a name, metadata key or
    /// value that holds a NUL or is not UTF-8 (protobuf-c would cut it at the NUL, and
    /// Swift repair it: "chukan.v1.Echo\0x" would route as Echo).
    static func checkShape(_ bytes: UnsafeRawBufferPointer) throws {
        var reader = WireReader(bytes)
        var entries = 0, metadataBytes = 0, unknown = 0
        var seen: UInt8 = 0  // fields 1-4 met so far, one bit each
        func countUnknown() throws {
            unknown += 1
            guard unknown <= maxUnknownFields else { throw EnvelopeError("more than \(maxUnknownFields) fields ttrpc.Request does not have or repeats") }
        }
        do {
            while let (number, type) = try reader.nextField() {
                if (1...4).contains(number) {
                    let bit: UInt8 = 1 << (number - 1)
                    if seen & bit != 0 { try countUnknown() }
                    seen |= bit
                }
                switch (number, type) {
                case (1, .lengthDelimited), (2, .lengthDelimited):
                    guard isCleanText(try reader.lengthDelimited()) else {
                        throw EnvelopeError("\(number == 1 ? "service" : "method"): must be UTF-8 text without NUL")
                    }
                case (5, .lengthDelimited):
                    let entry = try reader.lengthDelimited()
                    entries += 1
                    metadataBytes += entry.count
                    guard entries <= maxMetadataEntries, metadataBytes <= maxMetadataBytes else {
                        throw EnvelopeError("metadata: at most \(maxMetadataEntries) entries and \(maxMetadataBytes) bytes")
                    }
                    var fields = WireReader(entry)
                    while let (n, t) = try fields.nextField() {
                        if (n == 1 || n == 2) && t == .lengthDelimited {
                            guard isCleanText(try fields.lengthDelimited()) else { throw EnvelopeError("metadata: keys and values must be UTF-8 text without NUL") }
                        } else {
                            try fields.skip(t)
                        }
                    }
                default:
                    if !(1...5).contains(number) { try countUnknown() }
                    try reader.skip(type)
                }
            }
        } catch is WireFormatError {
            throw ProtoDecodingError.malformed(message: protoName)  // protobuf-c's own answer to it
        }
    }

    /// Valid UTF-8 without NUL, checked in place (every request passes here: no String made).
    static func isCleanText(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var decoder = UTF8()
        var input = bytes.makeIterator()
        while true {
            switch decoder.decode(&input) {
            case let .scalarValue(scalar): if scalar.value == 0 { return false }
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    public init(protobuf bytes: UnsafeRawBufferPointer, limit: Int) throws {
        guard bytes.count <= limit else { throw ProtoDecodingError.tooLarge(message: Self.protoName, size: bytes.count, limit: limit) }
        try Self.checkShape(bytes)
        self = try ProtobufC.withUnpacked(
            Self.descriptor, as: Ttrpc__Request.self, name: Self.protoName, bytes: bytes, limit: limit
        ) { m in
            let r = m.pointee
            var metadata = Metadata()
            for i in 0..<r.n_metadata {
                guard let kv = r.metadata[i]?.pointee else { continue }
                metadata.add(kv.key.protoString, kv.value.protoString)
            }
            return TTRPCRequest(
                service: r.service.protoString, method: r.method.protoString,
                payload: r.payload.byteBuffer(), timeoutNanos: r.timeout_nano, metadata: metadata)
        }
    }
}

/// A request envelope this server refuses to unpack (`TTRPCRequest.checkShape`).
public struct EnvelopeError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// `ttrpc.Response`, the data of a response frame.
public struct TTRPCResponse: ProtoMessage, Equatable {
    public static let protoName = "ttrpc.Response"
    nonisolated(unsafe) static let descriptor = protobufDescriptor(Ttrpc__Response.self, ttrpc__response__init)
    public static var protobufCDescriptor: UnsafePointer<ProtobufCMessageDescriptor> { descriptor }

    public var status: RPCStatus
    public var payload: ByteBuffer

    public init(status: RPCStatus, payload: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.payload = payload
    }

    public func encode(into buffer: inout ByteBuffer) {
        Self.encode(status: status, payload: payload, into: &buffer)
    }

    /// Encodes a response without building the struct first (the server's hot path).
    /// An OK status with no message and no details costs no allocation.
    public static func encode(status: RPCStatus, payload: ByteBuffer, into buffer: inout ByteBuffer) {
        payload.withUnsafeReadableBytes { raw in
            var message = Ttrpc__Response()
            ttrpc__response__init(&message)
            message.payload = ProtobufCBinaryData(
                len: raw.count, data: UnsafeMutablePointer(mutating: raw.baseAddress?.assumingMemoryBound(to: UInt8.self)))
            var s = Ttrpc__Status()
            ttrpc__status__init(&s)
            s.code = status.code.rawValue
            if status.message.isEmpty && status.details.isEmpty {
                withUnsafeMutablePointer(to: &s) { sp in
                    message.status = sp
                    withMessageBase(&message) { _ = ProtobufC.pack($0, into: &buffer) }
                }
                return
            }
            withArena { arena in
                s.message = arena.cString(status.message)
                var details: [UnsafeMutablePointer<Ttrpc__StatusDetail>] = []
                for d in status.details {
                    var any = Ttrpc__StatusDetail()
                    ttrpc__status_detail__init(&any)
                    any.type_url = arena.cString(d.typeURL)
                    any.value = arena.binary(d.value)
                    details.append(arena.make(any))
                }
                s.n_details = details.count
                s.details = arena.pointerArray(details)
                message.status = arena.make(s)
                withMessageBase(&message) { _ = ProtobufC.pack($0, into: &buffer) }
            }
        }
    }

    public init(protobuf bytes: UnsafeRawBufferPointer, limit: Int) throws {
        self = try ProtobufC.withUnpacked(
            Self.descriptor, as: Ttrpc__Response.self, name: Self.protoName, bytes: bytes, limit: limit
        ) { m in
            var status = RPCStatus.ok
            if let s = m.pointee.status?.pointee {
                var details: [StatusDetail] = []
                for i in 0..<s.n_details {
                    guard let d = s.details[i]?.pointee else { continue }
                    details.append(StatusDetail(typeURL: d.type_url.protoString, value: d.value.bytes))
                }
                status = RPCStatus(code: StatusCode(rawValue: s.code), message: s.message.protoString, details: details)
            }
            return TTRPCResponse(status: status, payload: m.pointee.payload.byteBuffer())
        }
    }
}
