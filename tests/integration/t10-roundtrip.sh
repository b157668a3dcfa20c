#!/usr/bin/env bash
# The foundation path: a generated cache in the current layout and the
# bundled sample are packed, unpacked and mounted; everything must come back
# byte for byte, every shard must be a valid zstd file, and verify must
# notice a single changed byte.
. "$(dirname "$0")/lib.sh"

check_cache() {
	local label=$1 src=$2
	local store=$TMP/$label.stepfs mnt=$TMP/$label.mnt
	check "$label: pack" "$STEPSTORE" pack --quiet "$src" "$store"
	check "$label: store.json is JSON with a format version" \
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["format"]=="stepfs-store" and d["format_version"][0]==2' "$store/store.json"
	check "$label: unpack" "$STEPSTORE" unpack "$store" "$TMP/$label.unpacked"
	check "$label: unpack is diff -r clean" diff -r "$src" "$TMP/$label.unpacked"
	check "$label: unpack keeps modes, mtimes and symlinks" \
		python3 - "$src" "$TMP/$label.unpacked" <<'PY'
import os, sys
a, b = sys.argv[1], sys.argv[2]
for dirpath, dirnames, filenames in os.walk(a):
    for name in dirnames + filenames + ['.']:
        pa = os.path.normpath(os.path.join(dirpath, name))
        pb = os.path.join(b, os.path.relpath(pa, a))
        sa, sb = os.lstat(pa), os.lstat(pb)
        if sa.st_mode != sb.st_mode:
            sys.exit("%s: mode %o != %o" % (pb, sa.st_mode, sb.st_mode))
        if sa.st_mtime_ns != sb.st_mtime_ns:
            sys.exit("%s: mtime %d != %d" % (pb, sa.st_mtime_ns, sb.st_mtime_ns))
        if os.path.islink(pa) and os.readlink(pa) != os.readlink(pb):
            sys.exit("%s: symlink target differs" % pb)
PY
	local bad=0 shard dict
	for shard in "$store"/shards/[0-9][0-9][0-9][0-9][0-9].zst; do
		dict=()
		[ -e "${shard%.zst}.dict" ] && dict=(-D "${shard%.zst}.dict")
		if [ -e "${shard%.zst}.dict.zst" ]; then
			zstd -q -dc "${shard%.zst}.dict.zst" >"$TMP/shard.dict" && dict=(-D "$TMP/shard.dict")
		fi
		zstd -q -t "${dict[@]}" "$shard" || { echo "# zstd -t failed on $shard"; bad=1; }
	done
	if [ $bad -eq 0 ]; then ok "$label: every shard passes zstd -t"; else not_ok "$label: every shard passes zstd -t"; fi
	check "$label: verify passes" "$STEPSTORE" verify "$store"
	check "$label: info --json is JSON" sh -c "'$STEPSTORE' info --json '$store' | python3 -m json.tool >/dev/null"
	check "$label: mount" mount_store "$store" "$mnt"
	check "$label: mounted source/ is diff -r clean" diff -r "$src" "$mnt/source"
	check "$label: stat sizes, modes and mtimes match" \
		python3 - "$src" "$mnt/source" <<'PY'
import os, sys
a, b = sys.argv[1], sys.argv[2]
for dirpath, dirnames, filenames in os.walk(a):
    for name in filenames:
        pa = os.path.join(dirpath, name)
        pb = os.path.join(b, os.path.relpath(pa, a))
        sa, sb = os.lstat(pa), os.lstat(pb)
        if (sa.st_size, sa.st_mode, sa.st_mtime_ns) != (sb.st_size, sb.st_mode, sb.st_mtime_ns):
            sys.exit("%s: %r != %r" % (pb, (sa.st_size, oct(sa.st_mode), sa.st_mtime_ns), (sb.st_size, oct(sb.st_mode), sb.st_mtime_ns)))
PY
	check "$label: 1000 random-offset reads match" python3 "$ROOT/tests/integration/compare.py" randread "$src" "$mnt/source" 1000 7
	check "$label: manager_meta.json is valid JSON listing steps" \
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); s=d["steps"]; assert s and all({"index","name","signature","batches","rows"} <= set(x) for x in s), s' "$mnt/manager_meta.json"
	check_fails "$label: writing a file fails" sh -c "echo x > '$mnt/source/new-file'"
	local err
	err=$(touch "$mnt/manager_meta.json" 2>&1 || true)
	case "$err" in
	*"Read-only file system"*) ok "$label: writes fail with EROFS" ;;
	*) not_ok "$label: writes fail with EROFS (got: $err)" ;;
	esac
	check "$label: unmount" unmount "$mnt"

	# one changed byte in the middle of the largest shard
	cp -a "$store" "$TMP/$label.damaged"
	local big
	big=$(ls -S "$TMP/$label.damaged"/shards/[0-9][0-9][0-9][0-9][0-9].zst | head -1)
	python3 - "$big" <<'PY'
import os, sys
p = sys.argv[1]
size = os.path.getsize(p)
with open(p, "r+b") as f:
    f.seek(size // 3)
    b = f.read(1)
    f.seek(size // 3)
    f.write(bytes([b[0] ^ 0x40]))
PY
	"$STEPSTORE" verify "$TMP/$label.damaged" >"$TMP/verify.out" 2>&1
	local status=$?
	if [ $status -eq 1 ] && grep -q "$(basename "$big")" "$TMP/verify.out" && grep -q "frame" "$TMP/verify.out"; then
		ok "$label: verify exits 1 naming the damaged shard and frame"
	else
		not_ok "$label: verify exits 1 naming the damaged shard and frame (exit $status)"
		sed 's/^/#   /' "$TMP/verify.out" | head
	fi
}

check_cache sample "$ROOT/tests/data/distilabel-pr766"

$GEN --layout current --out "$TMP/gen" --seed 11 --steps 4 --batches 120 --batch-size 20 >/dev/null
# a symlink and an empty folder, which real caches may hold too
ln -s pipeline.yaml "$(dirname "$(find "$TMP/gen" -name pipeline.yaml | head -1)")/pipeline-link.yaml"
mkdir -p "$TMP/gen/empty-folder"
check_cache generated "$TMP/gen"

finish
