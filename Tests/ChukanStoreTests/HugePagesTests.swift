@testable import ChukanCore
import Testing

/// When a process starts itself again to get huge pages for the register's heap: at most
/// once, never in glibc's secure mode (where the tunable is cut and asking again would
/// loop), never against the operator's own choice.
@Suite struct HugePagesTests {
    func decide(tunables: String? = nil, setting: String? = nil, again: Bool = false, secure: Bool = false, offered: Bool = true) -> Bool {
        HugePages.shouldStartAgain(tunables: tunables, setting: setting, alreadyStartedAgain: again, secureMode: secure, offered: { offered })
    }

    @Test func startsAgainOnceWhenTheKernelOffersHugePages() {
        #expect(decide())
        #expect(decide(tunables: "glibc.malloc.arena_max=2"), "other tunables are kept and the one added")
        #expect(!decide(again: true), "the process started again goes on, whatever became of the tunable")
        #expect(!decide(secure: true), "secure mode drops the tunable: asking again would never end")
        #expect(!decide(offered: false))
    }

    /// This test process is not setuid and has no file capabilities: AT_SECURE is 0 in its
    /// auxiliary vector, and reading it says so (a reader that could not tell would say
    /// "secure" and the servers would never get huge pages).
    @Test func anOrdinaryProcessIsNotInSecureMode() {
        #expect(!HugePages.secureMode())
    }

    @Test func theOperatorsChoiceStands() {
        #expect(!decide(tunables: "glibc.malloc.hugetlb=0"))
        #expect(!decide(tunables: "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"))
        #expect(!decide(setting: "0"))
        #expect(decide(setting: "1"))
    }
}
