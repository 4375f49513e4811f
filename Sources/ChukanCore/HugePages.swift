#if canImport(Glibc)
import Glibc
#endif

/// Backs the heap with transparent huge pages where the kernel offers them on request
/// (`/sys/kernel/mm/transparent_hugepage/enabled` = `madvise`, Debian's default).
///
/// A register of a million residents is a few million small allocations; with 4 KiB
/// pages, loading it takes ~800,000 page faults, and a page fault is dear in a VM — a
/// third of a snapshot load's time here. glibc asks for huge pages only when the tunable
/// `glibc.malloc.hugetlb=1` is set, and tunables are read once, when the process starts.
/// So the process sets it and executes itself again, before anything else has run.
///
/// Left alone when the tunable is already there (set by the operator, or by this), when
/// `CHUKAN_HUGE_PAGES=0`, when the process was already started again by this (marker
/// `CHUKAN_HUGE_PAGES_REEXEC`), when glibc runs it in secure mode (setuid or file
/// capabilities: glibc drops the tunable there, so asking again would loop), when the
/// kernel does not offer huge pages on request, or when the re-exec fails (the process
/// goes on as it is).
public enum HugePages {
    /// Set in the environment of the process this starts again.
    static let reexecMarker = "CHUKAN_HUGE_PAGES_REEXEC"

    public static func enableForThisProcess() {
        #if os(Linux)
        let existing = getenv("GLIBC_TUNABLES").map { String(cString: $0) }
        guard shouldStartAgain(
            tunables: existing, setting: getenv("CHUKAN_HUGE_PAGES").map { String(cString: $0) },
            alreadyStartedAgain: getenv(reexecMarker) != nil, secureMode: secureMode(),
            offered: offeredOnRequest)
        else { return }
        let value = existing.map { $0.isEmpty ? "glibc.malloc.hugetlb=1" : "\($0):glibc.malloc.hugetlb=1" } ?? "glibc.malloc.hugetlb=1"
        guard setenv("GLIBC_TUNABLES", value, 1) == 0, setenv(reexecMarker, "1", 1) == 0 else { return }
        let argv = CommandLine.unsafeArgv
        execv("/proc/self/exe", argv)
        // Still here: the exec failed. Carry on with ordinary pages.
        if let existing { setenv("GLIBC_TUNABLES", existing, 1) } else { unsetenv("GLIBC_TUNABLES") }
        unsetenv(reexecMarker)
        #endif
    }

    /// Whether to start the process again with the tunable. Once only: the process
    /// started again finds the marker and goes on, whatever became of the tunable; a
    /// binary glibc runs in secure mode (setuid, file capabilities) has its tunables cut,
    /// so asking would never end, and it is left alone.
    static func shouldStartAgain(
        tunables: String?, setting: String?, alreadyStartedAgain: Bool, secureMode: Bool, offered: () -> Bool
    ) -> Bool {
        if tunables?.contains("glibc.malloc.hugetlb") == true || setting == "0" { return false }
        if alreadyStartedAgain || secureMode { return false }
        return offered()
    }

    /// Whether glibc runs this process in secure mode (the auxiliary vector's AT_SECURE:
    /// setuid, setgid, file capabilities), read from /proc/self/auxv; a process that
    /// cannot tell is taken to be in it.
    static func secureMode() -> Bool {
        guard getuid() == geteuid(), getgid() == getegid() else { return true }
        guard let f = fopen("/proc/self/auxv", "r") else { return true }
        defer { fclose(f) }
        var pair: (UInt, UInt) = (0, 0)
        while fread(&pair, MemoryLayout<(UInt, UInt)>.size, 1, f) == 1 {
            if pair.0 == 23 { return pair.1 != 0 }  // AT_SECURE
            if pair.0 == 0 { break }  // AT_NULL
        }
        return true
    }

    /// Whether the kernel gives huge pages to memory that asks (`always` or `madvise`).
    static func offeredOnRequest() -> Bool {
        guard let f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r") else { return false }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 128)
        guard fgets(&line, Int32(line.count), f) != nil else { return false }
        let text = String(cString: line)
        return text.contains("[always]") || text.contains("[madvise]")
    }
}
