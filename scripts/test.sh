#!/usr/bin/env bash
# Builds stepfs and runs every test: unit tests, fuzz-corpus replay and
# real-mount integration tests, then (under CI, or with SANITIZE=1) the
# whole suite again built with AddressSanitizer and UndefinedBehaviorSanitizer,
# and the multi-threaded code (tests/run-tsan.sh) under ThreadSanitizer.
#   bash scripts/test.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/deps.sh test
jobs=$(nproc 2>/dev/null || echo 2)

echo "== build (warnings are errors)"
make -s -j"$jobs" WERROR=1 all tests-bin
echo "== test suite"
status=0
make -s WERROR=1 check || status=1

if [ "${CI:-}" = true ] || [ "${SANITIZE:-}" = 1 ]; then
	echo "== test suite under AddressSanitizer and UndefinedBehaviorSanitizer"
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	make -s -j"$jobs" BUILD=build-asan SANITIZE=address,undefined WERROR=1 all tests-bin
	make -s BUILD=build-asan SANITIZE=address,undefined WERROR=1 STEPFS_SANITIZED=1 check || status=1
	echo "== code on several threads under ThreadSanitizer"
	make -s -j"$jobs" BUILD=build-tsan SANITIZE=thread WERROR=1 all tests-bin
	BUILD="$root/build-tsan" prove -f --timer tests/run-tsan.sh || status=1
fi
if [ "$status" -eq 0 ]; then echo "stepfs: all tests passed"; else echo "stepfs: some tests FAILED"; fi
exit "$status"
