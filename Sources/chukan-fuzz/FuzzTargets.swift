import ChukanProto
import ChukanWire
import NIOCore

/// The decoders that read bytes from outside, behind one entry point. The first byte picks
/// the decoder, the rest is its input; every decoder must return or throw its own error —
/// never crash, hang or leak — whatever it is given.
enum FuzzTargets {
    static let limit = 4 << 20

    static func run(_ input: UnsafeRawBufferPointer) {
        guard let selector = input.first else { return }
        let body = UnsafeRawBufferPointer(rebasing: input.dropFirst())
        switch selector % 12 {
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
        default: _ = try? ExportRequest(protobuf: body, limit: limit)
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

/// libFuzzer's entry point (`scripts/fuzz.sh` builds with -sanitize=fuzzer,address).
@_cdecl("LLVMFuzzerTestOneInput")
public func chukanFuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzTargets.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if FUZZING
/// libFuzzer's driver, started from the entry point SwiftPM links an executable with.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("chukan_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in chukanFuzzOneInput(data, size) }
}
#endif
