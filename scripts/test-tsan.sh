#!/usr/bin/env bash
# Runs the test suite under ThreadSanitizer, in its own build folder (.build-tsan), and fails
# on any data race it reports. The register's writer queue, the WAL's writer thread, the
# event loops and the task pool all meet in the store: this is where a race would show.
#   scripts/test-tsan.sh                 the whole suite
#   scripts/test-tsan.sh TenantDatabase  a filter, as for `swift test --filter`
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
swift build --build-tests --sanitize=thread --scratch-path .build-tsan
log=.build-tsan/tsan.log
set +e
if [ $# -gt 0 ]; then
  TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1" \
    swift test --skip-build --sanitize=thread --scratch-path .build-tsan --filter "$1" > "$log" 2>&1
  status=$?
else
  # The soak (a server process under load, itself built with TSan) runs on its own after the
  # rest: beside the other suites it starves their deadline tests of CPU.
  TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1" \
    swift test --skip-build --sanitize=thread --scratch-path .build-tsan --skip SoakTests > "$log" 2>&1
  status=$?
  TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1" \
    swift test --skip-build --sanitize=thread --scratch-path .build-tsan --filter SoakTests >> "$log" 2>&1 || status=$?
fi
set -e
grep -E "Test run with|WARNING: ThreadSanitizer|SUMMARY: ThreadSanitizer" "$log" | sort | uniq -c | sort -rn | head -20 || true
if grep -q "WARNING: ThreadSanitizer" "$log"; then
  echo "test-tsan: data races reported; see $log" >&2
  exit 1
fi
[ "$status" -eq 0 ] && echo "test-tsan: no data races" || echo "test-tsan: tests failed (status $status); see $log" >&2
exit "$status"
