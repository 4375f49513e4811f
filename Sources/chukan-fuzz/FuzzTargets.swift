import Foundation

/// Every decoder that reads bytes from outside, one target each; every decoder must return
/// or throw its own error — never crash, hang, leak or allocate without bound — whatever
/// it is given. `scripts/fuzz.sh TARGET SECONDS` fuzzes one (CHUKAN_FUZZ_TARGET picks it
/// for libFuzzer); the replayer picks it from the corpus folder's name (Fuzz/corpus/TARGET).
enum FuzzTargets {
    enum Target: String, CaseIterable {
        /// Frames, the ttrpc envelope, request messages (the first byte picks the message).
        case wire
        /// A write-ahead log segment (the register's and the audit trail's).
        case wal
        /// A snapshot file: verified without the key, then loaded with it.
        case snapshot
        /// 提供: a signed permit, a permit, a sealed answer (the first byte picks).
        case permit
        /// The policy file.
        case policy
        /// The permission list (照会許可用照合リスト).
        case permissionList = "permission-list"
        /// A register record's index keys: the wire-format reader a load uses against
        /// protobuf-c (a differential target: they must agree wherever protobuf-c reads).
        case record
    }

    static func run(_ target: Target, _ input: UnsafeRawBufferPointer) {
        switch target {
        case .wire: WireTarget.run(input)
        case .wal: StoreTargets.wal(input)
        case .snapshot: StoreTargets.snapshot(input)
        case .permit: ProvisionTargets.permit(input)
        case .policy: ProvisionTargets.policy(input)
        case .permissionList: ProvisionTargets.permissionList(input)
        case .record: StoreTargets.record(input)
        }
    }

    /// The target libFuzzer runs: CHUKAN_FUZZ_TARGET, wire by default.
    static let selected: Target = {
        let name = ProcessInfo.processInfo.environment["CHUKAN_FUZZ_TARGET"] ?? "wire"
        guard let t = Target(rawValue: name) else {
            FileHandle.standardError.write(Data("chukan-fuzz: unknown target \(name) (\(Target.allCases.map(\.rawValue).joined(separator: ", ")))\n".utf8))
            exit(2)
        }
        return t
    }()
}

/// libFuzzer's entry point (`scripts/fuzz.sh` builds with -sanitize=fuzzer,address).
@_cdecl("LLVMFuzzerTestOneInput")
public func chukanFuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzTargets.run(FuzzTargets.selected, UnsafeRawBufferPointer(start: data, count: size))
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
