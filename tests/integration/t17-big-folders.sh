#!/usr/bin/env bash
# Folders of thousands of batch files get an index of their own under
# source/: listing source/ does not load them, opening their parent loads
# them ahead on a background thread, a walk and unpack see every file, and
# damage to one of them spoils that folder alone.
. "$(dirname "$0")/lib.sh"

src=$TMP/cache
store=$TMP/big.stepfs
mnt=$TMP/mnt
check "generate a cache with two folders of 4,300 batch files" \
	$GEN --layout current --out "$src" --steps 2 --batches 4300 --batch-size 1 --text-bytes 8 \
	--embedding-dim 1 --seed 5
check "pack it" "$STEPSTORE" pack --quiet "$src" "$store"

# which index holds which folder: decompress them all
for f in "$store"/index/*.json.zst; do zstd -qdc "$f" >"${f%.zst}.txt"; done
check "each steps_data folder has its own index, named by number in the index above" \
	python3 - "$store" <<'PY'
import glob, json, os, sys
store = sys.argv[1]
docs = {}
for path in sorted(glob.glob(os.path.join(store, "index", "*.json.txt"))):
    docs[int(os.path.basename(path).split(".")[0])] = json.load(open(path))["entries"]
refs = {}
def walk(entries, index, path):
    for e in entries:
        if e[0] == "d" and isinstance(e[4], int):
            refs[path + "/" + e[1]] = (index, e[4])
        elif e[0] == "d":
            walk(e[4], index, path + "/" + e[1])
for i, entries in docs.items():
    walk(entries, i, "")
big = {p: r for p, r in refs.items() if "/steps_data/" in p}
assert len(big) == 2, sorted(refs)
for path, (above, own) in big.items():
    names = [e[1] for e in docs[own]]
    assert len(names) == 4300 and all(n.startswith("batch_") for n in names), (path, len(names))
    assert all(e[0] == "f" and len(e) == 6 for e in docs[own]), "files with their xxh64"
    print(path, "index", own, "named in index", above)
    open(os.path.join(store, "index", "which-" + path.rsplit("/", 1)[1].split("_")[0]), "w").write("%05d" % own)
PY
embed_index=$(cat "$store"/index/which-embed 2>/dev/null)
rm -f "$store"/index/*.json.txt "$store"/index/which-*
check "verify passes" "$STEPSTORE" verify "$store"
check "unpack is byte-exact" sh -c "'$STEPSTORE' unpack '$store' '$TMP/out' && diff -r '$src' '$TMP/out'"

check "mount" mount_store "$store" "$mnt"
loaded() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["indexes_loaded"])' "$mnt/.stepfs/stats.json"; }
ls "$mnt/source" >/dev/null
before=$(loaded)
steps_data=$(find "$mnt/source" -maxdepth 3 -type d -name steps_data)
check "listing source/ loads neither big folder's index (loaded: $before)" test "$before" -le 4
ls "$steps_data" >/dev/null
after=$before
for i in $(seq 1 100); do
	after=$(loaded)
	[ "$after" -ge $((before + 2)) ] && break
	sleep 0.05
done
check "opening steps_data loads both folders' indexes ahead ($before -> $after)" test "$after" -eq $((before + 2))
check "a walk through the mount finds every file" \
	sh -c "test \"\$(find '$mnt/source' -type f | wc -l)\" -eq \"\$(find '$src' -type f | wc -l)\""
check "names, sizes, modes, times and bytes match the cache" python3 "$ROOT/tests/integration/treecmp.py" same "$src" "$mnt/source"
check "unmount" unmount "$mnt"

# one changed byte in the embed folder's index
check "the embed folder's index was found" test -n "$embed_index"
python3 - "$store/index/$embed_index.json.zst" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[len(data) // 2] ^= 0x55
open(path, "wb").write(data)
PY
out=$("$STEPSTORE" verify "$store" 2>&1)
rc=$?
check "verify finds the damage (exit $rc)" test "$rc" -ne 0
check "and names the index file" grep -qF "$embed_index.json.zst" <<<"$out"
check "mount the damaged store" mount_store "$store" "$mnt"
steps_data=$(find "$mnt/source" -maxdepth 3 -type d -name steps_data)
ls "$steps_data" >/dev/null
check_fails "the damaged folder cannot be listed" ls "$steps_data"/embed_*
check "the other big folder lists its 4,300 files" \
	sh -c "test \"\$(ls '$steps_data'/load_data_* | wc -l)\" -eq 4300"
check "files outside it still read" sh -c "cat '$mnt'/source/pipelines/*/*/executions/*/batch_manager.json >/dev/null"
check "unmount" unmount "$mnt"
check "the daemon's log names the damaged index" grep -qF "$embed_index.json.zst" "$mnt.log"
check "and says it once (loaded ahead, then refused on open)" \
	test "$(grep -cF "index/$embed_index.json.zst': checksum" "$mnt.log")" -eq 1
finish
