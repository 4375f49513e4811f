#!/usr/bin/env python3
"""Turns Benchmarks/out/register*.json into the register section of Benchmarks/RESULTS.md."""
import datetime, json, os, sys

from report_common import machine_line, replace_section

out, command = sys.argv[1], sys.argv[2]
r = json.load(open(os.path.join(out, "register.json")))
redis = json.load(open(os.path.join(out, "register-redis.json")))
fresh = json.load(open(os.path.join(out, "register-fresh.json")))
median = lambda xs: sorted(xs)[len(xs) // 2]
restart_load = fresh["loads_s"][0]


def row(what, value, target=""):
    return f"| {what} | {value} | {target} |"

n = r["residents"]
lines = ["<!-- register:begin -->", f"## The register: {n:,} synthetic residents in one tenant", ""]
lines.append(f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
lines.append(machine_line())
lines.append(f"- Command: `{command}` (release build)")
lines.append("")
lines.append("| measure | value | target |")
lines.append("|---|---:|---|")
lines.append(row("fdatasync latency of this disk, p50 / p99", f"{r['fdatasync_p50_us']:,} / {r['fdatasync_p99_us']:,} µs", "(group commit rests on it)"))
lines.append(row("generate residents", f"{r['generate_s']:.1f} s", ""))
lines.append(row("build the register in memory (validate + index every record)", f"{r['build_s']:.1f} s", ""))
lines.append(row("RAM per resident (RSS delta ÷ residents), records + indexes + history", f"{r['ram_bytes_per_resident']:,.0f} B", "≤ 2 KB"))
lines.append(row("of which the encoded record itself", f"{r['record_bytes_per_resident']:,.0f} B", ""))
lines.append(row("snapshot write (in the benchmark process)", f"{r['snapshot_write_s']:.1f} s, {r['snapshot_mb_per_s']:.0f} MB/s, {r['snapshot_bytes'] / 1e6:,.0f} MB", "≥ 200 MB/s"))
lines.append(row("snapshot write, fresh process (median of 3)", f"{median(fresh['write_mb_per_s']):.0f} MB/s (each: {', '.join(f'{x:.0f}' for x in fresh['write_mb_per_s'])})", "≥ 200 MB/s"))
lines.append(row("snapshot load with index rebuild (in the benchmark process)", f"{r['snapshot_load_s']:.1f} s", "≤ 5 s"))
lines.append(row("snapshot load, fresh process as after a restart (first; then each)", f"{restart_load:.1f} s ({', '.join(f'{x:.1f}' for x in fresh['loads_s'])})", "≤ 5 s"))
if 'log_appends_per_s' in r:
    lines.append(row(f"the write-ahead log alone, {r.get('writers', 64)} concurrent writers (events encoded beforehand; no validation, index or publication)", f"{r['log_appends_per_s']:,.0f} /s, ack p50 {r['log_ack_p50_us']:,} µs, p99 {r['log_ack_p99_us']:,} µs, {r['log_records_per_sync']:.0f} records per fdatasync", ""))
lines.append(row(f"durable writes, {r.get('writers', 64)} concurrent writers (group commit)", f"{r['wal_writes_per_s']:,.0f} /s, ack p50 {r['wal_ack_p50_us']:,} µs, p99 {r['wal_ack_p99_us']:,} µs" + (f", {r['wal_records_per_sync']:.0f} writes per fdatasync" if 'wal_records_per_sync' in r else ""), "≥ 50,000 /s"))
for k, label in [("integrated", "団体内統合宛名番号"), ("atena", "宛名番号"), ("juminhyo", "住民票コード"), ("kojin_bango", "個人番号"), ("household", "世帯番号 → members")]:
    lines.append(row(f"point lookup by {label} (register built by writes, {r.get('pending_changes_after_build', 0):,} person changes beside the table)", f"{r['lookup_ns_' + k]:,.0f} ns/op", "≤ 1 µs"))
for k, label in [("integrated", "団体内統合宛名番号"), ("atena", "宛名番号"), ("kojin_bango", "個人番号"), ("household", "世帯番号 → members")]:
    if 'loaded_lookup_ns_' + k in r:
        lines.append(row(f"point lookup by {label}, in the loaded snapshot (no changes pending)", f"{r['loaded_lookup_ns_' + k]:,.0f} ns/op", "≤ 1 µs"))
lines.append(row("4情報 search, name + birth date", f"{r['search_us_name_birth']:.2f} µs/op", ""))
lines.append(row("4情報 search, name + address", f"{r['search_us_name_address']:.2f} µs/op", ""))
ratio = r["lookup_p99_ns_during_snapshot"] / max(r["lookup_p99_ns_idle"], 1)
lines.append(row("lookup p99 idle / while a snapshot is written", f"{r['lookup_p99_ns_idle']:,.0f} / {r['lookup_p99_ns_during_snapshot']:,.0f} ns ({ratio:.2f}×)", "within 1.5×"))
lines.append("")
lines.append(f"Redis {redis['version']} (Debian `redis-server`), same residents, one hash per resident with their main items (27 fields), loaded with `redis-cli --pipe`, `SAVE`, restarted:")
lines.append("")
lines.append("| measure | Chukan | Redis | Chukan ÷ Redis |")
lines.append("|---|---:|---:|---:|")
lines.append(f"| load after restart (Chukan: fresh process, first load) | {restart_load:.1f} s | {float(redis['load_s']):.1f} s | {restart_load / max(float(redis['load_s']), 0.001):.2f}× |")
lines.append(f"| file size (snapshot / RDB) | {r['snapshot_bytes'] / 1e6:,.0f} MB | {redis['rdb_bytes'] / 1e6:,.0f} MB | {r['snapshot_bytes'] / redis['rdb_bytes']:.2f}× |")
lines.append(f"| memory (RSS delta / used_memory) | {r['ram_bytes_per_resident'] * n / 1e6:,.0f} MB | {int(redis['used_memory']) / 1e6:,.0f} MB | {r['ram_bytes_per_resident'] * n / int(redis['used_memory']):.2f}× |")
lines.append("")
lines.append("Chukan's snapshot is encrypted and authenticated (AES-256-GCM) and holds the full record and its history; its load decrypts every chunk, reads each record's index keys from its protobuf wire format and rebuilds seven indexes. Redis's RDB is plaintext and its load rebuilds only the key space.")
lines.append("<!-- register:end -->")
section = "\n".join(lines)
replace_section("register", section)
print(section)
