import ChukanProto
import ChukanService
import ChukanStore
import Foundation

/// 提供's readers: the permit (decoded, its signature checked, its fields checked), the
/// sealed answer (the inquirer's side), the policy file and the permission list.
enum ProvisionTargets {
    /// Fixed keys for fuzzing only, so that the seeds carry valid signatures and answers.
    static let networkKey = try! ECDSAP256Key(pem: """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghVfj5KlGCEAwkXx4
        50JazRat4OHL7U3ZBNalAEkjNQahRANCAATo+bC9UHgC6EgbOQ7TPbQaKfedNuvg
        KSiGzRCSvbDaBtt9cni2P/GYX8VYk1/9kj+B7H6CF7Sds7+lXM8QM5nH
        -----END PRIVATE KEY-----
        """)
    static let inquirerKey = try! X25519Key(pem: """
        -----BEGIN PRIVATE KEY-----
        MC4CAQAwBQYDK2VuBCIEIBg6bsEoY9AzL7uKMNB67u/LizMLMyU93+10PPEc2Ahp
        -----END PRIVATE KEY-----
        """)
    /// Within the lifetime of the seeds' permits.
    static let now: Int64 = 1_800_000_030_000
    static let limit = 1 << 20

    static func permit(_ input: UnsafeRawBufferPointer) {
        guard let selector = input.first else { return }
        let body = UnsafeRawBufferPointer(rebasing: input.dropFirst())
        switch selector % 3 {
        case 0:
            guard let signed = try? SignedPermit(protobuf: body, limit: limit) else { return }
            _ = try? Permits.open(signed, networkKey: networkKey, nowUnixMs: now)
        case 1:
            _ = try? ProvisionPermit(protobuf: body, limit: limit)
        default:
            guard let answer = try? EncryptedAnswer(protobuf: body, limit: limit) else { return }
            _ = try? AnswerSealer.open(answer, with: inquirerKey)
        }
    }

    static func policy(_ input: UnsafeRawBufferPointer) {
        _ = try? Policy.parse(String(decoding: input, as: UTF8.self), source: "fuzz")
    }

    static func permissionList(_ input: UnsafeRawBufferPointer) {
        _ = try? PermissionList.parse(String(decoding: input, as: UTF8.self), source: "fuzz")
    }
}
