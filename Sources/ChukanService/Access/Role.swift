/// What a principal (or a signed-in staff member) may do. The policy file grants roles
/// to system principals; staff grants come from the tenant's own staff accounts.
public enum Role: String, CaseIterable, Sendable, Comparable {
    /// Writes to the replica (副本).
    case registrar
    /// 符号取得 and 符号管理.
    case codeManager = "code-manager"
    /// Only 提供, for the national network's gateway.
    case networkGateway = "network-gateway"
    /// 照会 without the 個人番号 (masked in answers, refused as a search key).
    case clerk
    /// 照会 with the 個人番号.
    case numberClerk = "number-clerk"
    /// Reviews held provisions and bulk exports.
    case approver
    /// Reads the audit trail and 情報提供等記録.
    case auditor
    /// The tenant's own snapshots, purges and statistics.
    case tenantAdmin = "tenant-admin"
    /// Health, snapshots and restores of every tenant; never a call that returns resident data.
    case platformOperator = "platform-operator"

    public static func < (a: Role, b: Role) -> Bool { a.rawValue < b.rawValue }
}
