import ChukanStore
import Foundation

/// What 提供 needs from the deployment: the permission list, the national network's
/// permit-signing public key, and the sealer of answers. Without a key or a list the
/// service is present and answers UNAVAILABLE.
public struct ProvisionSetup: Sendable {
    public var rules: PermissionRules
    public var networkKey: ECDSAP256Key?
    public var sealer: AnswerSealer

    public init(rules: PermissionRules, networkKey: ECDSAP256Key?, sealer: AnswerSealer) {
        self.rules = rules
        self.networkKey = networkKey
        self.sealer = sealer
    }

    /// No list, no key: every Provide is UNAVAILABLE.
    public static func unconfigured() throws -> ProvisionSetup {
        ProvisionSetup(rules: try PermissionRules(path: nil), networkKey: nil, sealer: try AnswerSealer())
    }

    /// Reads the network's public key from a PEM file. A key file marked as a development
    /// key is refused unless the server runs in development mode.
    public static func networkKey(path: String, development: Bool) throws -> ECDSAP256Key {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw YAMLFileError("provision.network_key \(path) is missing or unreadable")
        }
        if DevelopmentKey.isMarked(text) && !development {
            throw YAMLFileError("provision.network_key \(path) is a development key; a server not in development mode refuses it (set development: true only on a development machine)")
        }
        guard text.contains("-----BEGIN PUBLIC KEY-----") else {
            throw YAMLFileError("provision.network_key \(path) must hold the network's public key (PEM), not a private key")
        }
        do { return try ECDSAP256Key(pem: text) } catch {
            throw YAMLFileError("provision.network_key \(path) is not an ECDSA P-256 public key")
        }
    }
}
