import ChukanCore
import ChukanProto
import ChukanWire
import NIOCore
import Testing

@Suite struct EnvelopeTests {
    /// Fields are counted before protobuf-c unpacks a request, nested ones too (as the
    /// schema says which fields are messages); a string's bytes are not walked into.
    @Test func fieldsAreCountedThroughNestedMessages() throws {
        func field(_ number: UInt8, _ body: [UInt8]) -> [UInt8] { [number << 3 | 2] + varint(body.count) + body }
        func varint(_ n: Int) -> [UInt8] {
            var n = n, out: [UInt8] = []
            while n >= 0x80 { out.append(UInt8(n & 0x7F) | 0x80); n >>= 7 }
            return out + [UInt8(n)]
        }
        let descriptor = RegisterEvent.protobufCDescriptor
        // A resident (field 5 of RegisterEvent) whose name (field 8 of Resident) repeats its kana (field 1) 200 times.
        let name = Array([[UInt8]](repeating: field(1, []), count: 200).joined())
        let event = field(5, field(8, name))
        try event.withUnsafeBytes { try ProtobufC.checkFieldCount(descriptor, $0, name: "e", limit: 202) }
        #expect(throws: ProtoDecodingError.tooManyFields(message: "e", limit: 201)) {
            try event.withUnsafeBytes { try ProtobufC.checkFieldCount(descriptor, $0, name: "e", limit: 201) }
        }
        // The same bytes inside a string field (the atena number, field 2 of Resident) are one field.
        let asText = field(5, field(2, name))
        try asText.withUnsafeBytes { try ProtobufC.checkFieldCount(descriptor, $0, name: "e", limit: 2) }
        // Nesting deeper than allowed is refused too.
        #expect(throws: ProtoDecodingError.self) {
            try event.withUnsafeBytes { try ProtobufC.checkFieldCount(descriptor, $0, name: "e", limit: 1000, maxDepth: 2) }
        }
        // A real event passes with room to spare.
        var real = RegisterEvent()
        real.kind = .record
        var r = Resident()
        r.atenaNumber = "1234567890"
        r.name = Name()
        r.name?.kana = "アサヒカワ タロウ"
        real.resident = r
        let bytes = real.encodedBytes
        try bytes.withUnsafeBytes { try ProtobufC.checkFieldCount(descriptor, $0, name: "e", limit: 8) }
    }

    /// Repeats of ttrpc.Request's singular fields count with its unknown fields.
    @Test func repeatsOfSingularFieldsAreBounded() throws {
        var ok = TTRPCRequest(service: "chukan.v1.Echo", method: "Echo", payload: ByteBuffer(bytes: [1])).encoded()
        for _ in 0...16 { ok.writeBytes([4 << 3, 0]) }  // timeout_nano (none when 0), then 16 repeats of it
        _ = try TTRPCRequest(protobuf: ok)
        ok.writeBytes([4 << 3, 0])
        #expect(throws: EnvelopeError.self) { _ = try TTRPCRequest(protobuf: ok) }
    }

    @Test func requestRoundTrips() throws {
        let r = TTRPCRequest(
            service: "chukan.v1.Echo", method: "Echo", payload: ByteBuffer(bytes: [0, 1, 2, 255]),
            timeoutNanos: 1_500_000_000, metadata: ["authorization": "Bearer x", "trace-id": "abc", "Trace-Id": "def"])
        let decoded = try TTRPCRequest(protobuf: r.encoded())
        #expect(decoded == r)
        #expect(decoded.metadata.values(for: "trace-id") == ["abc", "def"])
    }

    /// Field numbers as containerd's types.go: service=1, method=2, payload=3, timeout_nano=4, metadata=5.
    @Test func requestWireBytesMatchTTRPC() {
        let r = TTRPCRequest(service: "a", method: "b", payload: ByteBuffer(bytes: [9]), timeoutNanos: 1, metadata: ["k": "v"])
        #expect(r.encodedBytes == [0x0A, 1, 0x61, 0x12, 1, 0x62, 0x1A, 1, 9, 0x20, 1, 0x2A, 6, 0x0A, 1, 0x6B, 0x12, 1, 0x76])
    }

    @Test func responseRoundTripsWithStatusDetails() throws {
        let r = TTRPCResponse(
            status: RPCStatus(code: .invalidArgument, message: "field kojin_bango: check digit", details: [
                StatusDetail(typeURL: "type.googleapis.com/chukan.v1.FieldViolation", value: [1, 2, 3]),
            ]),
            payload: ByteBuffer())
        let decoded = try TTRPCResponse(protobuf: r.encoded())
        #expect(decoded == r)
    }

    /// Response{status=1 Status{code=1,message=2,details=3}, payload=2}.
    @Test func responseWireBytesMatchGoogleRPCStatus() {
        var b = ByteBuffer()
        TTRPCResponse.encode(status: RPCStatus(code: .notFound, message: "x"), payload: ByteBuffer(bytes: [7]), into: &b)
        #expect(Array(b.readableBytesView) == [0x0A, 5, 0x08, 5, 0x12, 1, 0x78, 0x12, 1, 7])
        var ok = ByteBuffer()
        TTRPCResponse.encode(status: .ok, payload: ByteBuffer(), into: &ok)
        #expect(Array(ok.readableBytesView) == [0x0A, 0])
    }

    @Test func malformedEnvelopeIsRejectedByName() {
        #expect(throws: ProtoDecodingError.malformed(message: "ttrpc.Request")) {
            try TTRPCRequest(protobuf: [0x0A, 0x05, 0x61])  // string field claims 5 bytes, has 1
        }
        #expect(throws: ProtoDecodingError.malformed(message: "ttrpc.Request")) {
            try TTRPCRequest(protobuf: [0x0F])  // wire type 7 does not exist
        }
    }

    @Test func decodeLimitIsEnforced() {
        let r = TTRPCRequest(service: "s", method: "m", payload: ByteBuffer(repeating: 1, count: 100))
        #expect(throws: ProtoDecodingError.tooLarge(message: "ttrpc.Request", size: 108, limit: 50)) {
            try TTRPCRequest(protobuf: r.encoded(), limit: 50)
        }
    }

    @Test func emptyBytesDecodeAsDefaults() throws {
        let r = try TTRPCRequest(protobuf: [])
        #expect(r.service == "" && r.method == "" && r.payload.readableBytes == 0 && r.timeoutNanos == 0 && r.metadata.isEmpty)
        let resp = try TTRPCResponse(protobuf: [])
        #expect(resp.status == .ok)
    }

    @Test func healthAndEchoMessages() throws {
        #expect(try HealthCheckResponse(protobuf: HealthCheckResponse(status: .notServing).encoded()).status == .notServing)
        // An enum value from a newer schema reads as UNKNOWN.
        #expect(try HealthCheckResponse(protobuf: [0x08, 0x09]).status == .unknown)
        let echo = EchoMessage(bytes: Array(repeating: 0xAB, count: 1024))
        #expect(try EchoMessage(protobuf: echo.encoded()) == echo)
        let expand = ExpandRequest(payload: ByteBuffer(string: "x"), count: 3)
        #expect(try ExpandRequest(protobuf: expand.encoded()) == expand)
        _ = try HealthCheckRequest(protobuf: [])
    }

    @Test func statusCodeNames() {
        #expect(StatusCode.invalidArgument.name == "INVALID_ARGUMENT")
        #expect(StatusCode.unauthenticated.rawValue == 16)
        #expect(StatusCode(rawValue: 99).name == "CODE_99")
    }
}
