import CProtobufC
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Scratch memory for building protoc-c structs from Swift values: C strings, byte
/// copies and pointer arrays that must outlive one `pack` call. Everything is freed
/// when `withArena` returns, so no protobuf-c struct built here escapes.
///
/// A bump allocator over 4 KiB blocks: a resident's record is some fifty strings and
/// structs, and a `malloc` and `free` apiece (plus the list of them) was a tenth of
/// encoding it. Only plain C values live here, so nothing is deinitialised.
public struct CArena: ~Copyable {
    /// The newest block; its first word links to the one before (nil for the first).
    @usableFromInline var block: UnsafeMutableRawPointer?
    @usableFromInline var used = 0
    @usableFromInline var capacity = 0

    @usableFromInline static let blockSize = 4096
    /// Room for the link word at the start of each block.
    @usableFromInline static let header = 16

    @usableFromInline init() {}

    /// `byteCount` bytes aligned to `alignment` (a power of two, at most 16).
    @inlinable
    mutating func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        var start = (used + alignment - 1) & ~(alignment - 1)
        if block == nil || start + byteCount > capacity {
            newBlock(holding: byteCount)
            start = used
        }
        used = start + byteCount
        return block.unsafelyUnwrapped + start
    }

    /// Starts a block big enough for `byteCount` (a large payload gets one of its own size).
    @usableFromInline
    mutating func newBlock(holding byteCount: Int) {
        let size = Swift.max(Self.blockSize, Self.header + byteCount)
        let b = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        b.storeBytes(of: block, as: UnsafeMutableRawPointer?.self)
        block = b
        used = Self.header
        capacity = size
    }

    /// A NUL-terminated copy of `string`.
    @inlinable
    public mutating func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        var copy = string
        return copy.withUTF8 { utf8 in
            let p = allocate(byteCount: utf8.count + 1, alignment: 1)
            if utf8.count > 0 {
                p.copyMemory(from: utf8.baseAddress!, byteCount: utf8.count)
            }
            p.storeBytes(of: 0, toByteOffset: utf8.count, as: UInt8.self)
            return p.bindMemory(to: CChar.self, capacity: utf8.count + 1)
        }
    }

    /// A copy of `bytes` as protobuf-c binary data.
    @inlinable
    public mutating func binary<Bytes: Collection>(_ bytes: Bytes) -> ProtobufCBinaryData where Bytes.Element == UInt8 {
        guard !bytes.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = allocate(byteCount: bytes.count, alignment: 1).bindMemory(to: UInt8.self, capacity: bytes.count)
        _ = UnsafeMutableBufferPointer(start: p, count: bytes.count).initialize(from: bytes)
        return ProtobufCBinaryData(len: bytes.count, data: p)
    }

    /// A copy of the readable bytes of `buffer`.
    @inlinable
    public mutating func binary(_ buffer: ByteBuffer) -> ProtobufCBinaryData {
        buffer.withUnsafeReadableBytes { raw in binary(UnsafeRawBufferPointer(raw)) }
    }

    /// Uninitialised room for `count` values of `T`.
    @inlinable
    mutating func room<T>(for type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        precondition(MemoryLayout<T>.alignment <= 16, "CArena holds C values aligned to at most 16 bytes")
        return allocate(byteCount: MemoryLayout<T>.stride * count, alignment: MemoryLayout<T>.alignment)
            .bindMemory(to: T.self, capacity: count)
    }

    /// An initialised struct of type `T`, owned by the arena.
    @inlinable
    public mutating func make<T>(_ value: T) -> UnsafeMutablePointer<T> {
        let p = room(for: T.self, count: 1)
        p.initialize(to: value)
        return p
    }

    /// An array of pointers, for protobuf-c's `repeated` message fields.
    @inlinable
    public mutating func pointerArray<T>(_ pointers: [UnsafeMutablePointer<T>]) -> UnsafeMutablePointer<UnsafeMutablePointer<T>?>? {
        guard !pointers.isEmpty else { return nil }
        let p = room(for: UnsafeMutablePointer<T>?.self, count: pointers.count)
        for (i, element) in pointers.enumerated() { (p + i).initialize(to: element) }
        return p
    }

    /// A C array of plain values, for protobuf-c's `repeated` scalar fields.
    @inlinable
    public mutating func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        let p = room(for: T.self, count: values.count)
        _ = UnsafeMutableBufferPointer(start: p, count: values.count).initialize(from: values)
        return p
    }

    @usableFromInline func freeAll() {
        var next = block
        while let b = next {
            next = b.load(as: UnsafeMutableRawPointer?.self)
            b.deallocate()
        }
    }
}

/// Runs `body` with a fresh arena and frees everything it allocated afterwards.
@inlinable
public func withArena<R>(_ body: (inout CArena) throws -> R) rethrows -> R {
    var arena = CArena()
    defer { arena.freeAll() }
    return try body(&arena)
}

/// Views a protoc-c struct as its `ProtobufCMessage` base for the generic API.
@inlinable
public func withMessageBase<T, R>(_ message: UnsafeMutablePointer<T>, _ body: (UnsafePointer<ProtobufCMessage>) throws -> R) rethrows -> R {
    try UnsafeRawPointer(message).withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { try body($0) }
}
