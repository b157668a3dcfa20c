#!/usr/bin/env bash
# Replays each fuzz target's saved corpus (tests/corpus/NAME) through the
# plain replay build of that target: any crash or sanitizer report fails.
set -u
build=${BUILD:-build}
here=$(cd "$(dirname "$0")" && pwd)
n=0
for r in "$build"/tests/replay_*; do
	[ -x "$r" ] || continue
	n=$((n + 1))
	name=${r##*/replay_}
	corpus=$here/corpus/$name
	count=$(find "$corpus" -type f 2>/dev/null | wc -l)
	if [ "$count" -eq 0 ]; then
		echo "not ok $n - corpus of $name is empty ($corpus)"
	elif out=$("$r" "$corpus" 2>&1); then
		echo "ok $n - $name: $count inputs replayed"
	else
		echo "not ok $n - $name"
		printf '%s\n' "$out" | tail -20 | sed 's/^/#   /'
	fi
done
if [ "$n" -eq 0 ]; then echo "not ok 1 - no replay programs found in $build/tests"; n=1; fi
echo "1..$n"
