import ArgumentParser
import ChukanCore
import ChukanProto
import ChukanRPC
import ChukanRegister
import ChukanService
import ChukanStore
import Foundation

/// Passwords come from standard input (one line) or the terminal, never from the command line.
func readPassword(_ prompt: String) throws -> String {
    if isatty(STDIN_FILENO) == 1 {
        guard let p = getpass(prompt) else { throw ValidationError("no password given") }
        return String(cString: p)
    }
    guard let line = readLine(strippingNewline: true), !line.isEmpty else { throw ValidationError("no password on standard input") }
    return line
}

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "chukan.v1.Staff/Login: sign a staff member in on this terminal; prints the token.",
        discussion: "Run with the terminal's certificate (--cert/--key). The password is read from the terminal or standard input. Pass the token to later calls with --token or CHUKAN_TOKEN.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
    @Argument(help: "Staff id.") var staff: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        var r = LoginRequest()
        r.tenant = tenant
        r.staffId = staff
        r.password = try readPassword("password for \(staff): ")
        let client = try await connection.connect()
        let s = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Staff", method: "Login", request: r, as: LoginResponse.self, timeout: connection.duration)
        }
        if json {
            printJSON(["token": s.token, "expires_unix_ms": Int(s.expiresUnixMs), "roles": s.roles, "must_change_password": s.mustChangePassword])
        } else {
            print(s.token)
            if s.mustChangePassword { FileHandle.standardError.write(Data("chukanctl: the password must be changed before any work (chukanctl call change-password)\n".utf8)) }
        }
    }
}

struct Logout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "chukan.v1.Staff/Logout: end the sign-in of --token.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let client = try await connection.connect()
        _ = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Staff", method: "Logout", request: LogoutRequest(), as: LogoutResponse.self, metadata: connection.metadata, timeout: connection.duration)
        }
        print("signed out")
    }
}

struct ChangePassword: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "change-password", abstract: "chukan.v1.Staff/ChangePassword: the signed-in member changes their password (old, then new, one per line).")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"

    func run() async throws {
        var r = ChangePasswordRequest()
        r.tenant = tenant
        r.oldPassword = try readPassword("old password: ")
        r.newPassword = try readPassword("new password: ")
        let client = try await connection.connect()
        _ = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Staff", method: "ChangePassword", request: r, as: ChangePasswordResponse.self, metadata: connection.metadata, timeout: connection.duration)
        }
        print("password changed")
    }
}

