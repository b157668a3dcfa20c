#!/usr/bin/env bash
# Runs every unit test program built by `make tests-bin`; each prints TAP.
# This wrapper re-emits them as one TAP stream so prove counts them all.
set -u
build=${BUILD:-build}
n=0; failed=0
for t in "$build"/tests/test_*; do
	[ -x "$t" ] || continue
	n=$((n + 1))
	name=${t##*/}
	if out=$("$t" 2>&1); then
		echo "ok $n - $name"
	else
		failed=$((failed + 1))
		echo "not ok $n - $name"
		printf '%s\n' "$out" | grep -v '^ok ' | sed 's/^/#   /'
	fi
done
if [ "$n" -eq 0 ]; then echo "not ok 1 - no unit test programs found in $build/tests"; n=1; fi
echo "1..$n"
