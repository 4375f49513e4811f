#!/usr/bin/env python3
"""Turns Benchmarks/out/services*.{jsonl,csv,txt} into the services section of Benchmarks/RESULTS.md."""
import datetime, json, os, sys

from report_common import machine_line, replace_section

out, command = sys.argv[1], sys.argv[2]
runs = [json.loads(l) for l in open(os.path.join(out, "services.jsonl")) if l.strip()]
redis_line = open(os.path.join(out, "services-redis.csv")).read().strip() if os.path.exists(os.path.join(out, "services-redis.csv")) else ""
profile_path = os.path.join(out, "services-profile.txt")

names = {"lookup-atena": "照会 by 宛名番号", "lookup-fugo": "照会 by 符号", "acquire-code": "符号取得 (AcquireCode)"}
lines = ["<!-- services:begin -->", "## Services: 照会 and 符号取得 over TLS, each with its audit record", ""]
lines.append(f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
lines.append(machine_line())
lines.append(f"- Command: `{command}` (release build; chukan-bench on the same two cores, 4 connections, mutual TLS 1.3)")
lines.append("- Every call is authorised by the policy and writes a hash-chained audit record that is durable (group-committed fdatasync) before the answer leaves.")
lines.append("")
lines.append("| call | in flight | calls/s | p50 µs | p99 µs | p99.9 µs | errors |")
lines.append("|---|---:|---:|---:|---:|---:|---:|")
for r in runs:
    lines.append(f"| {names.get(r['scenario'], r['scenario'])} | {r['in_flight']} | {r['calls_per_s']:,.0f} | {r['p50_us']:,.0f} | {r['p99_us']:,.0f} | {r['p999_us']:,.0f} | {r['errors']} |")
lines.append("")
if redis_line.startswith('"GET"'):
    parts = [p.strip('"') for p in redis_line.split(",")]
    lines.append(f"Peer, same run: Redis 7 over TLS (`redis-benchmark --tls -c 64 -t get`, no audit record, no authorisation): **{float(parts[1]):,.0f} GETs/s** (p50 {parts[4]} ms, p99 {parts[6]} ms).")
else:
    lines.append(f"Peer: Redis over TLS was not measured ({redis_line or 'no output'}).")
lines.append("")
if os.path.exists(profile_path):
    lines.append("Where the server's time goes at 256 in flight (照会 by 宛名番号; `perf record -g`, self time, top entries):")
    lines.append("")
    lines.append("```")
    lines += [l.rstrip() for l in open(profile_path).read().splitlines()[:25]]
    lines.append("```")
lines.append("<!-- services:end -->")
replace_section("services", "\n".join(lines))
print("\n".join(lines))
