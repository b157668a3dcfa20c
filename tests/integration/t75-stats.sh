#!/usr/bin/env bash
# stepstore stats MNT [--json]: a mount's counters in human form and as
# JSON, from the mount point or any folder inside it; clear errors and
# exit codes for paths that are not in a mount and for a broken stats file;
# many readers of the counters at once.
. "$(dirname "$0")/lib.sh"

store=$TMP/sample.stepfs
mnt=$TMP/mnt
check "pack the bundled sample" "$STEPSTORE" pack --quiet "$ROOT/tests/data/distilabel-pr766" "$store"
check "mount" mount_store "$store" "$mnt"

# move the counters: read every step view once
cat "$mnt"/step_*/rows.jsonl >/dev/null

check "stats on the mount point exits 0" "$STEPSTORE" stats "$mnt"
out=$("$STEPSTORE" stats "$mnt" 2>&1)
check "the human form shows the hit rate as a percentage" grep -qE '^  cache hit rate +[0-9]+\.[0-9]%$' <<<"$out"
frames=$(sed -n 's/^  frames decompressed  *\([0-9,]*\)$/\1/p' <<<"$out" | tr -d ,)
check "frames decompressed is shown and not zero after reading (got '$frames')" test "${frames:-0}" -gt 0
check "byte counters show a unit and the exact count" grep -qE '^  bytes served +[0-9.]+ (B|KiB|MiB) \([0-9,]+ bytes\)$' <<<"$out"
check "the output names the mount" grep -qF "stepfs mount at $(realpath "$mnt")" <<<"$out"

"$STEPSTORE" stats --json "$mnt" >"$TMP/stats.json" 2>"$TMP/stats.err"
check "--json exits 0" test $? -eq 0
check "--json prints valid JSON" python3 -m json.tool "$TMP/stats.json"
cp "$mnt/.stepfs/stats.json" "$TMP/direct.json"
check "--json holds the mount's counters (stable ones equal to .stepfs/stats.json)" \
	python3 - "$TMP/stats.json" "$TMP/direct.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert set(a) == set(b), (sorted(a), sorted(b))
for key in ("frames_decompressed", "cache_misses", "bytes_decompressed", "cache_budget_bytes",
            "indexes_loaded", "read_errors"):
    assert a[key] == b[key], (key, a[key], b[key])
assert a["frames_decompressed"] > 0 and a["bytes_served"] > 0
PY
check "a folder inside the mount finds the mount's counters" "$STEPSTORE" stats "$mnt/step_1"

cp "$mnt/.stepfs/metrics" "$TMP/metrics"
check "stats.json and metrics hold exactly the counters docs/VIEWS.md lists" \
	python3 - "$TMP/direct.json" "$TMP/metrics" "$ROOT/docs/VIEWS.md" <<'PY'
import json, re, sys
stats = json.load(open(sys.argv[1]))
metrics = {}
for line in open(sys.argv[2]):
    if line.startswith("#"):
        continue
    name, value = line.split()
    metrics[name] = int(value)
rows = re.findall(r"^\| `(\w+)` \| (?:`(\w+)`|\(hits / \(hits \+ misses\)\)) \|", open(sys.argv[3]).read(), re.M)
documented = {key for key, _ in rows}
assert set(stats) == documented, (sorted(set(stats) ^ documented))
prom = {name for _, name in rows if name}
assert set(metrics) == prom, sorted(set(metrics) ^ prom)
for key, name in rows:
    if name:
        assert stats[key] == metrics[name] or key in ("cache_hits", "cache_bytes", "reads", "bytes_served",
                                                      "open_files", "cache_hit_rate"), (key, stats[key], metrics[name])
PY
check "a store stepstore packed is read without the streaming reader (indexes_scanned 0)" \
	test "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["indexes_scanned"])' "$TMP/direct.json")" -eq 0

"$STEPSTORE" stats "$TMP" >"$TMP/out" 2>"$TMP/err"
rc=$?
check "a folder outside any mount exits 4 (got $rc)" test "$rc" -eq 4
check "and names the path" grep -qF "'$TMP' is not in a stepfs mount" "$TMP/err"

"$STEPSTORE" stats "$TMP/does-not-exist" >"$TMP/out" 2>"$TMP/err"
rc=$?
check "a missing path exits 4 (got $rc)" test "$rc" -eq 4

mkdir -p "$TMP/fake/.stepfs"
printf '{"frames_decompressed": 3,\n "cache_hits": tru' >"$TMP/fake/.stepfs/stats.json"
"$STEPSTORE" stats "$TMP/fake" >"$TMP/out" 2>"$TMP/err"
rc=$?
check "a broken stats.json exits 3 (got $rc)" test "$rc" -eq 3
check "and the message names the file and where it broke" grep -qE "'$TMP/fake/.stepfs/stats.json': line 2, column [0-9]+" "$TMP/err"

printf '{"frames_decompressed": "many", "cache_hit_rate": null, "extra": [1]}\n' >"$TMP/fake/.stepfs/stats.json"
"$STEPSTORE" stats "$TMP/fake" >"$TMP/out" 2>"$TMP/err"
rc=$?
check "counters of the wrong type are shown as '?', not a crash (exit $rc)" \
	sh -c "test $rc -eq 0 && grep -qE '^  frames decompressed +\\?$' '$TMP/out' && grep -qE '^  extra +\\[1\\]$' '$TMP/out'"

"$STEPSTORE" stats >"$TMP/out" 2>"$TMP/err"
rc=$?
check "no MNT is a usage error, exit 2 (got $rc)" test "$rc" -eq 2
"$STEPSTORE" stats "$mnt" --bogus >"$TMP/out" 2>"$TMP/err"
rc=$?
check "an unknown option is a usage error, exit 2 (got $rc)" test "$rc" -eq 2

# Readers that open, read and close the counters at once, for a few
# seconds: a read's reply must not use the text a release on another
# thread frees (under AddressSanitizer, unmount below fails on a report).
end=$((SECONDS + 6))
readers=()
for k in 1 2 3 4 5 6; do
	(while [ $SECONDS -lt $end ]; do cat "$mnt/.stepfs/stats.json" "$mnt/.stepfs/metrics" >/dev/null || exit 1; done) &
	readers+=($!)
done
status=0
for job in "${readers[@]}"; do wait "$job" || status=1; done
check "six readers of .stepfs at once for 6 s all read" test "$status" -eq 0

check "unmount" unmount "$mnt"

# A name the packer writes with an escape: its index is one the in-memory
# reader leaves to the streaming one, and the counter says so.
mkdir -p "$TMP/odd/sub"
printf 'x' >"$TMP/odd/sub/quote\"name"
check "pack a folder whose file name holds a quote" "$STEPSTORE" pack --quiet "$TMP/odd" "$TMP/odd.stepfs"
check "mount it" mount_store "$TMP/odd.stepfs" "$mnt"
check "the file is there" test -f "$mnt/source/sub/quote\"name"
scanned=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["indexes_scanned"])' "$mnt/.stepfs/stats.json")
check "indexes_scanned counts its index (got $scanned)" test "$scanned" -ge 1
check "and metrics shows the same" grep -qx "stepfs_indexes_scanned_total $scanned" "$mnt/.stepfs/metrics"
check "unmount it" unmount "$mnt"
finish
