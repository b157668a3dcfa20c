#!/usr/bin/env bash
# -o metadata_size: past the budget the least recently used index that
# nothing uses is dropped and loaded again when needed, with the same
# inode numbers, while every file keeps reading right; a folder the kernel
# still knows is served again by inode number after its index was dropped.
. "$(dirname "$0")/lib.sh"

src=$TMP/cache
store=$TMP/big.stepfs
mnt=$TMP/mnt
check "generate a cache with three folders of 4,300 batch files" \
	$GEN --layout current --out "$src" --steps 3 --batches 4300 --batch-size 1 --text-bytes 8 \
	--embedding-dim 1 --seed 7
check "pack it" "$STEPSTORE" pack --quiet "$src" "$store"
stat_of() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$mnt/.stepfs/stats.json" "$1"; }

check "mount with a 1 MiB metadata budget" mount_store "$store" "$mnt" -o metadata_size=1
mapfile -t folders < <(cd "$mnt/source" && find . -path '*/steps_data/*' -prune -type d | sort)
check "three steps_data folders (got ${#folders[@]})" test "${#folders[@]}" -eq 3
# the high half of an inode number names the index that made the node: put
# first a folder whose files come from an index of its own
own=""
for i in 0 1 2; do
	f=$mnt/source/${folders[$i]#./}
	if [ $(($(stat -c %i "$f") >> 32)) -ne $(($(stat -c %i "$f/batch_5.json") >> 32)) ]; then own=$i; break; fi
done
check "a folder has an index of its own (folder $own)" test -n "$own"
folders=("${folders[@]:${own:-0}:1}" "${folders[@]:0:${own:-0}}" "${folders[@]:$((${own:-0} + 1))}")
first=$mnt/source/${folders[0]#./}
ino=$(stat -c %i "$first/batch_5.json")
check "the budget is in the counters" test "$(stat_of metadata_budget_bytes)" -eq $((1 << 20))
ls -i "$first" >"$TMP/first.ls"

# every file of the other two folders: the first one's index goes
for f in "${folders[@]:1}"; do cat "$mnt/source/${f#./}"/* >/dev/null; done
dropped=$(stat_of indexes_dropped)
loads=$(stat_of indexes_loaded)
check "indexes were dropped over the budget (dropped: $dropped)" test "$dropped" -gt 0
check "at rest only the most recently used index stays, with those above it ($(stat_of indexes_resident) loaded)" \
	test "$(stat_of indexes_resident)" -le 3

# the kernel still knows the first folder's files: opening them asks the
# daemon by inode number, which loads the dropped index again
check "every file of the first folder reads right by its known inode" \
	sh -c "cd '$first' && for f in *; do cmp -s \"\$f\" '$src/${folders[0]#./}'/\"\$f\" || { echo \"# \$f differs\"; exit 1; }; done"
check "which loaded its index again ($loads -> $(stat_of indexes_loaded))" test "$(stat_of indexes_loaded)" -gt "$loads"
check "the same inode numbers after the reload" sh -c "ls -i '$first' | cmp -s - '$TMP/first.ls'"

check "a walk finds every file" \
	sh -c "test \"\$(find '$mnt/source' -type f | wc -l)\" -eq \"\$(find '$src' -type f | wc -l)\""
check "names, sizes, modes, times and bytes match the cache" python3 "$ROOT/tests/integration/treecmp.py" same "$src" "$mnt/source"
check "the step views read whole" sh -c "cat '$mnt'/step_*/rows.jsonl | wc -l | grep -qx '$((3 * 4300))'"
check "no error was logged" test ! -s "$mnt.log"
check "unmount" unmount "$mnt"

check "mount again with the default budget" mount_store "$store" "$mnt"
check "inode numbers are the same from one mount to the next" test "$(stat -c %i "$first/batch_5.json")" = "$ino"
check "nothing dropped within 16 MiB (dropped: $(stat_of indexes_dropped))" \
	sh -c "find '$mnt' -type f >/dev/null && test \"\$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[\"indexes_dropped\"])' '$mnt/.stepfs/stats.json')\" -eq 0"
check "unmount" unmount "$mnt"
finish
