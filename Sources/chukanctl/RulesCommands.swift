import ArgumentParser
import ChukanProto
import ChukanService
import Foundation

/// The permission list (照会許可用照合リスト), offline: print it, or check a file before a
/// server is told to reload it.
struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "The permission list (照会許可用照合リスト): show or check a list file.",
        subcommands: [Show.self, Check.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the list: each row's 項, inquirer, item groups and purpose.")
        @Option(help: "The list file.") var file = "config/permission-list.yaml"
        @Option(help: "Only this 項.") var row: UInt32?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let list = try PermissionList.load(path: file)
            let rows = list.rows.filter { row == nil || $0.legalRow == row }
            if row != nil && rows.isEmpty { throw ValidationError("項 \(row!) is not in the list") }
            if json {
                printJSON([
                    "version": list.version, "illustrative": list.illustrative,
                    "rows": rows.map { r -> [String: Any] in
                        ["no": r.number, "legal_row": r.legalRow, "inquirer": r.inquirer, "kinds": r.kinds, "agencies": r.agencies.sorted(),
                         "purpose": r.purpose, "item_groups": ItemGroup.listed.filter(r.itemGroups.contains).map(\.listName),
                         "removed_residents": r.removedResidents]
                    },
                ])
                return
            }
            print("permission list \(list.version)\(list.illustrative ? " (ILLUSTRATIVE 機関 codes and item groups)" : ""): \(list.rows.count) rows")
            for r in rows {
                let groups = ItemGroup.listed.filter(r.itemGroups.contains).map(\.listName).joined(separator: ", ")
                print("\nNo.\(r.number)  項 \(r.legalRow)  \(r.inquirer)")
                print("  機関: \(r.agencies.sorted().joined(separator: " "))")
                print("  items: \(groups)\(r.removedResidents ? "; 除票 too" : "")")
                print("  用途: \(r.purpose)")
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a list file the way the server does; exit 1 with the first problem.")
        @Argument(help: "The list file.") var file = "config/permission-list.yaml"

        func run() async throws {
            do {
                let list = try PermissionList.load(path: file)
                print("\(file): permission list \(list.version), \(list.rows.count) rows, \(list.agencies.values.map(\.count).reduce(0, +)) 機関 codes: OK")
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
