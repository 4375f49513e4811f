import CProtobufC
import ChukanProtoC
import NIOCore

/// chukan.v1.HealthCheckRequest: empty for the server, or naming a tenant.
public struct HealthCheckRequest: ProtoMessage, Equatable {
    public static let protoName = "chukan.v1.HealthCheckRequest"
    nonisolated(unsafe) static let descriptor = protobufDescriptor(Chukan__V1__HealthCheckRequest.self, chukan__v1__health_check_request__init)
    public static var protobufCDescriptor: UnsafePointer<ProtobufCMessageDescriptor> { descriptor }
    public var tenant: String

    public init(tenant: String = "") { self.tenant = tenant }

    public func encode(into buffer: inout ByteBuffer) {
        withArena { arena in
            var message = Chukan__V1__HealthCheckRequest()
            chukan__v1__health_check_request__init(&message)
            if !tenant.isEmpty { message.tenant = arena.cString(tenant) }
            withMessageBase(&message) { _ = ProtobufC.pack($0, into: &buffer) }
        }
    }

    public init(protobuf bytes: UnsafeRawBufferPointer, limit: Int) throws {
        self = try ProtobufC.withUnpacked(
            Self.descriptor,
            as: Chukan__V1__HealthCheckRequest.self, name: Self.protoName, bytes: bytes, limit: limit
        ) { m in HealthCheckRequest(tenant: m.pointee.tenant.protoString) }
    }
}

/// chukan.v1.HealthCheckResponse
public struct HealthCheckResponse: ProtoMessage, Equatable {
    public static let protoName = "chukan.v1.HealthCheckResponse"
    nonisolated(unsafe) static let descriptor = protobufDescriptor(Chukan__V1__HealthCheckResponse.self, chukan__v1__health_check_response__init)
    public static var protobufCDescriptor: UnsafePointer<ProtobufCMessageDescriptor> { descriptor }

    public enum ServingStatus: Int32, Sendable {
        case unknown = 0
        case serving = 1
        case notServing = 2
    }

    public var status: ServingStatus

    public init(status: ServingStatus) { self.status = status }

    public func encode(into buffer: inout ByteBuffer) {
        var message = Chukan__V1__HealthCheckResponse()
        chukan__v1__health_check_response__init(&message)
        message.status = Chukan__V1__HealthCheckResponse__ServingStatus(rawValue: UInt32(bitPattern: status.rawValue))
        withMessageBase(&message) { _ = ProtobufC.pack($0, into: &buffer) }
    }

    public init(protobuf bytes: UnsafeRawBufferPointer, limit: Int) throws {
        self = try ProtobufC.withUnpacked(
            Self.descriptor,
            as: Chukan__V1__HealthCheckResponse.self, name: Self.protoName, bytes: bytes, limit: limit
        ) { m in
            // An enum value this build does not know reads as UNKNOWN, as proto3 asks.
            HealthCheckResponse(status: ServingStatus(rawValue: Int32(bitPattern: m.pointee.status.rawValue)) ?? .unknown)
        }
    }
}
