import ChukanCore
import ChukanProto
import Foundation
import Synchronization
import Yams

/// 照会許可用照合リスト: which inquirer may receive which item groups under which row of
/// the table of 主務省令第2条 (config/permission-list.yaml; format in docs/PROVISION.md).
/// A list is checked whole when it is read: one bad row and the list is refused.
public struct PermissionList: Sendable, Equatable {
    public struct Row: Sendable, Equatable {
        public var number: Int
        /// 提供先 as the law writes it.
        public var inquirer: String
        public var kinds: [String]
        public var legalRow: UInt32
        public var purpose: String
        public var itemGroups: Set<ItemGroup>
        /// Whether the row covers 除票 (people who died or moved away).
        public var removedResidents: Bool
        /// 機関 codes of every kind the row names.
        public var agencies: Set<String>
    }

    public var version: String
    /// The 機関 codes and item groups are illustrative, not the national network's list.
    public var illustrative: Bool
    /// Inquirer kind → 機関 codes.
    public var agencies: [String: [String]]
    public var rows: [Row]
    private var byLegalRow: [UInt32: Int] = [:]

    public func row(_ legalRow: UInt32) -> Row? { byLegalRow[legalRow].map { rows[$0] } }

    public static func load(path: String) throws -> PermissionList {
        try parse(StrictYAML.read(path: path, what: "permission list"), source: path)
    }

    static let topKeys: Set<String> = ["version", "illustrative", "agencies", "rows"]
    static let rowKeys: Set<String> = ["no", "inquirer", "kinds", "legal_row", "purpose", "item_groups", "removed_residents"]

    /// Parses and checks a list; errors name the source, the row and the key, never a value.
    public static func parse(_ text: String, source: String) throws -> PermissionList {
        func fail(_ m: String) -> YAMLFileError { YAMLFileError("permission list \(source): \(m)") }
        let node = try StrictYAML.document(text, source: source, what: "permission list")
        guard let top = node as? [String: Any] else { throw fail("must be a map with version, illustrative, agencies and rows") }
        if let k = top.keys.sorted().first(where: { !topKeys.contains($0) }) { throw fail("unknown key \(k)") }
        guard let version = top["version"] as? String, (1...64).contains(version.utf8.count) else { throw fail("version: a string of 1-64 characters is required") }
        guard let illustrative = top["illustrative"] as? Bool else { throw fail("illustrative: true or false is required") }
        guard let agencyMap = top["agencies"] as? [String: Any], !agencyMap.isEmpty else { throw fail("agencies: a map of inquirer kinds to 機関 codes is required") }
        var agencies: [String: [String]] = [:]
        var seenCodes = Set<String>()
        for (kind, value) in agencyMap.sorted(by: { $0.key < $1.key }) {
            guard let codes = value as? [Any], !codes.isEmpty else { throw fail("agencies.\(kind): a list of 機関 codes is required") }
            var list: [String] = []
            for c in codes {
                guard let code = c as? String, agencyCodeProblem(code) == nil else { throw fail("agencies.\(kind): \(agencyCodeProblem(c as? String ?? "") ?? "")") }
                guard seenCodes.insert(code).inserted else { throw fail("agencies.\(kind): a 機関 code appears twice in the list") }
                list.append(code)
            }
            agencies[kind] = list
        }
        guard let rowNodes = top["rows"] as? [Any], !rowNodes.isEmpty, rowNodes.count <= 10_000 else { throw fail("rows: a list of 1-10,000 rows is required") }
        var list = PermissionList(version: version, illustrative: illustrative, agencies: agencies, rows: [])
        var numbers = Set<Int>()
        for (i, n) in rowNodes.enumerated() {
            let at = "rows[\(i)]"
            guard let r = n as? [String: Any] else { throw fail("\(at): must be a map") }
            if let k = r.keys.sorted().first(where: { !rowKeys.contains($0) }) { throw fail("\(at): unknown key \(k)") }
            guard let number = r["no"] as? Int, number > 0 else { throw fail("\(at).no: a positive number is required") }
            guard numbers.insert(number).inserted else { throw fail("\(at).no: row \(number) appears twice") }
            guard let inquirer = r["inquirer"] as? String, !inquirer.isEmpty else { throw fail("\(at).inquirer: is required") }
            guard let kinds = r["kinds"] as? [String], !kinds.isEmpty else { throw fail("\(at).kinds: a list of inquirer kinds is required") }
            var codes = Set<String>()
            for k in kinds {
                guard let c = agencies[k] else { throw fail("\(at).kinds: \(k) is not a kind in agencies") }
                codes.formUnion(c)
            }
            guard let legal = r["legal_row"] as? Int, (1...100_000).contains(legal) else { throw fail("\(at).legal_row: a 項 number 1-100000 is required") }
            guard let purpose = r["purpose"] as? String, !purpose.isEmpty else { throw fail("\(at).purpose: is required") }
            guard let groupNames = r["item_groups"] as? [String], !groupNames.isEmpty else { throw fail("\(at).item_groups: a list of item groups is required") }
            var groups = Set<ItemGroup>()
            for g in groupNames {
                guard let group = ItemGroup(listName: g) else {
                    throw fail("\(at).item_groups: unknown group (known: \(ItemGroup.listed.map(\.listName).joined(separator: ", ")))")
                }
                guard groups.insert(group).inserted else { throw fail("\(at).item_groups: a group appears twice") }
            }
            guard let removed = r["removed_residents"] as? Bool else { throw fail("\(at).removed_residents: true or false is required") }
            guard list.byLegalRow[UInt32(legal)] == nil else { throw fail("\(at).legal_row: 項 \(legal) appears in two rows") }
            list.byLegalRow[UInt32(legal)] = list.rows.count
            list.rows.append(Row(number: number, inquirer: inquirer, kinds: kinds, legalRow: UInt32(legal), purpose: purpose,
                                 itemGroups: groups, removedResidents: removed, agencies: codes))
        }
        return list
    }

