#!/usr/bin/env bash
# The register with N synthetic residents in one tenant (release build), and beside it
# Redis 7 holding the same residents (one hash each): load time after a restart and file
# size. Writes Benchmarks/out/register*.json and the register section of RESULTS.md.
#   Benchmarks/run-register.sh                  1,000,000 residents
#   RESIDENTS=100000 Benchmarks/run-register.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
RESIDENTS=${RESIDENTS:-1000000}
WRITES=${WRITES:-200000}
out=Benchmarks/out
mkdir -p "$out"
swift build -c release --product chukan-bench

echo "== chukan register, $RESIDENTS residents"
.build/release/chukan-bench register --residents "$RESIDENTS" --writes "$WRITES" --dir "$out/register" \
  --redis-out "$out/redis-commands.resp" > "$out/register.json"
cat "$out/register.json"

# Load and write again in a fresh process, as after a restart (the benchmark above loads
# beside the register it built and the residents it generated).
echo "== chukan snapshot load and write in a fresh process, 3 rounds"
.build/release/chukan-bench snapshot-load "$out"/register/snapshots/*.snap --keys "$out/register/keys" --rounds 3 \
  --write-dir "$out/register/snapshots-fresh" --json > "$out/register-fresh.json"
cat "$out/register-fresh.json"

echo "== redis-server $(redis-server --version | awk '{print $3}')"
redis=$(mktemp -d)
trap 'redis-cli -p 16379 shutdown nosave >/dev/null 2>&1 || true; rm -rf "$redis"' EXIT
start_redis() {
  redis-server --port 16379 --bind 127.0.0.1 --dir "$redis" --dbfilename dump.rdb --save "" --appendonly no \
    --logfile "$redis/redis.log" --daemonize yes
  for _ in $(seq 1 600); do
    [ "$(redis-cli -p 16379 ping 2>/dev/null)" = "PONG" ] && return 0
    sleep 0.1
  done
  echo "redis did not come up" >&2; return 1
}
start_redis
redis-cli -p 16379 --pipe < "$out/redis-commands.resp" | tail -1
keys=$(redis-cli -p 16379 dbsize)
used=$(redis-cli -p 16379 info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
redis-cli -p 16379 save >/dev/null
rdb=$(stat -c %s "$redis/dump.rdb")
redis-cli -p 16379 shutdown nosave >/dev/null 2>&1 || true
sleep 1
start_redis
loaded=$(grep -o 'DB loaded from disk: [0-9.]* seconds' "$redis/redis.log" | tail -1 | awk '{print $5}')
echo "redis: $keys keys, used_memory $used, RDB $rdb bytes, loaded in $loaded s"
printf '{"keys": %s, "used_memory": %s, "rdb_bytes": %s, "load_s": %s, "version": "%s"}\n' \
  "$keys" "$used" "$rdb" "$loaded" "$(redis-server --version | awk '{print $3}' | cut -d= -f2)" > "$out/register-redis.json"

python3 Benchmarks/report-register.py "$out" "RESIDENTS=$RESIDENTS WRITES=$WRITES Benchmarks/run-register.sh"
