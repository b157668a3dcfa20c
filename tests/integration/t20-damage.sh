#!/usr/bin/env bash
# Damaged stores: nothing intact is lost, nothing crashes or hangs.
#
# One-bit flips at random offsets of every shard must each be found by
# `stepstore verify`, which names the shard, the frame (or the seek table)
# and exactly the files touching it. A mount of a damaged store serves every
# file the damage does not touch byte for byte, fails the damaged ranges with
# EIO and logs shard and frame. Broken, missing, empty, truncated or odd
# shards, indexes and store.json are either served around or refused with
# one clear message; under `timeout`, so a hang fails the test.
. "$(dirname "$0")/lib.sh"

# the interpreter itself, not a version-manager shim that costs a second a call
PY=$(python3 -c 'import sys; print(sys.executable)')

DAMAGE="$PY $ROOT/tests/integration/damage.py"
SAMPLE=$ROOT/tests/data/distilabel-pr766
FLIPS=200
MOUNT_FLIPS=10

# sanitizer_clean FILE: no sanitizer report in FILE.
sanitizer_clean() { ! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$1"; }

# flips LABEL STORE COUNT SEED [tables]: one test point for a flip series.
flips() {
	local label=$1 store=$2 count=$3 seed=$4 region=${5:-}
	if timeout 600 $DAMAGE flips "$store" "$STEPSTORE" "$count" "$seed" $region >"$TMP/flips.out" 2>&1; then
		ok "$label: $(head -1 "$TMP/flips.out")"
	else
		not_ok "$label: $(head -1 "$TMP/flips.out")"
	fi
	grep -E '^(ignored|FAILED):' "$TMP/flips.out" | cut -c1-400 | sed 's/^/#   /' | head -40
}

check "sample: pack" "$STEPSTORE" pack --quiet "$SAMPLE" "$TMP/sample.stepfs"
if [ -f "$ROOT/scripts/gen_cache.py" ]; then
	$GEN --layout current --out "$TMP/gen" --seed 20 --steps 3 --batches 40 --batch-size 20 >/dev/null
	# 32 KiB frames: several frames per shard, so damage leaves neighbours intact
	check "generated: pack with 32 KiB frames" "$STEPSTORE" pack --quiet --frame-size 32K "$TMP/gen" "$TMP/gen.stepfs"
	MAIN=$TMP/gen.stepfs MAIN_SRC=$TMP/gen
else
	MAIN=$TMP/sample.stepfs MAIN_SRC=$SAMPLE
fi
check "both stores verify before any damage" sh -c "'$STEPSTORE' verify '$TMP/sample.stepfs' && '$STEPSTORE' verify '$MAIN'"

# ---- one-bit flips, verify ------------------------------------------------
flips "flips across all shards" "$MAIN" "$FLIPS" 2001
flips "flips across the sample's shards" "$TMP/sample.stepfs" 50 2002
flips "flips inside seek tables" "$MAIN" 40 2003 tables
flips "flips inside the sample's seek tables" "$TMP/sample.stepfs" 20 2004 tables

# The only bits no check covers: bits 0 and 1 of the seek table descriptor,
# which the zstd seekable format tells decoders not to interpret. A flip
# there must change nothing that is read.
cp -a "$MAIN" "$TMP/unused.stepfs"
for shard in "$TMP/unused.stepfs"/shards/[0-9][0-9][0-9][0-9][0-9].zst; do
	size=$(stat -c %s "$shard")
	$DAMAGE toggle "$shard" $((size - 5)) 0
	$DAMAGE toggle "$shard" $((size - 5)) 1
done
check "unused seek table descriptor bits flipped in every shard: verify passes" "$STEPSTORE" verify "$TMP/unused.stepfs"
check "and unpack is still byte-exact" sh -c "'$STEPSTORE' unpack '$TMP/unused.stepfs' '$TMP/unused.unpacked' && diff -r '$MAIN_SRC' '$TMP/unused.unpacked'"
rm -rf "$TMP/unused.stepfs" "$TMP/unused.unpacked"

# ---- one-bit flips, mounted -----------------------------------------------
cp -a "$MAIN" "$TMP/flipped.stepfs"
MNT=$TMP/mnt
n=0
while read -r shard offset bit frame; do
	n=$((n + 1))
	file=$(printf '%s/shards/%05d.zst' "$TMP/flipped.stepfs" "$shard")
	desc="mounted flip $n (shard $shard frame $frame, byte $offset bit $bit)"
	$DAMAGE toggle "$file" "$offset" "$bit"
	if "$STEPSTORE" verify "$TMP/flipped.stepfs" >/dev/null 2>&1; then
		ok "$desc # SKIP the flip lands in a bit the zstd decoder ignores"
		$DAMAGE toggle "$file" "$offset" "$bit"
		continue
	fi
	if mount_store "$TMP/flipped.stepfs" "$MNT"; then
		check "$desc: intact files byte-exact, damaged ranges EIO" \
			timeout 300 $DAMAGE checkmount "$MAIN" "$MAIN_SRC" "$MNT" --frame "$shard:$frame"
		name=$(printf '%05d.zst' "$shard")
		if grep -E "$name'?: frame $frame\\b" "$MNT.log" >/dev/null; then
			ok "$desc: the daemon logged shard and frame"
		else
			not_ok "$desc: the daemon logged shard and frame"
			head -5 "$MNT.log" | sed 's/^/#   /'
		fi
		check "$desc: unmount" unmount "$MNT"
	else
		not_ok "$desc: mount"
	fi
	$DAMAGE toggle "$file" "$offset" "$bit"
done < <($DAMAGE pick "$MAIN" "$MOUNT_FLIPS" 2005)

# ---- structural damage --------------------------------------------------
# Shards, indexes and folders of $MAIN by number.
shard_file() { printf '%s/shards/%05d.zst' "$1" "$2"; }
index_file() { $PY -c 'import json,sys; print(sys.argv[1] + "/" + json.load(open(sys.argv[1] + "/store.json"))["indexes"][int(sys.argv[2])]["file"])' "$1" "$2"; }
ROOT_INDEX=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["root_index"])' "$MAIN/store.json")
# the root index's folders, read as storemodel.py reads every format version
root_dirs() { $PY -c '
import sys
sys.path.insert(0, sys.argv[1])
import storemodel
store = storemodel.Store(sys.argv[2])
root = store.doc["root_index"]
for path, e in sorted(store.dirs.items()):
    if e["index_of"] == root and "index" in e:
        print(path.decode(), e["index"])' "$(dirname "$0")" "$1"; }
SOURCE_INDEX=$(root_dirs "$MAIN" | awk '$1 == "source" { print $2 }')
STEP_INDEX=$(root_dirs "$MAIN" | awk '$1 ~ /^step_/ { i = $2 } END { print i }')
STEP_SHARD=$($PY -c '
import json, sys
print([i for i, s in enumerate(json.load(open(sys.argv[1]))["shards"]) if s["kind"] == "step"][0])' "$MAIN/store.json")
LAST_SHARD=$(($(ls "$MAIN/shards"/[0-9][0-9][0-9][0-9][0-9].zst | wc -l) - 1))

# mutate FILE: python snippets that damage FILE in place.
truncate_half() { $PY -c 'import os,sys; p=sys.argv[1]; os.truncate(p, os.path.getsize(p)//2)' "$1"; }
truncate_by() { $PY -c 'import os,sys; p=sys.argv[1]; os.truncate(p, os.path.getsize(p)-int(sys.argv[2]))' "$1" "$2"; }
flip_at() { $PY -c '
import os, sys
p, where = sys.argv[1], int(sys.argv[2])
pos = where if where >= 0 else os.path.getsize(p) + where
with open(p, "r+b") as f:
    f.seek(pos); b = f.read(1); f.seek(pos); f.write(bytes([b[0] ^ 0x21]))' "$1" "$2"; }
garbage() { $PY -c 'import os,random,sys; p=sys.argv[1]; open(p,"wb").write(random.Random(5).randbytes(os.path.getsize(p)))' "$1"; }
edit_store_json() { $PY -c '
import json, sys
p = sys.argv[1]
d = json.load(open(p))
exec(sys.argv[2])
open(p, "w").write(json.dumps(d))' "$1/store.json" "$2"; }
# edit_index STORE ID CODE: rewrite index ID of STORE (format 2.0: JSON in a
# zstd frame) after CODE has changed its parsed document d, and drop its
# checksum from store.json so that what CODE did is what a reader meets.
edit_index() { $PY -c '
import json, subprocess, sys
store, i, code = sys.argv[1], int(sys.argv[2]), sys.argv[3]
meta = json.load(open(store + "/store.json"))
path = store + "/" + meta["indexes"][i]["file"]
d = json.loads(subprocess.run(["zstd", "-qdc", path], check=True, capture_output=True).stdout)
exec(code)
open(path + ".plain", "w").write(json.dumps(d))
subprocess.run(["zstd", "-qf", "--rm", path + ".plain", "-o", path], check=True)
meta["indexes"][i].pop("xxh64", None)
open(store + "/store.json", "w").write(json.dumps(meta))' "$1" "$2" "$3"; }
# the root index's step folders name their own indexes: make the second
# name the first one's too
SHARE_INDEX='steps = [e for e in d["entries"] if e[0] == "d" and e[1].startswith("step_") and isinstance(e[4], int)]
steps[1][4] = steps[0][4]'
# a folder of the source index made to show the root index: a loop
LOOP_INDEX="first = [e for e in d[\"entries\"] if e[0] == \"d\" and isinstance(e[4], list)][0]
first[4] = $ROOT_INDEX"

# damage_case NAME EXPECT SETUP [checkmount options]: EXPECT is "serve"
# (the mount starts and serves what is intact) or "refuse" (stepfs exits 1
# with one message before mounting). SETUP runs with $D set to the copy.
damage_case() {
	local name=$1 expect=$2 setup=$3
	shift 3
	local D=$TMP/case.stepfs mnt=$TMP/case.mnt status
	rm -rf "$D"
	cp -a "$MAIN" "$D"
	eval "$setup"
	timeout 120 "$STEPSTORE" verify "$D" >"$TMP/case.verify" 2>&1
	status=$?
	if [ $status -ge 1 ] && [ $status -lt 124 ] && sanitizer_clean "$TMP/case.verify" &&
		head -1 "$TMP/case.verify" | grep -q '^stepstore: '; then
		ok "$name: verify fails (exit $status) with a message"
	else
		not_ok "$name: verify fails (exit $status) with a message"
		head -5 "$TMP/case.verify" | sed 's/^/#   /'
	fi
	rm -rf "$TMP/case.unpacked"
	timeout 120 "$STEPSTORE" unpack "$D" "$TMP/case.unpacked" >"$TMP/case.unpack" 2>&1
	status=$?
	if [ $status -lt 124 ] && sanitizer_clean "$TMP/case.unpack"; then
		ok "$name: unpack ends without crash or hang (exit $status)"
	else
		not_ok "$name: unpack ends without crash or hang (exit $status)"
		head -5 "$TMP/case.unpack" | sed 's/^/#   /'
	fi
	rm -rf "$TMP/case.unpacked"
	if [ "$expect" = serve ]; then
		if mount_store "$D" "$mnt"; then
			check "$name: mount serves everything intact byte-exact" \
				timeout 300 $DAMAGE checkmount "$MAIN" "$MAIN_SRC" "$mnt" "$@"
			check "$name: unmount" unmount "$mnt"
		else
			not_ok "$name: mount serves what is intact (it refused)"
		fi
		return
	fi
	mkdir -p "$mnt"
	timeout 30 "$STEPFS" "$D" "$mnt" -f >"$TMP/case.mount" 2>&1 &
	local pid=$!
	MOUNTS+=("$mnt")
	MOUNT_PIDS+=("$pid")
	wait "$pid"
	status=$?
	if mountpoint -q "$mnt"; then fusermount3 -u "$mnt"; fi
	if [ $status -eq 1 ] && [ "$(wc -l <"$TMP/case.mount")" -eq 1 ] &&
		grep -q '^stepfs: ' "$TMP/case.mount" && sanitizer_clean "$TMP/case.mount"; then
		ok "$name: stepfs refuses with one message: $(cut -c1-200 "$TMP/case.mount")"
	else
		not_ok "$name: stepfs refuses with one message and exit 1 (exit $status)"
		head -5 "$TMP/case.mount" | sed 's/^/#   /'
	fi
}

damage_case "truncated shard" serve 'truncate_half "$(shard_file "$D" $STEP_SHARD)"' --shard "$STEP_SHARD"
damage_case "shard one byte short" serve 'truncate_by "$(shard_file "$D" $LAST_SHARD)" 1' --shard "$LAST_SHARD"
damage_case "missing shard" serve 'rm "$(shard_file "$D" $STEP_SHARD)"' --shard "$STEP_SHARD"
damage_case "zero-length shard" serve ': >"$(shard_file "$D" $LAST_SHARD)"' --shard "$LAST_SHARD"
damage_case "shard of random bytes" serve 'garbage "$(shard_file "$D" $STEP_SHARD)"' --shard "$STEP_SHARD"
damage_case "shard replaced by a folder" serve 'rm "$(shard_file "$D" $STEP_SHARD)"; mkdir "$(shard_file "$D" $STEP_SHARD)"' --shard "$STEP_SHARD"
damage_case "shard replaced by a FIFO" serve 'rm "$(shard_file "$D" $STEP_SHARD)"; mkfifo "$(shard_file "$D" $STEP_SHARD)"' --shard "$STEP_SHARD"
damage_case "damaged seek table entry" serve 'flip_at "$(shard_file "$D" $STEP_SHARD)" -30' --shard "$STEP_SHARD"
damage_case "damaged seek table footer" serve 'flip_at "$(shard_file "$D" $STEP_SHARD)" -9' --shard "$STEP_SHARD"
damage_case "truncated seek table" serve 'truncate_by "$(shard_file "$D" $LAST_SHARD)" 20' --shard "$LAST_SHARD"
damage_case "store.json frame count wrong" serve 'edit_store_json "$D" "d[\"shards\"][$STEP_SHARD][\"frames\"] += 1"' --shard "$STEP_SHARD"
damage_case "damaged step index" serve 'flip_at "$(index_file "$D" $STEP_INDEX)" 100' --index "$STEP_INDEX"
damage_case "missing step index" serve 'rm "$(index_file "$D" $STEP_INDEX)"' --index "$STEP_INDEX"
damage_case "empty source index" serve ': >"$(index_file "$D" $SOURCE_INDEX)"' --index "$SOURCE_INDEX"
damage_case "truncated source index" serve 'truncate_half "$(index_file "$D" $SOURCE_INDEX)"' --index "$SOURCE_INDEX"
damage_case "index replaced by a FIFO" serve 'rm "$(index_file "$D" $STEP_INDEX)"; mkfifo "$(index_file "$D" $STEP_INDEX)"' --index "$STEP_INDEX"
damage_case "index without checksum, damaged" serve 'edit_store_json "$D" "del d[\"indexes\"][$STEP_INDEX][\"xxh64\"]"; truncate_by "$(index_file "$D" $STEP_INDEX)" 7' --index "$STEP_INDEX"
if [ "$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["format_version"][0])' "$MAIN/store.json")" = 2 ]; then
	damage_case "one index shown by two step folders" refuse 'edit_index "$D" $ROOT_INDEX "$SHARE_INDEX"'
	damage_case "a source folder showing the root index (a loop)" serve 'edit_index "$D" $SOURCE_INDEX "$LOOP_INDEX"' --index "$SOURCE_INDEX"
else
	not_ok "the store under test is of format 2.0"
fi
damage_case "damaged root index" refuse 'flip_at "$(index_file "$D" $ROOT_INDEX)" 50'
damage_case "missing root index" refuse 'rm "$(index_file "$D" $ROOT_INDEX)"'
damage_case "damaged store.json" refuse 'flip_at "$D/store.json" 0'
damage_case "truncated store.json" refuse 'truncate_half "$D/store.json"'
damage_case "empty store.json" refuse ': >"$D/store.json"'
damage_case "missing store.json" refuse 'rm "$D/store.json"'
damage_case "store.json replaced by a FIFO" refuse 'rm "$D/store.json"; mkfifo "$D/store.json"'
damage_case "store.json of an unknown major version" refuse 'edit_store_json "$D" "d[\"format_version\"] = [3, 0]"'
damage_case "store.json naming a shard outside the store" refuse 'edit_store_json "$D" "d[\"shards\"][0][\"file\"] = \"../../etc/passwd\""'
damage_case "store.json naming an index outside the store" refuse 'edit_store_json "$D" "d[\"indexes\"][0][\"file\"] = \"/etc/passwd\""'
damage_case "store.json root_index out of range" refuse 'edit_store_json "$D" "d[\"root_index\"] = 99"'

finish
