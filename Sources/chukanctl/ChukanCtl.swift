import ArgumentParser
import ChukanCore

@main
struct ChukanCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chukanctl",
        abstract: "Administer and call a Chukan server.",
        discussion: """
        Client commands connect with mutual TLS: --server HOST:PORT, --ca, --cert and --key
        (defaults: 127.0.0.1:7443 and the "admin" files that `make run` puts in demo/certs).
        """,
        subcommands: [Certs.self, Call.self, TenantCommand.self, DataCommand.self, SnapshotCommand.self, PurgeCommand.self, StaffCommand.self, AuditCommand.self, RulesCommand.self, Disclose.self, DevCommand.self])

    /// Huge pages for the heap first (see `HugePages`): offline commands load whole registers.
    static func main() async {
        HugePages.enableForThisProcess()
        await main(nil)
    }
}
