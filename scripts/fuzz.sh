#!/usr/bin/env bash
# Fuzzes the decoders that read outside bytes (Sources/chukan-fuzz) with libFuzzer and
# AddressSanitizer, one target at a time, starting from its committed corpus
# (Fuzz/corpus/TARGET); new inputs are kept there, crashes in Fuzz/crashes/TARGET.
# Stops by itself. Targets: wire wal snapshot permit policy permission-list record, or all.
#   scripts/fuzz.sh                 every target, 60 s each
#   scripts/fuzz.sh wal 600         the log reader, ten minutes
#   scripts/fuzz.sh all 30 -jobs=2  extra libFuzzer options after the seconds
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
targets=${1:-all}
seconds=${2:-60}
shift 2 || shift $# || true
[ "$targets" = all ] && targets="wire wal snapshot permit policy permission-list record"
swift build -c release --product chukan-fuzz --scratch-path .build-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -parse-as-library
status=0
for t in $targets; do
  mkdir -p "Fuzz/corpus/$t" "Fuzz/crashes/$t"
  echo "== $t: $seconds s"
  # A crash ends this target's run, not the others': it is reported and the script fails at the end.
  CHUKAN_FUZZ_TARGET=$t .build-fuzz/release/chukan-fuzz "Fuzz/corpus/$t" -max_total_time="$seconds" -max_len=65536 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -artifact_prefix="Fuzz/crashes/$t/" -print_final_stats=1 "$@" \
    > "Fuzz/crashes/$t/last-run.log" 2>&1 || status=1
  grep -E "^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|Test unit written" \
    "Fuzz/crashes/$t/last-run.log" | tail -6
  # With -jobs=N libFuzzer writes each worker's output to fuzz-<i>.log here: report and keep them beside last-run.log.
  for w in fuzz-*.log; do
    [ -e "$w" ] || continue
    grep -E "^Done|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY" "$w" | sed "s/^/$w: /"
    mv "$w" "Fuzz/crashes/$t/$w"
  done
  echo "corpus: $(ls "Fuzz/corpus/$t" | wc -l) inputs"
done
exit $status
