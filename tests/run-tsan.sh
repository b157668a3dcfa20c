#!/usr/bin/env bash
# The code that runs on several threads, built with ThreadSanitizer
# (BUILD=build-tsan, `make SANITIZE=thread`): the unit tests of the frame
# cache, the shard writer and the dictionaries, and packs whose batch files
# are scanned on two threads, checked by verify, a byte-exact unpack and
# against the same pack on one thread (the same bytes).
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
	# whichever thread packs a step, the store is the one a single thread writes
	"$build/stepstore" pack -q --threads 1 "$tmp/$label" "$tmp/$label.one.stepfs" >/dev/null 2>&1
	point "$label: the same bytes as packed on one thread (store.json but its date)" \
		python3 - "$tmp/$label.stepfs" "$tmp/$label.one.stepfs" <<'PY'
import filecmp, json, os, sys
a, b = sys.argv[1:3]
def files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
assert files(a) == files(b), (files(a), files(b))
for rel in files(a):
    if rel == "store.json":
        x, y = (json.load(open(os.path.join(r, rel))) for r in (a, b))
        x.pop("created"); y.pop("created")
        assert x == y, rel
    else:
        assert filecmp.cmp(os.path.join(a, rel), os.path.join(b, rel), shallow=False), rel
PY
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
