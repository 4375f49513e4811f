#!/usr/bin/env bash
# Hostile clients against a live Chukan (loopback only, every attack bounded in time and
# connections; stops by itself) while a well-behaved client measures its p99. Prints the
# table kept in docs/RELIABILITY.md ("Hostile clients").
#   scripts/hostile-clients.sh           12 s per attack
#   SECONDS_PER_ATTACK=30 scripts/hostile-clients.sh
#   ATTACKER_NICE=19 scripts/hostile-clients.sh   attackers at low CPU priority (root): the server's own cost
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
swift build -c release >/dev/null
R=.build/release
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
$R/chukanctl certs init "$work/certs" --client good --client attacker >/dev/null
port=17643
# The server's defaults (docs/OPERATIONS.md), with the listener's limits as shipped.
$R/chukan serve --port $port --metrics-port 0 --log-level error --cert "$work/certs/server.crt" --key "$work/certs/server.key" \
  --client-ca "$work/certs/ca.crt" &
server=$!
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
python3 scripts/hostile-clients.py --port $port --pid $server --certs "$work/certs" --bench $R/chukan-bench \
  --seconds "${SECONDS_PER_ATTACK:-12}" --attacker-nice "${ATTACKER_NICE:-0}" 2> "$work/detail.log" || { cat "$work/detail.log"; exit 1; }
echo
echo "Server peak RSS over the whole run: $(grep VmHWM /proc/$server/status | awk '{print $2/1024 " MB"}')"
