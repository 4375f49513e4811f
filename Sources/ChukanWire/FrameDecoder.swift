import NIOCore

/// What the decoder made of the bytes so far.
public enum DecodedFrame: Sendable, Equatable {
    /// A whole frame.
    case frame(Frame)
    /// A frame whose data exceeded the limit. Its data was skipped, not buffered, so
    /// the connection stays in step and the stream can be answered RESOURCE_EXHAUSTED.
    case oversized(FrameHeader)
    /// A length over ttrpc's 4 MiB hard limit: whatever this is, it is not ttrpc (a TLS
    /// client hello sent in clear, an HTTP request, garbage). The decoder stops here and
    /// the connection should be closed.
    case notTTRPC(FrameHeader)
}

/// Splits a byte stream into ttrpc frames.
///
/// A pure state machine over bytes: no I/O, no allocation beyond slicing the input,
/// memory bounded by `maxLength` whatever the input says. This is what the fuzzer drives.
public struct FrameDecoder: Sendable {
    /// The largest frame data accepted (at most ttrpc's 4 MiB).
    public let maxLength: Int
    /// Bytes of an oversized frame still to be skipped.
    private var skipping: Int = 0

    public init(maxLength: Int = FrameHeader.protocolMaxLength) {
        precondition(maxLength >= 0 && maxLength <= FrameHeader.protocolMaxLength, "ttrpc frames carry at most 4 MiB")
        self.maxLength = maxLength
    }

    /// Whether the decoder is in the middle of skipping an oversized frame.
    public var isSkipping: Bool { skipping > 0 }

    /// Takes the next frame off the front of `buffer`, or returns nil when more bytes are needed.
    /// After `.notTTRPC` it returns the same again: the stream cannot be resynchronised.
    public mutating func next(from buffer: inout ByteBuffer) -> DecodedFrame? {
        if skipping > 0 {
            let n = min(skipping, buffer.readableBytes)
            buffer.moveReaderIndex(forwardBy: n)
            skipping -= n
            if skipping > 0 { return nil }
        }
        guard buffer.readableBytes >= FrameHeader.size,
              let (length, streamID, type, flags) = buffer.getMultipleIntegers(
                at: buffer.readerIndex, endianness: .big, as: (UInt32, UInt32, UInt8, UInt8).self)
        else { return nil }
        let header = FrameHeader(length: length, streamID: streamID, typeByte: type, flags: FrameFlags(rawValue: flags))

        if Int(length) > FrameHeader.protocolMaxLength {
            return .notTTRPC(header)
        }
        if Int(length) > maxLength {
            buffer.moveReaderIndex(forwardBy: FrameHeader.size)
            let n = min(Int(length), buffer.readableBytes)
            buffer.moveReaderIndex(forwardBy: n)
            skipping = Int(length) - n
            return .oversized(header)
        }
        guard buffer.readableBytes >= FrameHeader.size + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: FrameHeader.size)
        let data = buffer.readSlice(length: Int(length))!
        return .frame(Frame(header: header, data: data))
    }

    /// Decodes every whole frame in `bytes` (for tests and fuzzing); the rest stays unread.
    public mutating func decodeAll(_ buffer: inout ByteBuffer) -> [DecodedFrame] {
        var out: [DecodedFrame] = []
        while let f = next(from: &buffer) {
            out.append(f)
            if case .notTTRPC = f { break }
        }
        return out
    }
}
