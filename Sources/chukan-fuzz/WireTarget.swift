import ChukanProto
import ChukanWire
import NIOCore

/// What a client sends: frames, the ttrpc envelope and the request messages. The first
/// byte picks the decoder, the rest is its input.
enum WireTarget {
    static let limit = 4 << 20

    static func run(_ input: UnsafeRawBufferPointer) {
        guard let selector = input.first else { return }
        let body = UnsafeRawBufferPointer(rebasing: input.dropFirst())
        switch selector % 15 {
        case 0: frames(body)
        case 1: _ = try? TTRPCRequest(protobuf: body, limit: limit)
        case 2: _ = try? TTRPCResponse(protobuf: body, limit: limit)
        case 3: _ = try? Resident(protobuf: body, limit: limit)
        case 4: _ = try? RegisterEvent(protobuf: body, limit: limit)
        case 5: _ = try? WriteRequest(protobuf: body, limit: limit)
        case 6: _ = try? LookupRequest(protobuf: body, limit: limit)
        case 7: _ = try? SearchRequest(protobuf: body, limit: limit)
        case 8: _ = try? StaffRequest(protobuf: body, limit: limit)
        case 9: _ = try? LoginRequest(protobuf: body, limit: limit)
        case 10: _ = try? AuditRecord(protobuf: body, limit: limit)
        case 11: _ = try? ExportRequest(protobuf: body, limit: limit)
        case 12: _ = try? ProvideRequest(protobuf: body, limit: limit)
        case 13: _ = try? HeldRequest(protobuf: body, limit: limit)
        default: _ = try? DiscloseRequest(protobuf: body, limit: limit)
        }
    }

    /// The frame decoder, fed in pieces as a socket would (piece sizes from the input).
    static func frames(_ body: UnsafeRawBufferPointer) {
        var decoder = FrameDecoder(maxLength: 64 * 1024)
        var buffer = ByteBuffer()
        var offset = 0
        var step = 1
        while offset < body.count {
            let n = min(step, body.count - offset)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: body[offset..<offset + n]))
            offset += n
            while let frame = decoder.next(from: &buffer) {
                switch frame {
                case let .frame(f) where f.header.type == .request:
                    _ = try? f.data.withUnsafeReadableBytes { try TTRPCRequest(protobuf: $0, limit: limit) }
                case .notTTRPC:
                    return  // the server closes such a connection: nothing more is read from it
                default:
                    break
                }
            }
            step = step % 97 + 7
        }
    }
}

