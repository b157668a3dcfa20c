#!/usr/bin/env bash
# Every cache layout in, the step view out: for caches generated in each
# layout (finished and interrupted runs, odd step names, several
# executions), pack, unpack and mount, then check source/ byte for byte and
# each step's rows.jsonl, batches/ and manager_meta.json against the cache.
. "$(dirname "$0")/lib.sh"

layout_case() {
	local label=$1
	shift
	local src=$TMP/$label store=$TMP/$label.stepfs mnt=$TMP/$label.mnt
	if ! $GEN --out "$src" "$@" >"$TMP/gen.out" 2>&1; then
		not_ok "$label: generate"; sed 's/^/#   /' "$TMP/gen.out"; return
	fi
	check "$label: pack" "$STEPSTORE" pack --quiet "$src" "$store"
	check "$label: unpack is diff -r clean" sh -c "'$STEPSTORE' unpack '$store' '$TMP/$label.out' && diff -r '$src' '$TMP/$label.out'"
	check "$label: verify" "$STEPSTORE" verify "$store"
	check "$label: mount" mount_store "$store" "$mnt"
	check "$label: source/ is diff -r clean" diff -r "$src" "$mnt/source"
	check "$label: views match the cache (rows, batches, manager_meta)" \
		python3 "$ROOT/tests/integration/layout_oracle.py" check "$src" "$mnt"
	check "$label: by-name links resolve to step folders" python3 - "$mnt" <<'PY'
import glob, os, sys
links = glob.glob(os.path.join(sys.argv[1], "by-name", "*")) + glob.glob(os.path.join(sys.argv[1], "*", "*", "by-name", "*"))
assert links, "no by-name links"
for link in links:
    assert os.path.islink(link) and os.path.isdir(link), link
    assert os.path.isfile(os.path.join(link, "rows.jsonl")), link
PY
	[ "$label" = current ] && cp "$mnt/step_1/rows.jsonl" "$TMP/current.rows1"
	check "$label: unmount" unmount "$mnt"
}

layout_case monolithic --layout monolithic --seed 1 --steps 3 --batches 8 --batch-size 6
layout_case monolithic-interrupted --layout monolithic --seed 2 --steps 4 --batches 8 --batch-size 5 --interrupted --hostile-names
layout_case per-step --layout per-step --seed 3 --steps 3 --batches 8 --batch-size 6
layout_case per-step-interrupted --layout per-step --seed 4 --steps 4 --batches 7 --batch-size 5 --interrupted --hostile-names
layout_case per-batch --layout per-batch --seed 5 --steps 3 --batches 8 --batch-size 6
layout_case per-batch-interrupted --layout per-batch --seed 6 --steps 4 --batches 9 --batch-size 5 --interrupted --hostile-names
layout_case current --layout current --seed 7 --steps 3 --batches 12 --batch-size 6
layout_case current-interrupted --layout current --seed 8 --steps 4 --batches 9 --batch-size 5 --interrupted --hostile-names
layout_case split --layout split --seed 13 --steps 4 --batches 5 --batch-size 6
layout_case split-odd-names --layout split --seed 14 --steps 3 --batches 4 --batch-size 5 --hostile-names
layout_case current-3-executions --layout current --seed 9 --steps 3 --batches 6 --batch-size 4 --executions 3

# rows are stored once: step shards within 10% of one zstd stream of the batch files
$GEN --layout current --out "$TMP/size" --seed 12 --steps 3 --batches 80 --batch-size 40 >/dev/null
"$STEPSTORE" pack -q "$TMP/size" "$TMP/size.stepfs"
check "current layout: step shards <= 1.10 x one zstd stream of the batch files" \
	python3 "$ROOT/tests/integration/store_size.py" "$TMP/size" "$TMP/size.stepfs"
sed -n 's/^/# /p' "$TMP/check.out"

# pretty-printed rows (monolithic, per-step) are stored once too: their text
# in the file is what rows.jsonl serves (format 2.1 list segments)
# (interrupted runs: a finished monolithic run keeps no rows in its JSON)
for layout in monolithic per-step; do
	$GEN --layout $layout --out "$TMP/once-$layout" --seed 16 --steps 3 --batches 30 --batch-size 20 --interrupted >/dev/null
	"$STEPSTORE" pack -q "$TMP/once-$layout" "$TMP/once-$layout.stepfs"
	check "$layout layout: shards hold each row's text once (content <= 1.02 x the files)" \
		python3 "$ROOT/tests/integration/store_size.py" --content "$TMP/once-$layout" "$TMP/once-$layout.stepfs"
	sed -n 's/^/# /p' "$TMP/check.out"
	check "$layout layout: store format 2.1 or 2.2" python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["format_version"] in ([2, 1], [2, 2])' "$TMP/once-$layout.stepfs/store.json"
	check "$layout layout (rows once): mount" mount_store "$TMP/once-$layout.stepfs" "$TMP/once-$layout.mnt" -o cache_size=1
	check "$layout layout (rows once): views match the cache" \
		python3 "$ROOT/tests/integration/layout_oracle.py" check "$TMP/once-$layout" "$TMP/once-$layout.mnt"
	# reads that start anywhere, in any order, and from 4 threads at once
	# give the bytes a front-to-back read gives (and stepstore cat gives);
	# the page cache is dropped before each read, so stepfs serves them all
	check "$layout layout (rows once): random, backward and parallel reads of rows.jsonl agree" \
		python3 - "$TMP/once-$layout.mnt" "$STEPSTORE" "$TMP/once-$layout.stepfs" <<'PY'
