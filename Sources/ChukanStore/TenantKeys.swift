import Foundation

/// Why a tenant's key could not be used. Names the file, never the key.
public struct KeyError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A tenant's data keys: `<tenant>.v<N>.key` files of exactly 32 bytes, mode 0600,
/// in a key directory kept apart from the data directory. New segments and snapshots
/// use the highest version; files written under older versions stay readable.
public struct TenantKeyRing: Sendable {
    public let tenant: String
    private let keys: [UInt32: [UInt8]]

    public init(tenant: String, keys: [UInt32: [UInt8]]) {
        self.tenant = tenant
        self.keys = keys
    }

    /// The newest version, used for everything written from now on.
    public var currentVersion: UInt32 { keys.keys.max() ?? 0 }
    public var versions: [UInt32] { keys.keys.sorted() }

    public func key(version: UInt32) throws -> [UInt8] {
        guard let k = keys[version] else { throw KeyError("no key version \(version) for tenant \(tenant)") }
        return k
    }

    public static func fileName(tenant: String, version: UInt32) -> String { "\(tenant).v\(version).key" }

    /// Loads every version of `tenant`'s key from `directory`.
    public static func load(tenant: String, directory: String) throws -> TenantKeyRing {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else {
            throw KeyError("key directory \(directory) is missing or unreadable")
        }
        var keys: [UInt32: [UInt8]] = [:]
        for name in names where name.hasPrefix("\(tenant).v") && name.hasSuffix(".key") {
            let v = name.dropFirst(tenant.count + 2).dropLast(4)
            guard let version = UInt32(v), version > 0 else { continue }
            keys[version] = try readKeyFile("\(directory)/\(name)")
        }
        guard !keys.isEmpty else { throw KeyError("no key for tenant \(tenant) in \(directory)") }
        return TenantKeyRing(tenant: tenant, keys: keys)
    }

    /// Writes a new random key version (mode 0600, synced) after the highest one present,
    /// and returns its version. Never overwrites a key file.
    @discardableResult
    public static func addVersion(tenant: String, directory: String) throws -> UInt32 {
        let fs = PosixFileSystem()
        try fs.createDirectory(directory)
        let names = (try? fs.list(directory)) ?? []
        let existing = names.compactMap { name -> UInt32? in
            guard name.hasPrefix("\(tenant).v"), name.hasSuffix(".key") else { return nil }
            return UInt32(name.dropFirst(tenant.count + 2).dropLast(4))
        }.max() ?? 0
        let version = existing + 1
        try writeNewKeyFile("\(directory)/\(fileName(tenant: tenant, version: version))", directory: directory)
        return version
    }

    /// Reads a 32-byte key file that only its owner may read.
    static func readKeyFile(_ path: String) throws -> [UInt8] {
        let fm = FileManager.default
        let attributes = try fm.attributesOfItem(atPath: path)
        if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
            throw KeyError("key file \(path) must be readable by its owner only (mode 0600)")
        }
        guard let data = fm.contents(atPath: path), data.count == AESGCM.keySize else {
            throw KeyError("key file \(path) must hold exactly 32 bytes")
        }
        return Array(data)
    }

    /// Writes a new random 32-byte key file (O_EXCL, mode 0600, synced); never overwrites.
    static func writeNewKeyFile(_ path: String, directory: String) throws {
        let fs = PosixFileSystem()
        let file = try fs.createNew(path)
        defer { file.close() }
        try secureRandomBytes(AESGCM.keySize).withUnsafeBytes { try file.append($0) }
        try file.sync()
        try fs.syncDirectory(directory)
    }

    /// The tenant's 符号 key, `<tenant>.code.key`: the secret behind its codes. Unlike data
    /// keys it is never rotated — a new one would give every person a new 符号 — so it is
    /// made once, when the tenant is added (`create`), and must be backed up with the data
    /// keys. A missing key is an error, never silently replaced.
    public static func codeKey(tenant: String, directory: String, create: Bool = false) throws -> [UInt8] {
        let path = "\(directory)/\(tenant).code.key"
        if !FileManager.default.fileExists(atPath: path) {
            guard create else {
                throw KeyError("the 符号 key \(path) is missing: restore it from backup (a new one would change every 符号), or for a tenant that never issued one make it with 'chukanctl tenant code-key'")
            }
            try PosixFileSystem().createDirectory(directory)
            do { try writeNewKeyFile(path, directory: directory) } catch where FileManager.default.fileExists(atPath: path) {
                // Another process made it first: use theirs.
            }
        }
        return try readKeyFile(path)
    }

    /// Whether `directory` holds any key file of `tenant` (valid or not).
    public static func hasAnyKey(tenant: String, directory: String) -> Bool {
        ((try? PosixFileSystem().list(directory)) ?? []).contains { $0.hasPrefix("\(tenant).v") && $0.hasSuffix(".key") }
    }
}
