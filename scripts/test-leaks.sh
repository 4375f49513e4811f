#!/usr/bin/env bash
# Runs the test suite under valgrind's memcheck and fails on any definite leak.
# protobuf-c allocates and frees on every decode, OpenSSL per connection: this is where
# a missing free would show. Slow (valgrind runs everything on one core, ~20-50x).
#   scripts/test-leaks.sh                 the whole suite
#   scripts/test-leaks.sh EnvelopeTests   a filter, as for `swift test --filter`
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=$(ls -d .build/debug/*.xctest | head -1)
filter=()
if [ $# -gt 0 ]; then filter=(--filter "$1"); fi
log=.build/valgrind.log
valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
  --error-exitcode=97 --num-callers=30 --log-file="$log" \
  "$bundle" --testing-library swift-testing "${filter[@]}" | tail -3
status=${PIPESTATUS[0]}
grep -E "definitely lost|indirectly lost|ERROR SUMMARY" "$log" | tail -3
if [ "$status" -eq 97 ]; then echo "test-leaks: valgrind found leaks or errors; see $log" >&2; exit 1; fi
exit "$status"