    /// 機関 codes: 1-16 of A-Z and 0-9.
    public static func agencyCodeProblem(_ code: String) -> String? {
        guard (1...16).contains(code.utf8.count), code.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) }) else {
            return "a 機関 code is 1-16 of A-Z and 0-9"
        }
        return nil
    }
}

/// The list in force: read at start, replaced whole by `reload` (SIGHUP, or
/// chukan.v1.Provision/ReloadRules); a list that does not check out leaves the old one.
public final class PermissionRules: Sendable {
    public let path: String?
    private let list: Mutex<PermissionList?>

    public init(path: String?) throws {
        self.path = path
        list = Mutex(try path.map(PermissionList.load(path:)))
    }

    public init(list: PermissionList) {
        path = nil
        self.list = Mutex(list)
    }

    public var current: PermissionList? { list.withLock { $0 } }

    @discardableResult
    public func reload() throws -> PermissionList {
        guard let path else { throw RPCError(.failedPrecondition, "this server was started without a permission list") }
        let fresh: PermissionList
        do { fresh = try PermissionList.load(path: path) } catch {
            throw RPCError(.failedPrecondition, "permission list not reloaded: \(error)")
        }
        list.withLock { $0 = fresh }
        return fresh
    }
}

extension ItemGroup {
    public static let listed: [ItemGroup] = [.nameAndBirth, .address, .addressHistory, .household, .residenceDates, .insuranceStatus]

    /// The group's name in the permission list and on the command line.
    public var listName: String {
        switch self {
        case .nameAndBirth: "name-and-birth"
        case .address: "address"
        case .addressHistory: "address-history"
        case .household: "household"
        case .residenceDates: "residence-dates"
        case .insuranceStatus: "insurance-status"
        case .itemGroupUnspecified: "unspecified"
        }
    }

    public init?(listName: String) {
        guard let g = Self.listed.first(where: { $0.listName == listName }) else { return nil }
        self = g
    }
}
