#!/usr/bin/env python3
"""Reads sslyze's JSON and checks it against Chukan's TLS promises; prints a summary table
and exits 1 if any promise is broken. Used by scripts/tls-scan.sh."""
import json, sys

scan = json.load(open(sys.argv[1]))
tls12_on = sys.argv[2] == "1"
server = scan["server_scan_results"][0]
if server.get("scan_status") != "COMPLETED":
    print(f"scan did not complete: {server.get('connectivity_error_trace') or server.get('scan_status')}")
    sys.exit(1)
r = server["scan_result"]
checks = []

def accepted(name):
    res = r.get(name, {}).get("result") or {}
    return [s["cipher_suite"]["name"] for s in res.get("accepted_cipher_suites", [])]

for proto in ["ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"]:
    suites = accepted(f"{proto}_cipher_suites")
    label = {"ssl_2_0": "SSL 2.0", "ssl_3_0": "SSL 3.0", "tls_1_0": "TLS 1.0", "tls_1_1": "TLS 1.1"}[proto]
    checks.append((f"{label} refused", not suites, ", ".join(suites) or "none accepted"))
tls12 = accepted("tls_1_2_cipher_suites")
tls13 = accepted("tls_1_3_cipher_suites")
checks.append(("TLS 1.3 offered", bool(tls13), ", ".join(tls13)))
checks.append(("TLS 1.2 " + ("offered (opt-in on)" if tls12_on else "refused (opt-in off)"), bool(tls12) == tls12_on, ", ".join(tls12) or "none"))
fs_aead = all(("ECDHE" in s or s.startswith("TLS_AES") or s.startswith("TLS_CHACHA20")) and ("GCM" in s or "CHACHA20_POLY1305" in s) for s in tls12 + tls13)
checks.append(("every suite forward-secret (ECDHE) and AEAD", fs_aead, f"{len(tls12) + len(tls13)} suites"))
comp = (r.get("tls_compression", {}).get("result") or {}).get("supports_compression")
checks.append(("no TLS compression (CRIME)", comp is False, f"supports_compression={comp}"))
reneg = r.get("session_renegotiation", {}).get("result") or {}
checks.append(("no client-initiated renegotiation", reneg.get("is_vulnerable_to_client_renegotiation_dos") is False,
               f"client renegotiation DoS={reneg.get('is_vulnerable_to_client_renegotiation_dos')}, secure renegotiation={reneg.get('supports_secure_renegotiation')}"))
for key, label, field in [("heartbleed", "not vulnerable to Heartbleed", "is_vulnerable_to_heartbleed"),
                          ("openssl_ccs_injection", "not vulnerable to CCS injection", "is_vulnerable_to_ccs_injection")]:
    v = (r.get(key, {}).get("result") or {}).get(field)
    checks.append((label, v is False, f"{field}={v}"))
robot = (r.get("robot", {}).get("result") or {}).get("robot_result")
checks.append(("not vulnerable to ROBOT", robot in ("NOT_VULNERABLE_NO_ORACLE", "NOT_VULNERABLE_RSA_NOT_SUPPORTED"), str(robot)))
fallback = (r.get("tls_fallback_scsv", {}).get("result") or {}).get("supports_fallback_scsv")
checks.append(("downgrade protection (TLS_FALLBACK_SCSV or TLS 1.3 only)", fallback is True or not tls12, f"supports_fallback_scsv={fallback}"))
without, with_cert = open(sys.argv[3]).read().split()[:2]
checks.append(("client certificate required (handshake without one refused, with one accepted)",
               without.startswith("refused") and with_cert == "accepted", f"without: {without}; with: {with_cert}"))

print(f"| check | result | detail |\n|---|---|---|")
for name, ok, detail in checks:
    print(f"| {name} | {'pass' if ok else 'FAIL'} | {detail} |")
sys.exit(0 if all(ok for _, ok, _ in checks) else 1)
