#!/usr/bin/env bash
# 照会 (by 宛名番号 and by 符号) and 符号取得 over mutual TLS against a tenant of N synthetic
# residents, each call with its audit record made durable before the answer, at 16, 64
# and 256 calls in flight; beside it Redis 7 over TLS answering GETs (no record at all).
# Writes Benchmarks/out/services*.json and the services section of RESULTS.md.
#   Benchmarks/run-services.sh                 1,000,000 residents, 10 s per point
#   RESIDENTS=100000 DURATION=5 Benchmarks/run-services.sh
#   PROFILE=1 Benchmarks/run-services.sh       also perf-record the server at 256 in flight
set -euo pipefail
cd "$(dirname "$0")/.."
. Benchmarks/services-tenant.sh  # the release build and the shared tenant
cat > "$work/policy.yaml" <<'YAML'
version: 1
principals:
  - { name: admin, kind: system, certificate_cn: admin, roles: [platform-operator] }
  - { name: clerk, kind: system, tenant: "012041", certificate_cn: clerk, roles: [clerk] }
  - { name: codes, kind: system, tenant: "012041", certificate_cn: codes, roles: [code-manager] }
YAML

port=17443
$R/chukan serve --port $port --metrics-port 0 --log-level warning --cert "$work/certs/server.crt" --key "$work/certs/server.key" \
  --client-ca "$work/certs/ca.crt" --data "$work/data" --keys "$work/keys" --policy "$work/policy.yaml" &
server=$!
redis_dir=$(mktemp -d)
cleanup() {
  kill "$server" 2>/dev/null || true
  redis-cli -p 16380 shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$redis_dir"
}
trap cleanup EXIT
ctl() { $R/chukanctl call "$@" --server 127.0.0.1:$port --ca "$work/certs/ca.crt" --cert "$work/certs/admin.crt" --key "$work/certs/admin.key"; }
started=$(date +%s.%N)
for _ in $(seq 1 1200); do
  [ "$(ctl health --tenant 012041 2>/dev/null || true)" = "SERVING" ] && break
  sleep 0.1
done
echo "tenant serving after $(python3 -c "import time; print(round(time.time() - $started, 1))") s"

bench() {  # scenario in-flight cert
  $R/chukan-bench --server 127.0.0.1:$port --ca "$work/certs/ca.crt" --cert "$work/certs/$3.crt" --key "$work/certs/$3.key" \
    --scenario "$1" --in-flight "$2" --connections 4 --duration "$DURATION" --warmup 2 --people "$RESIDENTS" \
    --code-key "$work/keys/012041.code.key" --label chukan --json
}
: > "$out/services.jsonl"
for n in 16 64 256; do
  for s in lookup-atena lookup-fugo; do bench $s $n clerk | tee -a "$out/services.jsonl"; done
  bench acquire-code $n codes | tee -a "$out/services.jsonl"
done
# A profile is reported only from this run: an older one would be dated as this one.
rm -f "$out/services-profile.txt"
if [ "${PROFILE:-0}" = 1 ]; then
  perf record -F 499 -g -p "$server" -o "$out/services.perf" -- sleep "$DURATION" >/dev/null 2>&1 &
  recorder=$!
  bench lookup-atena 256 clerk > /dev/null
  wait "$recorder"
  perf report -i "$out/services.perf" --no-children --percent-limit 2 --stdio -g none --sort dso,sym 2>/dev/null | grep '%' > "$out/services-profile.txt" || true
fi
kill -TERM "$server"
wait "$server" || true

# Redis over TLS with the same certificates: GETs of one small key at 64 connections.
certs=$(realpath "$work/certs")  # redis-server changes into --dir
if true; then
  redis-server --port 0 --tls-port 16380 --tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key" \
    --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients no --save "" --appendonly no --dir "$redis_dir" --daemonize yes \
    --logfile "$redis_dir/redis.log" || true
  sleep 1
  tls=(--tls --cacert "$certs/ca.crt" --sni localhost)
  if redis-cli -p 16380 "${tls[@]}" set key:000000000000 "$(head -c 400 /dev/zero | tr '\0' x)" >/dev/null 2>&1; then
    redis-benchmark -p 16380 "${tls[@]}" -c 64 -n $((DURATION * 80000)) -t get -r 1 -q --csv 2>/dev/null | tail -1 > "$out/services-redis.csv"
    echo "redis over TLS: $(cat "$out/services-redis.csv")"
    redis-cli -p 16380 "${tls[@]}" shutdown nosave >/dev/null 2>&1 || true
  else
    echo "redis-server did not start with TLS ($(tail -1 "$redis_dir/redis.log")); skipped" | tee "$out/services-redis.csv"
  fi
fi

python3 Benchmarks/report-services.py "$out" "RESIDENTS=$RESIDENTS DURATION=$DURATION Benchmarks/run-services.sh"