/// `chukanctl staff …`: a tenant administrator manages staff accounts on a running server.
struct StaffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "staff", abstract: "Manage a tenant's staff accounts on the running server (tenant-admin).",
        subcommands: [Add.self, Disable.self, Grant.self, Renew.self, ResetPassword.self, List.self])

    struct Target: ParsableArguments {
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Tenant (地方公共団体コード).") var tenant = "012041"
        @Flag(help: "Print JSON.") var json = false
    }

    static func send(_ t: Target, _ method: String, staff: String, password: String = "", roles: [String] = []) async throws {
        var r = StaffRequest()
        r.tenant = t.tenant
        r.staffId = staff
        r.password = password
        r.roles = roles
        let client = try await t.connection.connect()
        let v = try await runCall(closing: client) {
            try await client.unary(service: "chukan.v1.Staff", method: method, request: r, as: StaffView.self, metadata: t.connection.metadata, timeout: t.connection.duration)
        }
        printStaff([v], json: t.json)
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an account; its initial password (from the terminal or standard input) must be changed at first sign-in.",
            discussion: "With --offline it writes into a stopped tenant's data directory (--data, --keys; the first tenant administrator of a new tenant, for example).")
        @OptionGroup var target: Target
        @Argument(help: "Staff id (1-32 of A-Z a-z 0-9 - _ .).") var staff: String
        @Option(parsing: .upToNextOption, help: "Roles: registrar, code-manager, clerk, number-clerk, approver, auditor, tenant-admin.") var roles: [String] = []
        @Flag(help: "Write into the data directory instead of calling the server (the server must be stopped).") var offline = false
        @Option(help: "Data directory (--offline).") var data = "demo/data"
        @Option(help: "Key directory (--offline).") var keys = "demo/keys"

        func run() async throws {
            let password = try readPassword("initial password: ")
            guard offline else { return try await send(target, "AddStaff", staff: staff, password: password, roles: roles) }
            if let p = Identifiers.localGovernmentCodeProblem(target.tenant) { throw ValidationError("--tenant: \(p)") }
            guard FileManager.default.fileExists(atPath: "\(data)/\(target.tenant)") else {
                throw ValidationError("no tenant \(target.tenant) in \(data) (chukanctl tenant add)")
            }
            let db = try TenantDatabase.open(directory: "\(data)/\(target.tenant)", keyRing: TenantKeyRing.load(tenant: target.tenant, directory: keys))
            defer { db.close() }
            do {
                let account = try StaffService.newAccount(staff, password: password, roles: roles, rules: StaffRules(), now: Date())
                try await StaffService.save(account, kind: .staffAdd, db)
            } catch let e as RPCError {
                throw ValidationError("\(e.message)")
            }
            print("staff: added \(staff) to tenant \(target.tenant) (roles \(roles.joined(separator: ",")); the password must be changed at first sign-in)")
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an account; its sign-ins end at once.")
        @OptionGroup var target: Target
        @Argument(help: "Staff id.") var staff: String
        func run() async throws { try await send(target, "DisableStaff", staff: staff) }
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set an account's roles (replacing the earlier ones).")
        @OptionGroup var target: Target
        @Argument(help: "Staff id.") var staff: String
        @Option(parsing: .upToNextOption, help: "Roles.") var roles: [String] = []
        func run() async throws { try await send(target, "GrantRoles", staff: staff, roles: roles) }
    }

    struct Renew: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Renew an account's grants after the yearly lapse (1 April).")
        @OptionGroup var target: Target
        @Argument(help: "Staff id.") var staff: String
        func run() async throws { try await send(target, "RenewGrants", staff: staff) }
    }

    struct ResetPassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-password", abstract: "Set a temporary password (must be changed at next sign-in) and re-enable the account.")
        @OptionGroup var target: Target
        @Argument(help: "Staff id.") var staff: String
        func run() async throws { try await send(target, "ResetPassword", staff: staff, password: readPassword("temporary password: ")) }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts with their roles and state (tenant-admin, auditor).")
        @OptionGroup var target: Target
        func run() async throws {
            var r = ListStaffRequest()
            r.tenant = target.tenant
            let client = try await target.connection.connect()
            let list = try await runCall(closing: client) {
                try await client.unary(service: "chukan.v1.Staff", method: "ListStaff", request: r, as: ListStaffResponse.self, metadata: target.connection.metadata, timeout: target.connection.duration)
            }
            printStaff(list.staff, json: target.json)
        }
    }
}

func printStaff(_ staff: [StaffView], json: Bool) {
    if json {
        printJSON(["staff": staff.map { ["staff_id": $0.staffId, "roles": $0.roles, "disabled": $0.disabled, "must_change_password": $0.mustChangePassword,
                                         "password_expired": $0.passwordExpired, "grants_lapsed": $0.grantsLapsed, "grants_renewed_on": $0.grantsRenewedOn] }])
        return
    }
    for v in staff {
        var flags: [String] = []
        if v.disabled { flags.append("disabled") }
        if v.mustChangePassword { flags.append("must change password") } else if v.passwordExpired { flags.append("password expired") }
        if v.grantsLapsed { flags.append("grants lapsed") }
        print("\(v.staffId)  roles: \(v.roles.joined(separator: ","))  renewed \(v.grantsRenewedOn)\(flags.isEmpty ? "" : "  [\(flags.joined(separator: ", "))]")")
    }
}
