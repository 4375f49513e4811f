import ChukanWire
import NIOCore
import Testing

@Suite struct FrameDecoderTests {
    func frameBytes(_ id: UInt32, _ type: UInt8, _ flags: UInt8 = 0, _ data: [UInt8]) -> [UInt8] {
        var b = ByteBuffer()
        b.writeFrameHeader(FrameHeader(length: UInt32(data.count), streamID: id, typeByte: type, flags: FrameFlags(rawValue: flags)))
        b.writeBytes(data)
        return Array(b.readableBytesView)
    }

    @Test func headerIsTenBytesBigEndian() {
        let bytes = frameBytes(0x0102_0304, 0x01, 0x02, [0xAA, 0xBB])
        #expect(bytes == [0, 0, 0, 2, 1, 2, 3, 4, 0x01, 0x02, 0xAA, 0xBB])
    }

    @Test func decodesWholeFrames() throws {
        var buffer = ByteBuffer(bytes: frameBytes(1, 1, 0, [1, 2, 3]) + frameBytes(3, 3, 1, []))
        var decoder = FrameDecoder()
        let frames = decoder.decodeAll(&buffer)
        #expect(frames.count == 2)
        guard case let .frame(a) = frames[0], case let .frame(b) = frames[1] else {
            Issue.record("expected two frames")
            return
        }
        #expect(a.header.streamID == 1 && a.header.type == .request && Array(a.data.readableBytesView) == [1, 2, 3])
        #expect(b.header.streamID == 3 && b.header.type == .data && b.header.flags == .remoteClosed && b.data.readableBytes == 0)
        #expect(buffer.readableBytes == 0)
    }

    @Test func waitsForMoreBytes() {
        let all = frameBytes(5, 1, 0, Array(repeating: 7, count: 100))
        var decoder = FrameDecoder()
        var buffer = ByteBuffer(bytes: all.prefix(9))
        #expect(decoder.next(from: &buffer) == nil)
        buffer.writeBytes(all.dropFirst(9).prefix(50))
        #expect(decoder.next(from: &buffer) == nil)
        buffer.writeBytes(all.dropFirst(59))
        guard case let .frame(f)? = decoder.next(from: &buffer) else {
            Issue.record("expected a frame")
            return
        }
        #expect(f.data.readableBytes == 100)
    }

    /// Any split of the same bytes yields the same frames.
    @Test func randomSplitsGiveTheSameFrames() {
        var generator = SystemRandomNumberGenerator()
        var stream: [UInt8] = []
        var expected: [(UInt32, Int)] = []
        for i in 0..<50 {
            let n = Int.random(in: 0...300, using: &generator)
            stream += frameBytes(UInt32(2 * i + 1), 1, 0, (0..<n).map { UInt8(truncatingIfNeeded: $0) })
            expected.append((UInt32(2 * i + 1), n))
        }
        for _ in 0..<20 {
            var decoder = FrameDecoder()
            var buffer = ByteBuffer()
            var got: [(UInt32, Int)] = []
            var offset = 0
            while offset < stream.count {
                let n = min(stream.count - offset, Int.random(in: 1...64, using: &generator))
                buffer.writeBytes(stream[offset..<offset + n])
                offset += n
                while case let .frame(f)? = decoder.next(from: &buffer) { got.append((f.header.streamID, f.data.readableBytes)) }
            }
            #expect(got.map(\.0) == expected.map(\.0))
            #expect(got.map(\.1) == expected.map(\.1))
        }
    }

    @Test func oversizedFrameIsSkippedAndReported() {
        var decoder = FrameDecoder(maxLength: 16)
        let big = frameBytes(7, 1, 0, Array(repeating: 1, count: 40))
        let next = frameBytes(9, 1, 0, [42])
        var buffer = ByteBuffer(bytes: big.prefix(20))
        guard case let .oversized(h)? = decoder.next(from: &buffer) else {
            Issue.record("expected oversized")
            return
        }
        #expect(h.streamID == 7 && h.length == 40)
        #expect(decoder.isSkipping)
        buffer.writeBytes(big.dropFirst(20) + next)
        guard case let .frame(f)? = decoder.next(from: &buffer) else {
            Issue.record("expected the next frame after skipping")
            return
        }
        #expect(f.header.streamID == 9 && Array(f.data.readableBytesView) == [42])
    }

    @Test func lengthOverFourMiBIsNotTTRPC() {
        var decoder = FrameDecoder()
        // "GET / HTTP/1.1" read as a header: length 0x47455420 is far over 4 MiB.
        var buffer = ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n")
        guard case .notTTRPC? = decoder.next(from: &buffer) else {
            Issue.record("expected notTTRPC")
            return
        }
    }

    @Test func unknownTypeDecodesWithNilType() {
        var decoder = FrameDecoder()
        var buffer = ByteBuffer(bytes: frameBytes(1, 0x7F, 0, [1]))
        guard case let .frame(f)? = decoder.next(from: &buffer) else {
            Issue.record("expected a frame")
            return
        }
        #expect(f.header.type == nil && f.header.typeByte == 0x7F)
    }

    @Test func writeFramePatchesLength() {
        var b = ByteBuffer()
        b.writeFrame(streamID: 3, type: .response) { $0.writeBytes([1, 2, 3, 4, 5]) }
        #expect(Array(b.readableBytesView) == [0, 0, 0, 5, 0, 0, 0, 3, 2, 0, 1, 2, 3, 4, 5])
    }
}
