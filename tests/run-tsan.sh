#!/usr/bin/env bash
# The code that runs on several threads, built with ThreadSanitizer
# (BUILD=build-tsan, `make SANITIZE=thread`): the unit tests of the frame
# cache, the shard writer and the dictionaries, and packs whose batch files
# are scanned on two threads, checked by verify and a byte-exact unpack.
# A data race report makes the program exit non-zero: that point fails.
# The FUSE daemon is not run here (libfuse itself is not instrumented).
set -u
build=${BUILD:-build-tsan}
root=$(cd "$(dirname "$0")/.." && pwd)
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 ${TSAN_OPTIONS:-}"
tmp=$(mktemp -d /tmp/stepfs-tsan.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
n=0

point() {
	local name=$1
	shift
	n=$((n + 1))
	if "$@" >"$tmp/out" 2>&1; then
		echo "ok $n - $name"
	else
		echo "not ok $n - $name"
		grep -v '^ok ' "$tmp/out" | head -40 | sed 's/^/#   /'
	fi
}

for t in test_cache test_seekable test_dictionary test_store; do
	if [ -x "$build/tests/$t" ]; then
		point "$t under ThreadSanitizer" "$build/tests/$t"
	else
		n=$((n + 1)); echo "not ok $n - $t is not built in $build/tests"
	fi
done

pack_case() {
	local label=$1
	shift
	python3 "$root/scripts/gen_cache.py" --out "$tmp/$label" "$@" >/dev/null
	point "$label: pack on two threads" "$build/stepstore" pack -q --threads 2 "$tmp/$label" "$tmp/$label.stepfs"
	point "$label: verify" "$build/stepstore" verify "$tmp/$label.stepfs"
	point "$label: unpack is byte-exact" sh -c "'$build/stepstore' unpack '$tmp/$label.stepfs' '$tmp/$label.out' && diff -r '$tmp/$label' '$tmp/$label.out'"
}
pack_case current --layout current --seed 21 --steps 4 --batches 40 --batch-size 30
pack_case per-batch --layout per-batch --seed 22 --steps 3 --batches 20 --batch-size 10 --interrupted

# a broken batch file stops both threads, with its own name
python3 "$root/scripts/gen_cache.py" --out "$tmp/broken" --layout current --seed 23 --steps 4 --batches 30 --batch-size 20 >/dev/null
victim=$(ls "$tmp"/broken/pipelines/*/steps_data/*/batch_*.json | sort -V | sed -n 40p)
printf '[' >"$victim"
n=$((n + 1))
"$build/stepstore" pack -q --threads 2 "$tmp/broken" "$tmp/broken.stepfs" 2>"$tmp/err"
status=$?
if [ $status -eq 3 ] && grep -q "$(basename "$victim")" "$tmp/err" && ! grep -q "ThreadSanitizer" "$tmp/err"; then
	echo "ok $n - a broken batch file: exit 3 naming it, no race reported"
else
	echo "not ok $n - a broken batch file: exit 3 naming it, no race reported (exit $status)"
	head -40 "$tmp/err" | sed 's/^/#   /'
fi
echo "1..$n"
