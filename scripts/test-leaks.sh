#!/usr/bin/env bash
# Runs the test suite under AddressSanitizer with LeakSanitizer, in its own build folder
# (.build-asan), and fails on any leak or memory error. protobuf-c allocates and frees on
# every decode, OpenSSL per connection: this is where a missing free would show.
# (valgrind 3.19 cannot read Swift 6.3's debug info, so LeakSanitizer it is.)
#   scripts/test-leaks.sh                 the whole suite
#   scripts/test-leaks.sh EnvelopeTests   a filter, as for `swift test --filter`
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
swift build --build-tests --sanitize=address --scratch-path .build-asan
log=.build-asan/leaks.log
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"
set +e
if [ $# -gt 0 ]; then
  swift test --skip-build --sanitize=address --scratch-path .build-asan --filter "$1" > "$log" 2>&1
  status=$?
else
  # The soak (server processes under load, themselves built with ASan) runs on its own after
  # the rest: beside the other suites it starves their deadline tests of CPU.
  swift test --skip-build --sanitize=address --scratch-path .build-asan --skip SoakTests > "$log" 2>&1
  status=$?
  swift test --skip-build --sanitize=address --scratch-path .build-asan --filter SoakTests >> "$log" 2>&1 || status=$?
fi
set -e
grep -E "Test run with|ERROR: (Leak|Address)Sanitizer|SUMMARY: (Leak|Address)Sanitizer" "$log" || true
if grep -q "ERROR: LeakSanitizer\|ERROR: AddressSanitizer" "$log"; then
  echo "test-leaks: sanitizer findings; see $log" >&2
  exit 1
fi
[ "$status" -eq 0 ] && echo "test-leaks: no leaks, no memory errors" || echo "test-leaks: tests failed (status $status); see $log" >&2
exit "$status"
