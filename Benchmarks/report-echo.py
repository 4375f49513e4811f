#!/usr/bin/env python3
"""Turns Benchmarks/out/echo-*.json into the echo section of Benchmarks/RESULTS.md."""
import datetime, glob, json, os, sys

from report_common import machine_line, replace_section

out, command = sys.argv[1], sys.argv[2]
rows = {}
for path in glob.glob(os.path.join(out, "echo-*.json")):
    r = json.load(open(path))
    rows[(r["label"], r["in_flight"])] = r


points = sorted({k[1] for k in rows})
lines = []
lines.append("<!-- echo:begin -->")
lines.append("## Echo over TLS 1.3: Chukan beside containerd's Go ttrpc server")
lines.append("")
lines.append(f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
lines.append(machine_line())
lines.append(f"- Command: `{command}` (release builds; client and server share the machine)")
any_row = next(iter(rows.values()))
lines.append(f"- Load: `chukan-bench`, {any_row['connections']} connections, {any_row['payload_bytes']}-byte payload, "
             f"{any_row['duration_s']:.0f} s per point after warm-up, mutual TLS 1.3 (client certificate), both servers loaded identically")
lines.append("- Peer: `Benchmarks/peers/go-ttrpc-echo` — containerd ttrpc 1.1.1 (Debian) with Go's crypto/tls")
lines.append("")
lines.append("| in flight | server | calls/s | p50 µs | p99 µs | p99.9 µs | errors |")
lines.append("|---:|---|---:|---:|---:|---:|---:|")
for n in points:
    for label in ("chukan", "go-ttrpc"):
        r = rows.get((label, n))
        if r:
            lines.append(f"| {n} | {label} | {r['calls_per_s']:,.0f} | {r['p50_us']:,.0f} | {r['p99_us']:,.0f} | {r['p999_us']:,.0f} | {r['errors']} |")
lines.append("")
lines.append("| in flight | throughput chukan ÷ go | p99 chukan ÷ go |")
lines.append("|---:|---:|---:|")
for n in points:
    a, b = rows.get(("chukan", n)), rows.get(("go-ttrpc", n))
    if a and b:
        lines.append(f"| {n} | {a['calls_per_s'] / b['calls_per_s']:.2f}× | {a['p99_us'] / max(b['p99_us'], 1):.2f}× |")
lines.append("<!-- echo:end -->")
section = "\n".join(lines)

replace_section("echo", section)
print(section)
