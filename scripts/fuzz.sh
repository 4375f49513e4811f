#!/usr/bin/env bash
# Fuzzes the decoders that read outside bytes (Sources/chukan-fuzz: frames, the ttrpc
# envelope, the request messages, audit records) with libFuzzer and AddressSanitizer,
# starting from the committed corpus (Fuzz/corpus); new inputs are kept there, crashes
# in Fuzz/crashes. Stops by itself.
#   scripts/fuzz.sh             60 s
#   scripts/fuzz.sh 600         ten minutes
#   scripts/fuzz.sh 30 -jobs=2  extra libFuzzer options
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
seconds=${1:-60}
shift || true
swift build -c release --product chukan-fuzz --scratch-path .build-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -parse-as-library
mkdir -p Fuzz/corpus Fuzz/crashes
.build-fuzz/release/chukan-fuzz Fuzz/corpus -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
  -timeout=10 -artifact_prefix=Fuzz/crashes/ -print_final_stats=1 "$@" 2>&1 | tail -25
