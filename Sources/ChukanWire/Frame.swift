import NIOCore

/// The ttrpc message types (byte 8 of the header).
public enum FrameType: UInt8, Sendable {
    case request = 0x01
    case response = 0x02
    case data = 0x03
}

/// Header flags. Their meaning depends on the frame type (see docs/PROTOCOL.md).
public struct FrameFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The sender sends nothing more on this stream.
    public static let remoteClosed = FrameFlags(rawValue: 0x01)
    /// On a request: the client will send data frames (a client-streaming call).
    public static let remoteOpen = FrameFlags(rawValue: 0x02)
}

/// The fixed 10-byte frame header:
/// data length u32 BE · stream id u32 BE · type u8 · flags u8.
public struct FrameHeader: Hashable, Sendable {
    public static let size = 10
    /// ttrpc's hard limit on a frame's data.
    public static let protocolMaxLength = 4 << 20

    public var length: UInt32
    public var streamID: UInt32
    /// The raw type byte; `type` is nil for one this protocol does not define.
    public var typeByte: UInt8
    public var flags: FrameFlags

    public init(length: UInt32, streamID: UInt32, type: FrameType, flags: FrameFlags = []) {
        self.init(length: length, streamID: streamID, typeByte: type.rawValue, flags: flags)
    }

    public init(length: UInt32, streamID: UInt32, typeByte: UInt8, flags: FrameFlags) {
        self.length = length
        self.streamID = streamID
        self.typeByte = typeByte
        self.flags = flags
    }

    public var type: FrameType? { FrameType(rawValue: typeByte) }
}

/// One whole frame: its header and exactly `header.length` bytes of data.
public struct Frame: Sendable, Equatable {
    public var header: FrameHeader
    public var data: ByteBuffer

    public init(header: FrameHeader, data: ByteBuffer) {
        self.header = header
        self.data = data
    }

    public init(streamID: UInt32, type: FrameType, flags: FrameFlags = [], data: ByteBuffer) {
        self.header = FrameHeader(length: UInt32(data.readableBytes), streamID: streamID, type: type, flags: flags)
        self.data = data
    }
}

extension ByteBuffer {
    /// Appends a frame header.
    @inlinable
    public mutating func writeFrameHeader(_ h: FrameHeader) {
        writeMultipleIntegers(h.length, h.streamID, h.typeByte, h.flags.rawValue, endianness: .big)
    }

    /// Appends a whole frame.
    @inlinable
    public mutating func writeFrame(_ frame: Frame) {
        writeFrameHeader(frame.header)
        writeImmutableBuffer(frame.data)
    }

    /// Appends a frame whose data `body` writes in place, then patches the length in the
    /// header. Saves a copy of the payload when encoding responses.
    @inlinable
    public mutating func writeFrame(streamID: UInt32, type: FrameType, flags: FrameFlags = [], _ body: (inout ByteBuffer) -> Void) {
        let start = writerIndex
        writeFrameHeader(FrameHeader(length: 0, streamID: streamID, type: type, flags: flags))
        body(&self)
        setInteger(UInt32(writerIndex - start - FrameHeader.size), at: start, endianness: .big)
    }
}
