#!/usr/bin/env bash
# Format versions: stores written by earlier versions keep mounting and
# unpacking byte for byte; a store claiming a newer major version is
# refused with a message naming both versions.
. "$(dirname "$0")/lib.sh"

golden=$ROOT/tests/golden
for store in "$golden"/*.stepfs; do
	name=$(basename "$store" .stepfs)
	sums=$golden/$name.sha256
	check "$name: verify" "$STEPSTORE" verify "$store"
	check "$name: unpack matches the recorded checksums" \
		sh -c "'$STEPSTORE' unpack '$store' '$TMP/$name' && cd '$TMP' && mv '$name' distilabel-pr766 && sha256sum --quiet -c '$sums' && rm -rf distilabel-pr766"
	check "$name: mount" mount_store "$store" "$TMP/$name.mnt"
	check "$name: mounted source/ matches the recorded checksums" \
		sh -c "cd '$TMP/$name.mnt/source/..' && mkdir -p '$TMP/links' && ln -sfn '$TMP/$name.mnt/source' '$TMP/links/distilabel-pr766' && cd '$TMP/links' && sha256sum --quiet -c '$sums'"
	check "$name: step views readable" sh -c "cat '$TMP/$name.mnt'/step_*/rows.jsonl | python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]'"
	check "$name: unmount" unmount "$TMP/$name.mnt"
done

# a store from the future
cp -a "$golden/sample-v1.0.stepfs" "$TMP/future.stepfs"
python3 - "$TMP/future.stepfs/store.json" <<'PY'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["format_version"] = [3, 0]
d["writer"] = "stepstore 9.0.0"
json.dump(d, open(p, "w"))
PY
"$STEPSTORE" verify "$TMP/future.stepfs" >"$TMP/out.txt" 2>&1
status=$?
if [ $status -eq 3 ] && grep -q "3.0" "$TMP/out.txt" && grep -q "version 1" "$TMP/out.txt"; then
	ok "a newer major version is refused by stepstore (exit 3, both versions named)"
else
	not_ok "a newer major version is refused by stepstore (exit $status)"; sed 's/^/#   /' "$TMP/out.txt"
fi
mkdir -p "$TMP/future.mnt"
if "$STEPFS" "$TMP/future.stepfs" "$TMP/future.mnt" -f 2>"$TMP/out.txt"; then
	fusermount3 -u "$TMP/future.mnt" 2>/dev/null
	not_ok "a newer major version is refused by stepfs"
elif grep -q "3.0" "$TMP/out.txt" && ! mountpoint -q "$TMP/future.mnt"; then
	ok "a newer major version is refused by stepfs, naming the version"
else
	not_ok "a newer major version is refused by stepfs, naming the version"; sed 's/^/#   /' "$TMP/out.txt"
fi
finish
