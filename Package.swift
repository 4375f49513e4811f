// swift-tools-version:6.1
// Chukan (中間): an intermediate server for My Number information linkage.
// README.md's Layout table says what each target holds.
import PackageDescription

let package = Package(
    name: "Chukan",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "chukan", targets: ["chukan"]),
        .executable(name: "chukanctl", targets: ["chukanctl"]),
        .executable(name: "chukan-bench", targets: ["chukan-bench"]),
        .executable(name: "chukan-fuzz", targets: ["chukan-fuzz"]),
        .library(name: "ChukanRPC", targets: ["ChukanRPC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        // System libraries, found with pkg-config; installed by scripts/bootstrap.sh.
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // CRC-32C with the SSE 4.2 instruction (Swift cannot reach it portably).
        .target(name: "CChukanCRC"),
        // A cache prefetch hint (Swift has none) for lookups that touch several objects.
        .target(name: "CChukanPrefetch"),
        // renameat2's atomic exchange of two paths (Swift's Glibc does not expose it).
        .target(name: "CChukanFiles"),
        // protoc-c output for Protos/ (committed; scripts/generate-protos.sh).
        .target(name: "ChukanProtoC", dependencies: ["CProtobufC"]),

        // Swift wrappers over protobuf-c messages.
        .target(
            name: "ChukanProto",
            dependencies: [
                "CProtobufC", "ChukanProtoC",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Status codes, metadata, deadlines: shared by transports and services.
        .target(name: "ChukanCore"),
        // ttrpc frames and the envelope; pure functions over bytes.
        .target(
            name: "ChukanWire",
            dependencies: [
                "ChukanCore", "ChukanProto",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // OpenSSL 3 as a NIO ChannelHandler over memory BIOs.
        .target(
            name: "ChukanTLS",
            dependencies: [
                "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Server and client runtime: pipeline, routing, deadlines, limits, drain.
        .target(
            name: "ChukanRPC",
            dependencies: [
                "ChukanCore", "ChukanWire", "ChukanTLS", "ChukanProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The register (副本): domain model, validation, immutable indexed versions. No I/O.
        .target(
            name: "ChukanRegister",
            dependencies: [
                "ChukanCore", "ChukanProto", "ChukanProtoC", "CProtobufC", "CChukanPrefetch",
                .product(name: "HashTreeCollections", package: "swift-collections"),
            ]
        ),
        // Durable storage: write-ahead log, snapshots, at-rest encryption (OpenSSL).
        .target(name: "ChukanStore", dependencies: ["COpenSSL", "CChukanCRC", "ChukanRegister", "ChukanProto", "ChukanCore"]),
        // The RPC services.
        .target(
            name: "ChukanService",
            dependencies: [
                "ChukanCore", "ChukanProto", "ChukanRPC", "ChukanStore", "ChukanRegister", "ChukanTLS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Server configuration file and flags, shared by chukan and its tests.
        .target(
            name: "ChukanServer",
            dependencies: [
                "ChukanRPC", "ChukanService", "ChukanTLS", "ChukanStore",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Development helpers: a file-based CA for dev and test certificates.
        .target(name: "ChukanDev"),
        .executableTarget(
            name: "chukan",
            dependencies: [
                "ChukanServer", "ChukanCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "chukanctl",
            dependencies: [
                "ChukanRPC", "ChukanDev", "ChukanStore", "ChukanRegister", "ChukanProto", "ChukanTLS", "ChukanService", "ChukanCore",
                "CChukanFiles", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The decoders under libFuzzer (scripts/fuzz.sh); a corpus replayer otherwise.
        .executableTarget(
            name: "chukan-fuzz",
            dependencies: [
                "ChukanWire", "ChukanProto", "ChukanStore", "ChukanRegister", "ChukanService", "ChukanCore",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "chukan-bench",
            dependencies: [
                "ChukanRPC", "ChukanProto", "ChukanRegister", "ChukanStore", "ChukanService", "ChukanTLS", "ChukanCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),

        .testTarget(name: "ChukanStoreTests", dependencies: ["ChukanStore", "ChukanRegister", "ChukanProto", "ChukanCore"]),
        .testTarget(name: "ChukanRegisterTests", dependencies: ["ChukanRegister", "ChukanProto", "ChukanCore"]),
        .testTarget(name: "ChukanWireTests", dependencies: ["ChukanWire", "ChukanProto", "ChukanCore"]),
        .testTarget(
            name: "ChukanRPCTests",
            dependencies: [
                "ChukanRPC", "ChukanServer", "ChukanService", "ChukanTLS", "ChukanProto", "ChukanDev", "ChukanWire", "ChukanCore",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
    ]
)
