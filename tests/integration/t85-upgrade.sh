#!/usr/bin/env bash
# stepstore upgrade: a copy of the golden 1.0 store becomes a 2.0 store
# that verifies, unpacks to the same bytes and times as the 1.0 store and
# mounts with the same tree; a 2.0 store is left alone; a damaged or
# in-use store is left unchanged.
. "$(dirname "$0")/lib.sh"

golden=$ROOT/tests/golden/sample-v1.0.stepfs
TREECMP="python3 $ROOT/tests/integration/treecmp.py"
cp -a "$golden" "$TMP/up.stepfs"

check "dry run says what it would do" sh -c "'$STEPSTORE' upgrade '$TMP/up.stepfs' --dry-run | grep -q 'would upgrade format 1.0 to 2.0'"
check "dry run changes nothing" diff -r "$golden" "$TMP/up.stepfs"
check "upgrade" "$STEPSTORE" upgrade "$TMP/up.stepfs"
check "the store is now format 2.0" \
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["format_version"]==[2,0] and d["upgraded"]["from"]==[1,0]' "$TMP/up.stepfs/store.json"
check "no temporary folder is left" sh -c "! ls -a '$TMP' | grep -q stepstore-tmp"
check "the shards are the same bytes" diff -r "$golden/shards" "$TMP/up.stepfs/shards"
check "upgraded store verifies" "$STEPSTORE" verify "$TMP/up.stepfs"
check "unpack of 1.0" "$STEPSTORE" unpack "$golden" "$TMP/unpacked-1"
check "unpack of the upgraded store" "$STEPSTORE" unpack "$TMP/up.stepfs" "$TMP/unpacked-2"
check "both unpack to the same bytes, modes and times" $TREECMP same "$TMP/unpacked-1" "$TMP/unpacked-2"
check "mount 1.0" mount_store "$golden" "$TMP/m1"
check "mount upgraded" mount_store "$TMP/up.stepfs" "$TMP/m2"
check "both mounts show the same tree" $TREECMP same "$TMP/m1" "$TMP/m2"
check "unmount 1.0" unmount "$TMP/m1"
check "unmount upgraded" unmount "$TMP/m2"
check "a 2.0 store: says so and exits 0" sh -c "'$STEPSTORE' upgrade '$TMP/up.stepfs' | grep -q 'already format 2.0'"

# a store in use is left alone
cp -a "$golden" "$TMP/busy.stepfs"
check "mount a 1.0 store" mount_store "$TMP/busy.stepfs" "$TMP/m3"
"$STEPSTORE" upgrade "$TMP/busy.stepfs" >"$TMP/out.txt" 2>&1
status=$?
if [ $status -eq 4 ] && grep -q "in use" "$TMP/out.txt" && diff -r "$golden" "$TMP/busy.stepfs" >/dev/null; then
	ok "a mounted store is refused and unchanged"
else
	not_ok "a mounted store is refused and unchanged (exit $status)"; sed 's/^/#   /' "$TMP/out.txt"
fi
check "unmount it" unmount "$TMP/m3"

# a damaged index: refused before anything changes
cp -a "$golden" "$TMP/bad.stepfs"
python3 -c '
import sys
p = sys.argv[1] + "/index/00001.json"
b = bytearray(open(p, "rb").read()); b[40] ^= 0x21; open(p, "wb").write(b)' "$TMP/bad.stepfs"
cp -a "$TMP/bad.stepfs" "$TMP/bad-copy.stepfs"
"$STEPSTORE" upgrade "$TMP/bad.stepfs" >"$TMP/out.txt" 2>&1
status=$?
if [ $status -eq 1 ] && grep -q "00001.json" "$TMP/out.txt" && diff -r "$TMP/bad-copy.stepfs" "$TMP/bad.stepfs" >/dev/null &&
	! ls -a "$TMP" | grep -q stepstore-tmp; then
	ok "a damaged index is refused naming it; nothing changed"
else
	not_ok "a damaged index is refused naming it; nothing changed (exit $status)"; sed 's/^/#   /' "$TMP/out.txt"
fi

# a store from the future is not upgraded
cp -a "$TMP/up.stepfs" "$TMP/future.stepfs"
python3 -c '
import json, sys
p = sys.argv[1] + "/store.json"
d = json.load(open(p)); d["format_version"] = [3, 0]; json.dump(d, open(p, "w"))' "$TMP/future.stepfs"
"$STEPSTORE" upgrade "$TMP/future.stepfs" >"$TMP/out.txt" 2>&1
status=$?
if [ $status -eq 3 ] && grep -q "3\.0" "$TMP/out.txt" && grep -q "1\.x to 2\.0" "$TMP/out.txt"; then
	ok "format 3.0 is not upgraded, naming both versions"
else
	not_ok "format 3.0 is not upgraded, naming both versions (exit $status)"; sed 's/^/#   /' "$TMP/out.txt"
fi
finish
