#!/usr/bin/env bash
# Shard dictionaries: a cache of many small batches packed with 16 KiB
# frames and --dictionary always, auto and never (and the config key)
# verifies, unpacks and mounts byte-exact; info shows the choice; zstd -D
# decodes a shard; a damaged or missing .dict fails only its shard's files.
. "$(dirname "$0")/lib.sh"

SRC=$TMP/cache
if ! $GEN --layout current --out "$SRC" --seed 9 --steps 3 --batches 800 --batch-size 2 \
	--text-bytes 60 --embedding-dim 4 >"$TMP/gen.out" 2>&1; then
	not_ok "generate"; sed 's/^/#   /' "$TMP/gen.out"
fi

# dict_shards STORE: the step shards that use a dictionary, one per line.
dict_shards() {
	python3 - "$1" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1] + "/store.json"))["shards"]:
    if s["kind"] == "step" and s.get("dictionary", {}).get("used"):
        print(s["file"], s["dictionary"]["file"], s["label"])
PY
}

for mode in always auto never; do
	store=$TMP/$mode.stepfs mnt=$TMP/$mode.mnt
	check "$mode: pack --frame-size 16K --dictionary $mode" \
		"$STEPSTORE" pack --quiet --frame-size 16K --dictionary "$mode" "$SRC" "$store"
	check "$mode: verify" "$STEPSTORE" verify "$store"
	check "$mode: unpack is diff -r clean" \
		sh -c "'$STEPSTORE' unpack '$store' '$TMP/$mode.out' && diff -r '$SRC' '$TMP/$mode.out'"
	check "$mode: mount" mount_store "$store" "$mnt"
	check "$mode: source/ is diff -r clean" diff -r "$SRC" "$mnt/source"
	check "$mode: views match the cache" \
		python3 "$ROOT/tests/integration/layout_oracle.py" check "$SRC" "$mnt"
	check "$mode: unmount" unmount "$mnt"
	"$STEPSTORE" info "$store" >"$TMP/$mode.info" 2>&1
	"$STEPSTORE" info --json "$store" >"$TMP/$mode.json" 2>&1
	check "$mode: info names the mode" grep -q "dictionaries $mode" "$TMP/$mode.info"
	used=$(dict_shards "$store" | wc -l)
	case $mode in
	never)
		check "never: no .dict files, info says '-' for every shard" \
			sh -c "! ls '$store'/shards/*.dict* 2>/dev/null && ! grep -q 'yes:' '$TMP/never.info'"
		;;
	always)
		if [ "$used" -eq 3 ]; then ok "always: all 3 step shards use a dictionary"
		else not_ok "always: all 3 step shards use a dictionary ($used do)"; fi
		check "always: info shows each dictionary and its saving" \
			sh -c "[ \$(grep -c 'yes: .* KiB, net saving about' '$TMP/always.info') -ge 3 ]"
		check "always: info --json carries the figures" python3 - "$TMP/always.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
used = [s for s in d["shards"] if s["kind"] == "step" and s.get("dictionary", {}).get("used")]
assert len(used) >= 3, used
for s in used:
    x = s["dictionary"]
    assert 8192 <= x["bytes"] <= 112 * 1024 and x["id"] > 0 and len(x["xxh64"]) == 16, x
    assert x["probe_compressed_with"] < x["probe_compressed_without"], x
PY
		set -- $(dict_shards "$store" | sed -n 1p)
		check "always: each dictionary is stored as one zstd frame (.dict.zst), smaller than itself, format 2.2" \
			python3 - "$store" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1] + "/store.json"))
assert d["format_version"] == [2, 2], d["format_version"]
for s in d["shards"]:
    x = s.get("dictionary", {})
    if x.get("used"):
        assert x["file"].endswith(".dict.zst"), x
        stored = os.path.getsize(os.path.join(sys.argv[1], x["file"]))
        assert stored < x["bytes"], (stored, x["bytes"])
        assert open(os.path.join(sys.argv[1], x["file"]), "rb").read(4) == b"\x28\xb5\x2f\xfd"
PY
		check "always: zstd -D DICT -dc decodes a shard, not without -D" \
			sh -c "zstd -q -dc '$store/$2' >'$TMP/plain.dict' && zstd -q -D '$TMP/plain.dict' -dc '$store/$1' >/dev/null && ! zstd -q -dc '$store/$1' >/dev/null 2>&1"
		;;
	auto)
		check "auto: every step shard records its decision and reason" python3 - "$store" <<'PY'
import json, sys
d = json.load(open(sys.argv[1] + "/store.json"))
steps = [s for s in d["shards"] if s["kind"] == "step"]
assert steps and all("reason" in s["dictionary"] for s in steps), steps
assert not any("dictionary" in s for s in d["shards"] if s["kind"] == "raw")
PY
		echo "# auto chose a dictionary for $used step shards"
		;;
	esac
done

# the config key, and the command line over it
printf 'pack:\n  dictionary: never\n' >"$TMP/never.yaml"
printf 'pack:\n  dictionary: always\n' >"$TMP/always.yaml"
check "config pack.dictionary: always gives .dict files" sh -c \
	"'$STEPSTORE' pack -q --frame-size 16K --config '$TMP/always.yaml' '$SRC' '$TMP/cfg1.stepfs' && ls '$TMP/cfg1.stepfs'/shards/*.dict.zst >/dev/null"