import glob, os, random, subprocess, sys, threading
mnt, stepstore, store = sys.argv[1:4]
paths = sorted(glob.glob(os.path.join(mnt, "step_*", "rows.jsonl")))
assert paths, "no rows.jsonl"
rng = random.Random(16)
def pread(fd, n, off):
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    return os.pread(fd, n, off)
for path in paths:
    whole = open(path, "rb").read()
    rel = os.path.relpath(path, mnt)
    assert subprocess.run([stepstore, "cat", store, rel], capture_output=True, check=True).stdout == whole, rel
    if not whole:
        continue
    fd = os.open(path, os.O_RDONLY)
    try:
        for _ in range(300):
            off = rng.randrange(len(whole)); n = rng.choice([1, 7, 4096, 70000, 300000])
            assert pread(fd, n, off) == whole[off:off + n], (rel, off, n)
        step = 65536
        for off in range((len(whole) // step) * step, -1, -step):
            assert pread(fd, step, off) == whole[off:off + step], (rel, off)
        bad = []
        def worker(seed):
            r = random.Random(seed)
            for _ in range(200):
                off = r.randrange(len(whole)); n = r.choice([100, 5000, 131072])
                if pread(fd, n, off) != whole[off:off + n]:
                    bad.append((off, n))
        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        [t.start() for t in threads]; [t.join() for t in threads]
        assert not bad, (rel, bad[:3])
    finally:
        os.close(fd)
PY
	check "$layout layout (rows once): unmount" unmount "$TMP/once-$layout.mnt"
done

# list segments follow strings and nesting: rows whose strings hold ',', ']',
# '}', quotes and backslashes, nested lists, single-line rows between
# multi-line ones, NaN and Infinity, as json.dump(indent=2) writes them
$GEN --layout monolithic --out "$TMP/tricky" --seed 17 --steps 3 --batches 6 --batch-size 5 --interrupted >/dev/null
python3 - "$TMP/tricky" <<'PY'
import glob, json, sys
path = glob.glob(sys.argv[1] + "/**/batch_manager.json", recursive=True)[0]
doc = json.load(open(path))
tricky = [
    {"s": "a,b", "t": "]", "u": "}", "v": "\\", "w": "x\\\"y,", "n": [1, [2, [3, {"k": ","}]]], "e": {}, "l": []},
    "a string row, with a comma",
    12345, None, [], {},
    ["list", "row", {"a": [",", "]"], "b": "[{"}],
    {"deep": [[[[[]]]]], "q": "\"],[\"", "f": float("nan"), "g": float("-inf")},
    {"u": "\u00e9\u2028\U0001F600", "z": "\\\\,"},
]
rows = 0
for step in doc.values():
    if isinstance(step, dict) and isinstance(step.get("data"), dict):
        for pred, lst in step["data"].items():
            if isinstance(lst, list) and lst:
                step["data"][pred] = [tricky[i % len(tricky)] for i in range(len(lst))]
                rows += len(lst)
assert rows, "no rows to replace"
with open(path, "w") as f:
    json.dump(doc, f, indent=2)
PY
check "tricky pretty rows: pack" "$STEPSTORE" pack -q "$TMP/tricky" "$TMP/tricky.stepfs"
check "tricky pretty rows: mount" mount_store "$TMP/tricky.stepfs" "$TMP/tricky.mnt"
check "tricky pretty rows: rows.jsonl row for row, batches and source exact" \
	python3 "$ROOT/tests/integration/layout_oracle.py" check "$TMP/tricky" "$TMP/tricky.mnt"
check "tricky pretty rows: one line per row" python3 - "$TMP/tricky.mnt" <<'PY'
import glob, json, math, sys
n = 0
for path in glob.glob(sys.argv[1] + "/step_*/rows.jsonl"):
    for line in open(path, "rb").read().decode().split("\n")[:-1]:
        json.loads(line); n += 1
assert n > 0, "no rows"
PY
check "tricky pretty rows: unmount" unmount "$TMP/tricky.mnt"

# a pipeline folder and a lone execution folder are accepted too; the
# execution's batches come from the pipeline's shared steps_data/
pipeline=$(ls -d "$TMP/current/pipelines/"*)
execution=$(ls -d "$pipeline"/*/executions/* | head -1)
check "a pipeline folder packs with the same views" sh -c "'$STEPSTORE' pack -q '$pipeline' '$TMP/pipe.stepfs' && '$STEPSTORE' cat '$TMP/pipe.stepfs' step_1/rows.jsonl | cmp - '$TMP/current.rows1'" 
check "an execution folder packs" "$STEPSTORE" pack -q "$execution" "$TMP/exec.stepfs"
check "an execution folder: mount" mount_store "$TMP/exec.stepfs" "$TMP/exec.mnt"
check "an execution folder: source/ is that folder alone" diff -r "$execution" "$TMP/exec.mnt/source"
step1=$(python3 -c 'import json,sys; print([s for s in json.load(open(sys.argv[1]))["steps"] if s["index"]==1][0]["name"])' "$TMP/exec.mnt/manager_meta.json")
check "an execution folder: step_1 rows come from steps_data" \
	python3 "$ROOT/tests/integration/compare.py" rows "$TMP/exec.mnt/step_1" "$(ls -d "$pipeline/steps_data/${step1}_"*)"
check "an execution folder: unmount" unmount "$TMP/exec.mnt"

# a file that a cache's own JSON refers to is missing: clear error, exit 4, no store
$GEN --layout per-batch --out "$TMP/ref" --seed 15 --steps 3 --batches 4 --batch-size 3 --interrupted >/dev/null
victim=$(find "$TMP/ref" -name 'batch_*.json' -path '*batch_manager_steps*' | sort | head -1)
rm -f "$victim"
"$STEPSTORE" pack -q "$TMP/ref" "$TMP/ref.stepfs" 2>"$TMP/err.txt"
status=$?
if [ $status -eq 4 ] && grep -q "refers to '/home/user/" "$TMP/err.txt" && grep -q "$(basename "$victim")" "$TMP/err.txt" && [ ! -e "$TMP/ref.stepfs" ]; then
	ok "a missing referenced batch file: exit 4 naming both paths, no store"
else
	not_ok "a missing referenced batch file: exit 4 naming both paths, no store (exit $status)"; sed 's/^/#   /' "$TMP/err.txt"
fi

# steps are packed on two threads; a broken batch file in any step stops
# the pack with its own name and byte offset, whichever thread met it
$GEN --layout current --out "$TMP/lanes" --seed 18 --steps 4 --batches 12 --batch-size 5 >/dev/null
for dir in "$TMP/lanes"/pipelines/*/steps_data/*; do
	victim=$(ls "$dir"/batch_*.json | sort -V | tail -1)
	cp "$victim" "$TMP/victim.keep"
	printf '{"seq_no": 1, "data": [[{"a": tru' > "$victim"
	"$STEPSTORE" pack -q "$TMP/lanes" "$TMP/lanes.stepfs" 2>"$TMP/err.txt"
	status=$?
	if [ $status -eq 3 ] && grep -q "$(basename "$dir")/$(basename "$victim")': byte " "$TMP/err.txt" &&
	   ! grep -q interrupted "$TMP/err.txt" && [ ! -e "$TMP/lanes.stepfs" ]; then
		ok "broken batch file in $(basename "$dir"): exit 3 naming it, no store"
	else
		not_ok "broken batch file in $(basename "$dir"): exit 3 naming it, no store (exit $status)"; sed 's/^/#   /' "$TMP/err.txt"
	fi
	cp "$TMP/victim.keep" "$victim"
done
check "the same cache packs again once repaired" "$STEPSTORE" pack -q "$TMP/lanes" "$TMP/lanes.stepfs"

# a layout can be forced; a wrong one is refused with a clear message
$GEN --out "$TMP/plain-src" --layout current --seed 10 --steps 2 --batches 2 --batch-size 2 >/dev/null
check "--layout plain packs a cache as a plain folder" \
	sh -c "'$STEPSTORE' pack -q --layout plain '$TMP/plain-src' '$TMP/plain.stepfs' && '$STEPSTORE' info --json '$TMP/plain.stepfs' | grep -q '\"layout\": \"plain\"'"
mkdir -p "$TMP/not-a-cache/x"
echo hi > "$TMP/not-a-cache/x/file.txt"
"$STEPSTORE" pack -q --layout current "$TMP/not-a-cache" "$TMP/nac.stepfs" 2>"$TMP/err.txt"
status=$?
if [ $status -eq 3 ] && grep -q "not-a-cache" "$TMP/err.txt" && [ ! -e "$TMP/nac.stepfs" ]; then
	ok "--layout current on a plain folder: exit 3, message, no store"
else
	not_ok "--layout current on a plain folder: exit 3, message, no store (exit $status)"; sed 's/^/#   /' "$TMP/err.txt"
fi
check "a plain folder packs and shows source/" sh -c "'$STEPSTORE' pack -q '$TMP/not-a-cache' '$TMP/plain2.stepfs' && '$STEPSTORE' cat '$TMP/plain2.stepfs' source/x/file.txt | grep -qx hi"

finish
