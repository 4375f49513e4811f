import ChukanRegister
import Foundation

/// Who may connect and as what: each principal is a client certificate (by subject CN or
/// SHA-256 fingerprint) bound to one tenant — or, for the platform operator, to none —
/// and to roles. Staff accounts are not here: they live in each tenant's durable state.
/// The file format is in docs/SECURITY.md ("The policy file").
public struct Policy: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// A system (resident-system link, addressee system, network gateway, admin tool):
        /// acts with its own roles.
        case system
        /// A staff terminal: acts only through a signed-in staff member, with that member's grants.
        case terminal
    }

    public struct Principal: Sendable, Equatable {
        public var name: String
        public var kind: Kind
        /// 地方公共団体コード; nil only for the platform operator.
        public var tenant: String?
        public var roles: Set<Role>
        public var certificateCN: String?
        public var certificateSHA256: String?

        public init(name: String, kind: Kind, tenant: String?, roles: Set<Role>, certificateCN: String?, certificateSHA256: String?) {
            self.name = name
            self.kind = kind
            self.tenant = tenant
            self.roles = roles
            self.certificateCN = certificateCN
            self.certificateSHA256 = certificateSHA256
        }
    }

    public var version: Int
    public var principals: [Principal]

    public init(version: Int = 1, principals: [Principal]) {
        self.version = version
        self.principals = principals
    }

    /// The principal a verified certificate stands for, if any.
    /// (Every call asks this: the fingerprint is normalized only when a principal is bound
    /// by one, and not at all when it already is in normal form, as `PeerIdentity` gives it.)
    public func principal(commonName: String?, fingerprintSHA256: String) -> Principal? {
        var fingerprint: String?
        return principals.first { p in
            if let f = p.certificateSHA256 {
                if fingerprint == nil { fingerprint = Self.normalizeFingerprint(fingerprintSHA256) }
                return f == fingerprint
            }
            return p.certificateCN != nil && p.certificateCN == commonName
        }
    }

    static func normalizeFingerprint(_ s: String) -> String {
        let normal = s.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
        return normal ? s : s.lowercased().filter { $0 != ":" }
    }

    /// Checks the rules a policy must keep; throws naming the principal and the rule.
    public func validate() throws {
        guard version == 1 else { throw PolicyError("version must be 1") }
        var names = Set<String>(), cns = Set<String>(), prints = Set<String>()
        for p in principals {
            let at = "principal \(p.name.isEmpty ? "(unnamed)" : p.name)"
            guard !p.name.isEmpty, p.name.count <= 64 else { throw PolicyError("\(at): name must be 1-64 characters") }
            // Staff act as "staff:<id>" in export tickets and the trail: a principal named
            // like that could take a member's approved export, or be taken for one.
            guard !p.name.contains(":"), p.name.allSatisfy({ !$0.isWhitespace && !$0.unicodeScalars.contains { $0.properties.generalCategory == .control } }) else {
                throw PolicyError("\(at): name may not contain ':', spaces or control characters")
            }
            guard names.insert(p.name).inserted else { throw PolicyError("\(at): name is used twice") }
            switch (p.certificateCN, p.certificateSHA256) {
            case let (cn?, nil):
                guard !cn.isEmpty, cns.insert(cn).inserted else { throw PolicyError("\(at): certificate_cn is empty or used twice") }
            case let (nil, f?):
                guard f.count == 64, f.allSatisfy(\.isHexDigit), prints.insert(f).inserted else {
                    throw PolicyError("\(at): certificate_sha256 must be 64 hex digits, used once")
                }
            default:
                throw PolicyError("\(at): give exactly one of certificate_cn and certificate_sha256")
            }
            if let t = p.tenant, let problem = Identifiers.localGovernmentCodeProblem(t) {
                throw PolicyError("\(at): tenant \(problem)")
            }
            if p.roles.contains(.platformOperator) {
                guard p.tenant == nil, p.roles == [.platformOperator], p.kind == .system else {
                    throw PolicyError("\(at): platform-operator is a system principal with no tenant and no other role")
                }
            } else {
                guard p.tenant != nil else { throw PolicyError("\(at): tenant is required (only the platform operator has none)") }
            }
            // The gateway provides and fetches, nothing else: with approver it could release
            // its own holds, with any other role read what 自動応答不可 keeps back.
            if p.roles.contains(.networkGateway) && p.roles != [.networkGateway] {
                throw PolicyError("\(at): network-gateway is a role of its own; give it no other role")
            }
            if p.kind == .terminal && !p.roles.isEmpty {
                throw PolicyError("\(at): a terminal has no roles of its own; staff grants apply once a member signs in")
            }
        }
    }

    /// Reads and validates a policy file; a file that fails is refused whole.
    public static func load(path: String) throws -> Policy {
        try parse(StrictYAML.read(path: path, what: "policy file"), source: path)
    }

    /// Parses and validates policy text; errors name `source`, never a value.
    public static func parse(_ text: String, source path: String) throws -> Policy {
        let node = try StrictYAML.parse(text, source: path, allowed: schema, what: "policy file")
        guard let map = node as? [String: Any] else { throw PolicyError("policy file \(path) is not a map") }
        func string(_ m: [String: Any], _ key: String, _ at: String) throws -> String? {
            guard let v = m[key] else { return nil }
            if let s = v as? String { return s }
            // Unquoted 012041 would be read as a number and lose its leading zero.
            throw PolicyError("policy file \(path): \(at).\(key) must be a quoted string")
        }
        guard let version = map["version"] as? Int else { throw PolicyError("policy file \(path): version is required") }
        guard let list = (map["principals"] ?? [Any]()) as? [Any] else { throw PolicyError("policy file \(path): principals must be a list") }
        var principals: [Principal] = []
        for (i, item) in list.enumerated() {
            let at = "principals[\(i)]"
            guard let m = item as? [String: Any] else { throw PolicyError("policy file \(path): \(at) must be a map") }
            if let unknown = m.keys.sorted().first(where: { principalKeys.contains($0) == false }) {
                throw PolicyError("policy file \(path): unknown key \(at).\(unknown)")
            }
            guard let kindName = try string(m, "kind", at), let kind = Kind(rawValue: kindName) else {
                throw PolicyError("policy file \(path): \(at).kind must be system or terminal")
            }
            var roles = Set<Role>()
            for r in (m["roles"] as? [Any]) ?? [] {
                guard let name = r as? String, let role = Role(rawValue: name) else { throw PolicyError("policy file \(path): \(at).roles holds an unknown role") }
                roles.insert(role)
            }
            if m["roles"] != nil && !(m["roles"] is [Any]) { throw PolicyError("policy file \(path): \(at).roles must be a list") }
            principals.append(Principal(
                name: try string(m, "name", at) ?? "", kind: kind, tenant: try string(m, "tenant", at), roles: roles,
                certificateCN: try string(m, "certificate_cn", at), certificateSHA256: try string(m, "certificate_sha256", at).map(normalizeFingerprint)))
        }
        let policy = Policy(version: version, principals: principals)
        do { try policy.validate() } catch let e as PolicyError { throw PolicyError("policy file \(path): \(e.description)") }
        return policy
    }

    static let principalKeys: Set<String> = ["name", "kind", "tenant", "roles", "certificate_cn", "certificate_sha256"]
    nonisolated(unsafe) static let schema: [String: Any] = ["version": true, "principals": true]  // immutable
}

public struct PolicyError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}
