#!/usr/bin/env bash
# Kills a writing process with SIGKILL at random moments, CYCLES times, checking after
# each restart that every acknowledged write is present and nothing is half-applied.
#   scripts/crash-test.sh 2000
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
swift build --build-tests
CHUKAN_CRASH_CYCLES=${1:-1000} swift test --skip-build --filter CrashTests
