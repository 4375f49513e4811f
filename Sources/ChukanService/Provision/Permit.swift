import ChukanCore
import ChukanProto
import ChukanStore

/// Why a 提供 was refused: a stable code at the start of the status message
/// ("PERMIT_EXPIRED: …"), for the gateway to act on and the auditor to count.
public enum ProvisionRefusal: String, Sendable, CaseIterable {
    case permitMissing = "PERMIT_MISSING"
    case permitMalformed = "PERMIT_MALFORMED"
    case permitSignature = "PERMIT_SIGNATURE"
    case permitExpired = "PERMIT_EXPIRED"
    case permitInquirer = "PERMIT_INQUIRER"
    case permitTenant = "PERMIT_TENANT"
    case permitRow = "PERMIT_ROW"
    case permitFugo = "PERMIT_FUGO"
    case permitItemGroup = "PERMIT_ITEM_GROUP"
    case permitKey = "PERMIT_KEY"
    case permitReplayed = "PERMIT_REPLAYED"
    case rowUnlisted = "ROW_UNLISTED"
    case rowInquirer = "ROW_INQUIRER"
    case rowItemGroup = "ROW_ITEM_GROUP"
    case personUnknown = "PERSON_UNKNOWN"
    case personNotCurrent = "PERSON_NOT_CURRENT"
    case held = "HELD"
    case refused = "REFUSED"

    var status: StatusCode {
        switch self {
        case .permitMissing, .permitMalformed: .invalidArgument
        case .personUnknown, .personNotCurrent: .notFound
        case .held: .failedPrecondition
        default: .permissionDenied
        }
    }

    func error(_ detail: String) -> RPCError { RPCError(status, "\(rawValue): \(detail)") }

    /// The refusal a status message names, if any.
    public init?(message: String) {
        guard let colon = message.firstIndex(of: ":") else { return nil }
        self.init(rawValue: String(message[..<colon]))
    }
}

/// 提供許可証: the national network's signed statement that one inquirer may ask this
/// tenant for one item group of one person under one row, until a time.
public enum Permits {
    /// What the signature covers: this label, then the permit's encoding. The label keeps
    /// a signature over a permit from standing for any other message signed with the key.
    public static let signingLabel = Array("chukan.v1.ProvisionPermit\u{0}".utf8)
    /// The longest validity a permit may claim: used ids are remembered this long.
    public static let maximumLifetimeMs: Int64 = 24 * 3_600_000
    /// Clock difference tolerated between the network and this server.
    public static let clockSkewMs: Int64 = 5 * 60_000

    public static func signingInput(_ permitBytes: [UInt8]) -> [UInt8] { signingLabel + permitBytes }

    /// Signs `permit` (development tools and tests; the network signs real ones).
    public static func sign(_ permit: ProvisionPermit, with key: ECDSAP256Key) throws -> SignedPermit {
        var p = permit
        if p.version == 0 { p.version = 1 }
        var signed = SignedPermit()
        signed.permit = p.encodedBytes
        signed.signature = try key.sign(signingInput(signed.permit))
        return signed
    }

    /// The permit inside `signed` when the network's key signed it and it is valid at
    /// `nowUnixMs`; otherwise the refusal. Checks nothing about the request.
    public static func open(_ signed: SignedPermit?, networkKey: ECDSAP256Key, nowUnixMs: Int64) throws -> ProvisionPermit {
        guard let signed, !signed.permit.isEmpty else { throw ProvisionRefusal.permitMissing.error("the request carries no 提供許可証") }
        guard signed.permit.count <= 4096, (8...80).contains(signed.signature.count) else {
            throw ProvisionRefusal.permitMalformed.error("the permit or its signature has an impossible size")
        }
        let verified = signingInput(signed.permit).withUnsafeBytes { networkKey.verify(signature: signed.signature, message: $0) }
        guard verified else { throw ProvisionRefusal.permitSignature.error("the permit is not signed by the national network's key") }
        guard let permit = try? ProvisionPermit(protobuf: signed.permit) else {
            throw ProvisionRefusal.permitMalformed.error("the signed permit does not decode")
        }
        guard permit.version == 1 else { throw ProvisionRefusal.permitMalformed.error("permit version \(permit.version) is not known") }
        guard permitIDProblem(permit.permitId) == nil else { throw ProvisionRefusal.permitMalformed.error("permit_id: \(permitIDProblem(permit.permitId)!)") }
        guard permit.inquirerPublicKey.count == 32 else { throw ProvisionRefusal.permitMalformed.error("the permit names no inquirer key") }
        // Subtracted with overflow reported: a signed permit with extreme times must not trap.
        let (lifetime, overflow) = permit.expiresUnixMs.subtractingReportingOverflow(permit.issuedUnixMs)
        guard permit.expiresUnixMs > permit.issuedUnixMs, !overflow, lifetime <= maximumLifetimeMs else {
            throw ProvisionRefusal.permitMalformed.error("a permit is valid for at most 24 hours after it is issued")
        }
        guard permit.issuedUnixMs <= nowUnixMs + clockSkewMs else { throw ProvisionRefusal.permitMalformed.error("the permit is issued in the future") }
        guard nowUnixMs <= permit.expiresUnixMs else { throw ProvisionRefusal.permitExpired.error("the permit expired") }
        return permit
    }

    /// 1-64 of A-Z a-z 0-9 - _ .
    public static func permitIDProblem(_ id: String) -> String? {
        guard (1...64).contains(id.utf8.count), id.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 45 || $0 == 95 || $0 == 46 }) else {
            return "must be 1-64 of A-Z a-z 0-9 - _ ."
        }
        return nil
    }
}
