import ArgumentParser
import ChukanProto
import ChukanRegister
import ChukanStore
import Foundation

/// Where offline commands find a tenant's data and keys.
struct StoreOptions: ParsableArguments {
    @Option(help: "Data directory (one folder per tenant).") var data = "demo/data"
    @Option(help: "Key directory, kept apart from the data (TENANT.vN.key files, mode 0600).") var keys = "demo/keys"
    @Option(help: "Tenant: 地方公共団体コード with its check digit.") var tenant = "012041"

    func validate() throws {
        if let p = Identifiers.localGovernmentCodeProblem(tenant) { throw ValidationError("--tenant \(p)") }
    }

    var tenantDirectory: String { "\(data)/\(tenant)" }

    func keyRing() throws -> TenantKeyRing { try TenantKeyRing.load(tenant: tenant, directory: keys) }

    /// Opens (recovers) the tenant; fails if a server holds it.
    func open() throws -> TenantDatabase {
        guard FileManager.default.fileExists(atPath: tenantDirectory) else {
            throw ValidationError("no tenant \(tenant) in \(data) (chukanctl tenant add \(tenant))")
        }
        return try TenantDatabase.open(directory: tenantDirectory, keyRing: keyRing())
    }
}

/// Today's date in Asia/Tokyo, as the register's retention rules count days.
func tokyoToday(_ override: String?) throws -> (UInt32, UInt32, UInt32) {
    if let override {
        let parts = override.split(separator: "-").compactMap { UInt32($0) }
        guard parts.count == 3, ResidentValidation.dateProblem(CalendarDate(parts[0], parts[1], parts[2])) == nil else {
            throw ValidationError("--today must be a real date, YYYY-MM-DD")
        }
        return (parts[0], parts[1], parts[2])
    }
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "Asia/Tokyo")!
    let c = calendar.dateComponents([.year, .month, .day], from: Date())
    return (UInt32(c.year!), UInt32(c.month!), UInt32(c.day!))
}
