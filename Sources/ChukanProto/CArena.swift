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
public struct CArena: ~Copyable {
    @usableFromInline var allocations: [UnsafeMutableRawPointer] = []

    @usableFromInline init() {}

    /// A NUL-terminated copy of `string`.
    @inlinable
    public mutating func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        var copy = string
        return copy.withUTF8 { utf8 in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count + 1)
            if utf8.count > 0 {
                UnsafeMutableRawPointer(p).copyMemory(from: utf8.baseAddress!, byteCount: utf8.count)
            }
            p[utf8.count] = 0
            allocations.append(UnsafeMutableRawPointer(p))
            return p
        }
    }

    /// A copy of `bytes` as protobuf-c binary data.
    @inlinable
    public mutating func binary<Bytes: Collection>(_ bytes: Bytes) -> ProtobufCBinaryData where Bytes.Element == UInt8 {
        guard !bytes.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes.count)
        _ = UnsafeMutableBufferPointer(start: p, count: bytes.count).initialize(from: bytes)
        allocations.append(UnsafeMutableRawPointer(p))
        return ProtobufCBinaryData(len: bytes.count, data: p)
    }

    /// A copy of the readable bytes of `buffer`.
    @inlinable
    public mutating func binary(_ buffer: ByteBuffer) -> ProtobufCBinaryData {
        buffer.withUnsafeReadableBytes { raw in binary(UnsafeRawBufferPointer(raw)) }
    }

    /// An initialised struct of type `T`, owned by the arena.
    @inlinable
    public mutating func make<T>(_ value: T) -> UnsafeMutablePointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: 1)
        p.initialize(to: value)
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    /// An array of pointers, for protobuf-c's `repeated` message fields.
    @inlinable
    public mutating func pointerArray<T>(_ pointers: [UnsafeMutablePointer<T>]) -> UnsafeMutablePointer<UnsafeMutablePointer<T>?>? {
        guard !pointers.isEmpty else { return nil }
        let p = UnsafeMutablePointer<UnsafeMutablePointer<T>?>.allocate(capacity: pointers.count)
        for (i, element) in pointers.enumerated() { (p + i).initialize(to: element) }
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    /// A C array of plain values, for protobuf-c's `repeated` scalar fields.
    @inlinable
    public mutating func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        let p = UnsafeMutablePointer<T>.allocate(capacity: values.count)
        _ = UnsafeMutableBufferPointer(start: p, count: values.count).initialize(from: values)
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    @usableFromInline func freeAll() {
        for a in allocations { a.deallocate() }
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