check "--dictionary never overrides the config" sh -c \
	"'$STEPSTORE' pack -q --frame-size 16K --config '$TMP/always.yaml' --dictionary never '$SRC' '$TMP/cfg2.stepfs' && ! ls '$TMP/cfg2.stepfs'/shards/*.dict* 2>/dev/null"
check_fails "--dictionary sometimes is refused" "$STEPSTORE" pack -q --dictionary sometimes "$SRC" "$TMP/bad.stepfs"

# a damaged dictionary: verify names it; only its shard's files fail
damaged_case() {
	local label=$1 how=$2
	local store=$TMP/$label.stepfs mnt=$TMP/$label.mnt
	cp -a "$TMP/always.stepfs" "$store"
	set -- $(dict_shards "$store" | sed -n 1p)
	local dict=$2 step=$3
	case $how in
	flip) python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=0x10; open(p,"wb").write(b)' "$store/$dict" ;;
	remove) rm "$store/$dict" ;;
	esac
	"$STEPSTORE" verify "$store" >"$TMP/$label.verify" 2>&1
	local status=$?
	if [ $status -eq 1 ] && grep -q "$dict" "$TMP/$label.verify"; then
		ok "$label: verify fails (exit 1) naming $dict"
	else
		not_ok "$label: verify fails (exit 1) naming $dict (exit $status)"; sed 's/^/#   /' "$TMP/$label.verify"
	fi
	check "$label: mount" mount_store "$store" "$mnt"
	check "$label: only files of step ${step%%_*} fail (EIO); all others byte-exact" \
		python3 - "$SRC" "$mnt/source" "${step}" <<'PY'
import errno, os, sys
src, mnt, step = sys.argv[1:4]
failed = good = 0
for dirpath, _, names in os.walk(src):
    for name in names:
        rel = os.path.relpath(os.path.join(dirpath, name), src)
        try:
            data = open(os.path.join(mnt, rel), "rb").read()
        except OSError as e:
            assert e.errno == errno.EIO, (rel, e)
            assert step in rel.split(os.sep), "a file outside the damaged step failed: " + rel
            failed += 1
            continue
        assert data == open(os.path.join(src, rel), "rb").read(), rel
        good += 1
assert failed > 0 and good > 0, (failed, good)
print("# %d files failed, %d read byte-exact" % (failed, good))
PY
	check "$label: the daemon logged the dictionary file" grep -q "$dict" "$mnt.log"
	check "$label: unmount" unmount "$mnt"
}
damaged_case damaged-dict flip
damaged_case missing-dict remove

# Data that does not compress (parquet, images) goes to the raw shard,
# whose frames are stored (raw zstd blocks), never given a dictionary.
RAW=$TMP/rawsrc
mkdir -p "$RAW/images" "$RAW/data"
python3 -c 'import random,sys; open(sys.argv[1],"wb").write(b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(700000))' "$RAW/images/photo.png"
cp "$ROOT"/tests/data/distilabel-pr766/pipelines/*/*/executions/*/data/steps_outputs/annotate/0000[1-4].parquet "$RAW/data/" 2>/dev/null
printf '%s\n' "a small text file that compresses well, well, well" >"$RAW/notes.txt"
check "incompressible: pack --dictionary always" \
	"$STEPSTORE" pack -q --frame-size 16K --dictionary always "$RAW" "$TMP/raw.stepfs"
check "incompressible: unpack is diff -r clean" \
	sh -c "'$STEPSTORE' unpack '$TMP/raw.stepfs' '$TMP/raw.out' && diff -r '$RAW' '$TMP/raw.out'"
check "incompressible: the png sits in a raw shard of stored frames (the test parquet files compress, so they do not)" python3 - "$TMP/raw.stepfs" <<'PY'
import json, os, struct, sys
store = sys.argv[1]
d = json.load(open(store + "/store.json"))
raw = [s for s in d["shards"] if s["kind"] == "raw"]
assert len(raw) == 1 and "dictionary" not in raw[0], raw
s = raw[0]
assert s["content_bytes"] >= 700000, s
data = open(os.path.join(store, s["file"]), "rb").read()
count = struct.unpack("<I", data[-9:-5])[0]
table = len(data) - (8 + 12 * count + 9)
offset = 0
for i in range(count):
    csize, dsize, _ = struct.unpack("<III", data[table + 8 + 12 * i: table + 20 + 12 * i])
    frame = data[offset:offset + csize]
    fhd = frame[4]
    single, fcs, did = fhd & 0x20, fhd >> 6, fhd & 3
    header = 5 + (0 if single else 1) + [1 if single else 0, 2, 4, 8][fcs] + [0, 1, 2, 4][did]
    assert (frame[header] >> 1) & 3 == 0, "frame %d is not stored" % i
    assert csize <= dsize + 32, (i, csize, dsize)
    offset += csize
print("# %d stored frames, %d bytes for %d of content" % (count, s["compressed_bytes"], s["content_bytes"]))
PY

finish
