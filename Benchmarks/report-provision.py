#!/usr/bin/env python3
"""Turns Benchmarks/out/provision* into the provision section of Benchmarks/RESULTS.md."""
import datetime, json, os, re, sys

from report_common import machine_line, replace_section

out, command = sys.argv[1], sys.argv[2]
runs = [json.loads(l) for l in open(os.path.join(out, "provision.jsonl")) if l.strip()]
speed = open(os.path.join(out, "provision-openssl.txt")).read()
profile_path = os.path.join(out, "provision-profile.txt")

def rate(pattern, column):
    m = re.search(pattern + r".*", speed)
    return float(m.group(0).split()[column]) if m else 0.0

ecdsa_verify = rate(r"ecdsa \(nistp256\)", -1)
ed_verify = rate(r"EdDSA \(Ed25519\)", -1)
x25519 = rate(r"ecdh \(X25519\)", -1)
best = max((r["calls_per_s"] for r in runs), default=0)

lines = ["<!-- provision:begin -->", "## 提供 (Provision/Provide) over TLS, each with its permit checked and its record durable", ""]
lines.append(f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
lines.append(machine_line())
lines.append(f"- Command: `{command}` (release build; chukan-bench on the same two cores, 4 connections, mutual TLS 1.3; permits signed ahead of each point)")
lines.append("- Each call (市町村長 LG011002 under 項 48, name-and-birth or address): ECDSA P-256 verification of the permit, every field and the permission list checked, the permit id claimed, the person found by 符号, the item group built, sealed to one of 8 inquirer keys (X25519 agreement reused per answer key, HKDF-SHA256, AES-256-GCM), and the 情報提供等記録 made durable (group-committed fdatasync) before the answer.")
lines.append("")
lines.append("| in flight | 提供/s | p50 µs | p99 µs | p99.9 µs | errors |")
lines.append("|---:|---:|---:|---:|---:|---:|")
for r in runs:
    lines.append(f"| {r['in_flight']} | {r['calls_per_s']:,.0f} | {r['p50_us']:,.0f} | {r['p99_us']:,.0f} | {r['p999_us']:,.0f} | {r['errors']} |")
lines.append("")
lines.append("The bound, same run (`openssl speed -multi 2`, both cores, nothing else running):")
lines.append("")
lines.append("| operation | per second, both cores |")
lines.append("|---|---:|")
lines.append(f"| ECDSA P-256 verify (the permit check Chukan uses) | {ecdsa_verify:,.0f} |")
lines.append(f"| Ed25519 verify (the alternative) | {ed_verify:,.0f} |")
lines.append(f"| X25519 agreement | {x25519:,.0f} |")
lines.append("")
if ecdsa_verify:
    lines.append(f"Best 提供 rate {best:,.0f}/s = **{100 * best / ecdsa_verify:.0f}%** of what ECDSA P-256 verification alone allows on these two cores ({ecdsa_verify:,.0f}/s); with Ed25519 the ceiling would be {ed_verify:,.0f}/s.")
lines.append("")
steps_path = os.path.join(out, "provision-steps.json")
if os.path.exists(steps_path):
    steps = json.load(open(steps_path))
    lines.append("Each step of one 提供 alone, one core (`chukan-bench provision-steps`, same run):")
    lines.append("")
    lines.append("| step | µs |")
    lines.append("|---|---:|")
    for st in steps["steps"]:
        lines.append(f"| {st['step']} | {st['us']:.1f} |")
    if "verify_per_s" in steps:
        lines.append(f"| (permits verified through Chukan's code on {steps['verify_threads']} threads) | {steps['verify_per_s']:,.0f}/s |")
    lines.append("")
if os.path.exists(profile_path):
    lines.append("Where the server's time goes at 256 in flight (`perf record -g`, self time, top entries):")
    lines.append("")
    lines.append("```")
    lines += [l.rstrip() for l in open(profile_path).read().splitlines()[:30]]
    lines.append("```")
lines.append("<!-- provision:end -->")
replace_section("provision", "\n".join(lines))
print("\n".join(lines))
