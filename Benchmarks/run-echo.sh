#!/usr/bin/env bash
# Echo of a 1 KiB payload over TLS 1.3 on loopback: Chukan and containerd's Go ttrpc
# server (Benchmarks/peers/go-ttrpc-echo), loaded by the same chukan-bench, in one run.
# Release builds. Writes Benchmarks/out/echo-*.json and the section in Benchmarks/RESULTS.md.
#
#   Benchmarks/run-echo.sh                 20 s per point, 1/16/128 in flight over 4 connections
#   DURATION=5 Benchmarks/run-echo.sh      shorter, for a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"

DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-4}
POINTS=${POINTS:-"1 16 128"}
PAYLOAD=${PAYLOAD:-1024}
out=Benchmarks/out
mkdir -p "$out"
rm -f "$out"/echo-*.json

swift build -c release
bin=.build/release
GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= go build -o "$out/go-ttrpc-echo" Benchmarks/peers/go-ttrpc-echo/main.go

certs=$(mktemp -d)
trap 'rm -rf "$certs"; kill $(jobs -p) 2>/dev/null || true' EXIT
"$bin/chukanctl" certs init "$certs/pki" --client bench >/dev/null
pki="$certs/pki"

wait_port() {  # wait until something accepts on 127.0.0.1:$1
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2
  return 1
}

load() {  # label port
  for n in $POINTS; do
    "$bin/chukan-bench" --server "127.0.0.1:$2" --ca "$pki/ca.crt" --cert "$pki/bench.crt" --key "$pki/bench.key" \
      --connections "$CONNECTIONS" --in-flight "$n" --duration "$DURATION" --warmup "$WARMUP" --payload "$PAYLOAD" \
      --label "$1" --json | tee "$out/echo-$1-$n.json"
  done
}

echo "== chukan"
"$bin/chukan" serve --port 17443 --metrics-port 0 --log-level warning \
  --cert "$pki/server.crt" --key "$pki/server.key" --client-ca "$pki/ca.crt" &
server=$!
wait_port 17443
load chukan 17443
kill -TERM $server; wait $server || true

echo "== go-ttrpc (containerd ttrpc $(dpkg-query -W -f='${Version}' golang-github-containerd-ttrpc-dev), $(go version | cut -d' ' -f3))"
"$out/go-ttrpc-echo" -addr 127.0.0.1:17444 -cert "$pki/server.crt" -key "$pki/server.key" -ca "$pki/ca.crt" &
peer=$!
wait_port 17444
load go-ttrpc 17444
kill -TERM $peer; wait $peer || true

python3 Benchmarks/report-echo.py "$out" "DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS POINTS=\"$POINTS\" PAYLOAD=$PAYLOAD Benchmarks/run-echo.sh"
echo "== written to Benchmarks/RESULTS.md"
