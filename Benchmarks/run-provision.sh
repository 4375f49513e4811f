#!/usr/bin/env bash
# 提供 over mutual TLS against a tenant of N synthetic residents: every call verifies its
# permit (ECDSA P-256), checks the permission list, finds the person by 符号, builds the
# answer, seals it to the inquirer (X25519 + HKDF + AES-256-GCM) and makes its 情報提供等
# 記録 durable before answering; at 16, 64 and 256 in flight. Permits are signed ahead of
# each point (not measured). Beside it, `openssl speed` on both cores gives the bound the
# signature check alone sets. Writes Benchmarks/out/provision* and the provision section
# of RESULTS.md.
#   Benchmarks/run-provision.sh                 1,000,000 residents, 10 s per point
#   RESIDENTS=100000 DURATION=5 Benchmarks/run-provision.sh
#   PROFILE=1 Benchmarks/run-provision.sh       also perf-record the server at 256 in flight
set -euo pipefail
cd "$(dirname "$0")/.."
. Benchmarks/services-tenant.sh  # the release build and the shared tenant
[ -f "$work/certs/gateway.crt" ] || $R/chukanctl certs issue "$work/certs" gateway >/dev/null
[ -f "$work/provision/network.pub" ] || $R/chukanctl dev network-key --out "$work/provision" >/dev/null
cat > "$work/provision-policy.yaml" <<'YAML'
version: 1
principals:
  - { name: admin, kind: system, certificate_cn: admin, roles: [platform-operator] }
  - { name: codes, kind: system, tenant: "012041", certificate_cn: codes, roles: [code-manager] }
  - { name: gateway, kind: system, tenant: "012041", certificate_cn: gateway, roles: [network-gateway] }
YAML

# The bound: signatures verified, and X25519 agreements, per second on both cores.
openssl speed -seconds 3 -multi 2 ecdsap256 ed25519 ecdhx25519 2>/dev/null | grep -E "bits (ecdsa|ecdh|EdDSA)" > "$out/provision-openssl.txt"
cat "$out/provision-openssl.txt"
# Each step of one 提供 alone on one core, and verification on both cores through Chukan's own code.
$R/chukan-bench provision-steps --iterations 20000 --threads 2 --json > "$out/provision-steps.json"
cat "$out/provision-steps.json"

port=17443
$R/chukan serve --port $port --metrics-port 0 --log-level warning --cert "$work/certs/server.crt" --key "$work/certs/server.key" \
  --client-ca "$work/certs/ca.crt" --data "$work/data" --keys "$work/keys" --policy "$work/provision-policy.yaml" \
  --permission-list config/permission-list.yaml --network-key "$work/provision/network.pub" --development &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
ctl() { $R/chukanctl call "$@" --server 127.0.0.1:$port --ca "$work/certs/ca.crt" --cert "$work/certs/admin.crt" --key "$work/certs/admin.key"; }
for _ in $(seq 1 1200); do
  [ "$(ctl health --tenant 012041 2>/dev/null || true)" = "SERVING" ] && break
  sleep 0.1
done
# The code key exists once a 符号 was asked for; the load generator computes 符号 with it.
$R/chukanctl call acquire-code --server 127.0.0.1:$port --ca "$work/certs/ca.crt" --cert "$work/certs/codes.crt" --key "$work/certs/codes.key" T000000001 >/dev/null

bench() {  # in-flight
  $R/chukan-bench --server 127.0.0.1:$port --ca "$work/certs/ca.crt" --cert "$work/certs/gateway.crt" --key "$work/certs/gateway.key" \
    --scenario provide --in-flight "$1" --connections 4 --duration "$DURATION" --warmup 2 --people "$RESIDENTS" \
    --code-key "$work/keys/012041.code.key" --network-key "$work/provision/network.key" --permits "${PERMITS:-$(( (DURATION + 2) * 20000 ))}" \
    --label chukan --json
}
: > "$out/provision.jsonl"
for n in 16 64 256; do bench $n | tee -a "$out/provision.jsonl"; done
# A profile is reported only from this run: an older one would be dated as this one.
rm -f "$out/provision-profile.txt"
if [ "${PROFILE:-0}" = 1 ]; then
  perf record -F 499 -g -p "$server" -o "$out/provision.perf" -- sleep "$((DURATION + 40))" >/dev/null 2>&1 &
  recorder=$!
  bench 256 > /dev/null
  wait "$recorder"
  perf report -i "$out/provision.perf" --no-children --percent-limit 0.5 --stdio -g none --sort dso 2>/dev/null | grep '%' > "$out/provision-profile.txt" || true
fi
kill -TERM "$server"
wait "$server" || true
python3 Benchmarks/report-provision.py "$out" "RESIDENTS=$RESIDENTS DURATION=$DURATION Benchmarks/run-provision.sh"
