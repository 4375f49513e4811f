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
/// `CHUKAN_HUGE_PAGES=0`, when the kernel does not offer huge pages on request, or when
/// the re-exec fails (the process goes on as it is).
public enum HugePages {
    public static func enableForThisProcess() {
        #if os(Linux)
        if let tunables = getenv("GLIBC_TUNABLES").map({ String(cString: $0) }), tunables.contains("glibc.malloc.hugetlb") { return }
        if let setting = getenv("CHUKAN_HUGE_PAGES").map({ String(cString: $0) }), setting == "0" { return }
        guard offeredOnRequest() else { return }
        let existing = getenv("GLIBC_TUNABLES").map { String(cString: $0) }
        let value = existing.map { $0.isEmpty ? "glibc.malloc.hugetlb=1" : "\($0):glibc.malloc.hugetlb=1" } ?? "glibc.malloc.hugetlb=1"
        guard setenv("GLIBC_TUNABLES", value, 1) == 0 else { return }
        let argv = CommandLine.unsafeArgv
        execv("/proc/self/exe", argv)
        // Still here: the exec failed. Carry on with ordinary pages.
        if let existing { setenv("GLIBC_TUNABLES", existing, 1) } else { unsetenv("GLIBC_TUNABLES") }
        #endif
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
