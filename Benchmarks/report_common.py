"""What the benchmark reports share: the machine line and rewriting one marked section
of Benchmarks/RESULTS.md."""
import os, platform, re

RESULTS = "Benchmarks/RESULTS.md"


def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def machine_line():
    memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    return f"- Machine: {os.cpu_count()} cores ({cpu()}), {memory} GiB, {platform.system()} {platform.release()}"


def replace_section(name, section):
    """Puts `section` (which starts with <!-- name:begin --> and ends with <!-- name:end -->)
    into RESULTS.md in place of the old one, or at the end."""
    text = open(RESULTS).read() if os.path.exists(RESULTS) else (
        "# Benchmark results\n\nFigures measured by the scripts in `Benchmarks/`; each section says how to reproduce it.\n")
    pattern = rf"<!-- {name}:begin -->.*<!-- {name}:end -->"
    if re.search(pattern, text, flags=re.S):
        text = re.sub(pattern, lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    open(RESULTS, "w").write(text)
