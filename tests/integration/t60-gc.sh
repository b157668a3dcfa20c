#!/usr/bin/env bash
# `stepstore gc`: the age and size policies, --dry-run, leftovers of an
# interrupted gc, and everything gc must never touch: a store held open,
# a mounted store, a unit holding a mount point, hidden temporaries, other
# folders, and whatever a symbolic link in ROOT points to.
. "$(dirname "$0")/lib.sh"

HOLDERS=()
gc_cleanup() {
	local pid
	for pid in "${HOLDERS[@]}"; do kill "$pid" 2>/dev/null; done
	cleanup
}
trap gc_cleanup EXIT

SRC=$TMP/src
mkdir -p "$SRC/sub"
for i in 1 2 3 4 5; do
	head -c 20000 /dev/urandom >"$SRC/file$i.bin"
	seq 1 2000 >"$SRC/sub/rows$i.txt"
done

# make_store ROOT/NAME AGE: a packed store whose last use is AGE ago.
make_store() {
	"$STEPSTORE" pack --quiet "$SRC" "$1" >/dev/null || return 1
	age "$1" "$2" store
}
# make_cache ROOT/NAME AGE SHAPE: an unpacked cache of one of the three shapes.
make_cache() {
	local dir=$1
	case $3 in
	pipelines) mkdir -p "$dir/pipelines/p/abc/executions/e1"; echo '{}' >"$dir/pipelines/p/abc/executions/e1/batch_manager.json" ;;
	steps_data) mkdir -p "$dir/steps_data/step_0"; echo '{"rows": []}' >"$dir/steps_data/step_0/batch_0.json" ;;
	execution) mkdir -p "$dir/data"; echo '{}' >"$dir/batch_manager.json"; echo '{}' >"$dir/data/x.json" ;;
	esac
	head -c 30000 /dev/urandom >"$dir/blob.bin"
	age "$dir" "$2" cache
}
# age PATH AGE KIND: fake the last use (store: store.json and the folder;
# cache: every file).
age() {
	if [ "$3" = store ]; then
		touch -d "$2 ago" "$1/store.json" "$1"
	else
		# -xdev: not into a mount inside (its root refuses, harmlessly)
		find "$1" -xdev -exec touch -h -d "$2 ago" {} + 2>/dev/null || true
	fi
}
size_of() { du -sB1 "$1" | cut -f1; }
# line_for OUTPUT PATH: the report line of PATH.
line_for() { grep -F "  $2" <<<"$1" | head -1; }
expect_action() {
	local desc=$1 output=$2 path=$3 action=$4 line
	line=$(line_for "$output" "$path")
	case "$line" in
	"$action "*) ok "$desc" ;;
	*) not_ok "$desc"; echo "#   expected '$action' for $path, got: ${line:-no line}"; sed 's/^/#   | /' <<<"$output" ;;
	esac
}
exists() { [ -e "$1" ]; }
absent() { [ ! -e "$1" ]; }

# ---- the age policy, and --dry-run ---------------------------------------
R=$TMP/age
mkdir -p "$R"
make_store "$R/old.stepfs" "40 days"
make_store "$R/new.stepfs" "10 days"
make_cache "$R/old-cache" "40 days" pipelines
make_cache "$R/old-steps" "45 days" steps_data
make_cache "$R/new-exec" "2 days" execution
mkdir -p "$R/not-a-unit/x"; touch -d "90 days ago" "$R/not-a-unit/x" "$R/not-a-unit"
echo hello >"$R/plain-file"; touch -d "90 days ago" "$R/plain-file"
mkdir -p "$R/.half.stepstore-tmp-1"; touch -d "90 days ago" "$R/.half.stepstore-tmp-1"

out=$("$STEPSTORE" gc "$R" --max-age 30d --dry-run 2>&1); rc=$?
check "dry run exits 0" test $rc -eq 0
expect_action "dry run: old store would go" "$out" "$R/old.stepfs" "would remove"
expect_action "dry run: old pipelines cache would go" "$out" "$R/old-cache" "would remove"
expect_action "dry run: old steps_data cache would go" "$out" "$R/old-steps" "would remove"
expect_action "dry run: new store kept" "$out" "$R/new.stepfs" "keep"
expect_action "dry run: new execution cache kept" "$out" "$R/new-exec" "keep"
check "dry run: kinds reported" grep -qE "store .*old\.stepfs" <<<"$out"
check "dry run: the space freed is reported" grep -qE "^would remove 3, freeing [0-9.]+ KiB" <<<"$out"
check "dry run removes nothing" exists "$R/old.stepfs/store.json" -a -e "$R/old-cache" -a -e "$R/old-steps"
check "dry run leaves no temporary behind" sh -c "! ls -A '$R' | grep -q stepstore-gc"
check "a second dry run sees the same (gc does not touch atime)" \
	grep -qE "^would remove +store .*old\.stepfs" <<<"$("$STEPSTORE" gc "$R" --max-age 30d --dry-run 2>&1)"

out=$("$STEPSTORE" gc "$R" --max-age 30d 2>&1); rc=$?
check "gc --max-age exits 0" test $rc -eq 0
expect_action "old store removed" "$out" "$R/old.stepfs" "removed"
check "old store gone" absent "$R/old.stepfs"
check "old caches gone" absent "$R/old-cache" -a ! -e "$R/old-steps"
check "new store kept" "$STEPSTORE" verify "$R/new.stepfs"
check "new cache kept" exists "$R/new-exec/batch_manager.json"
check "a folder that is neither store nor cache is untouched" exists "$R/not-a-unit/x"
check "a plain file is untouched" exists "$R/plain-file"
check "a pack temporary is untouched" exists "$R/.half.stepstore-tmp-1"
check "nothing of gc is left behind" sh -c "! ls -A '$R' | grep -q stepstore-gc"

# ---- the size policy: least recently used first ---------------------------
R=$TMP/size
mkdir -p "$R"
make_store "$R/a.stepfs" "3 days"
make_cache "$R/b-cache" "2 days" execution
make_store "$R/c.stepfs" "1 day"
limit=$(( $(size_of "$R/b-cache") + $(size_of "$R/c.stepfs") ))
out=$("$STEPSTORE" gc "$R" --max-size "$limit" 2>&1)
expect_action "size: the least recently used goes" "$out" "$R/a.stepfs" "removed"
expect_action "size: the rest fits and stays" "$out" "$R/b-cache" "keep"
check "size: a gone, b and c kept" sh -c "[ ! -e '$R/a.stepfs' ] && [ -e '$R/b-cache' ] && [ -e '$R/c.stepfs' ]"
out=$("$STEPSTORE" gc "$R" --max-size "$limit" 2>&1)
check "size: under the limit nothing more goes" grep -qE "^removed 0," <<<"$out"
out=$("$STEPSTORE" gc "$R" --max-size 1K 2>&1)
check "size: a tiny limit removes every unit" sh -c "[ ! -e '$R/b-cache' ] && [ ! -e '$R/c.stepfs' ]"

# ---- both policies --------------------------------------------------------
R=$TMP/both
mkdir -p "$R"
make_store "$R/ancient.stepfs" "60 days"
make_store "$R/older.stepfs" "5 days"
make_store "$R/recent.stepfs" "1 day"
limit=$(( $(size_of "$R/recent.stepfs") + 1024 ))
out=$("$STEPSTORE" gc "$R" --max-age 30d --max-size "$limit" 2>&1)
check "both: the old one goes by age" grep -qE "^removed +store .*ancient.stepfs.*unused for longer than 30d" <<<"$out"
check "both: the next one goes by size" grep -qE "^removed +store .*older.stepfs.*over the .* limit" <<<"$out"
check "both: the recent one stays" exists "$R/recent.stepfs/store.json"

# ---- the configuration supplies the limits --------------------------------
R=$TMP/configured
mkdir -p "$R"
make_store "$R/old.stepfs" "20 days"
printf 'gc:\n  max_age: 2w\n' >"$TMP/gc.yaml"
out=$("$STEPSTORE" gc "$R" --config "$TMP/gc.yaml" --dry-run 2>&1)
expect_action "gc.max_age from --config applies" "$out" "$R/old.stepfs" "would remove"
out=$("$STEPSTORE" gc "$R" --config "$TMP/gc.yaml" --max-age 4w --dry-run 2>&1)
expect_action "--max-age overrides the file" "$out" "$R/old.stepfs" "keep"
printf 'gc:\n  max_age: 2y\n' >"$TMP/bad.yaml"
out=$("$STEPSTORE" gc "$R" --config "$TMP/bad.yaml" 2>&1); rc=$?
check "a bad configuration file: exit 2, file, line and column named" \
	sh -c "[ $rc -eq 2 ] && grep -q \"^stepstore: '$TMP/bad.yaml': line 2, column 12: gc.max_age: '2y' has an unknown suffix\" <<'EOF'
$out
EOF"
check "the store survives a refused run" exists "$R/old.stepfs/store.json"

# ---- never: a store held open ----------------------------------------------
R=$TMP/inuse
mkdir -p "$R"
make_store "$R/held.stepfs" "40 days"
flock --no-fork -s "$R/held.stepfs/store.json" sleep 60 &
HOLDERS+=($!)
for i in $(seq 1 50); do
	if ! flock -x -n "$R/held.stepfs/store.json" true; then break; fi
	sleep 0.1
done
out=$("$STEPSTORE" gc "$R" --max-age 30d 2>&1); rc=$?
expect_action "a store held open is reported in use" "$out" "$R/held.stepfs" "in use"
check "a store held open is kept" "$STEPSTORE" verify "$R/held.stepfs"
check "a store in use is not an error" test $rc -eq 0
kill "${HOLDERS[@]}" 2>/dev/null; wait "${HOLDERS[@]}" 2>/dev/null; HOLDERS=()
age "$R/held.stepfs" "40 days" store # verify above read it: that counts as a use
out=$("$STEPSTORE" gc "$R" --max-age 30d 2>&1)
check "once released it goes" absent "$R/held.stepfs"

# ---- never: a mounted store, or a unit holding a mount point ---------------
R=$TMP/mounted
mkdir -p "$R"
make_store "$R/mounted.stepfs" "40 days"
make_store "$TMP/elsewhere.stepfs" "1 day"
make_cache "$R/holder-cache" "40 days" execution
if mount_store "$R/mounted.stepfs" "$TMP/mnt1" && mount_store "$TMP/elsewhere.stepfs" "$R/holder-cache/mnt"; then
	# the mount read store.json, and mount_store wrote holder-cache/mnt.log
	age "$R/mounted.stepfs" "40 days" store
	age "$R/holder-cache" "40 days" cache
	out=$("$STEPSTORE" gc "$R" --max-age 30d 2>&1)
	expect_action "a mounted store is reported mounted" "$out" "$R/mounted.stepfs" "mounted"
	expect_action "a unit holding a mount point is reported mounted" "$out" "$R/holder-cache" "mounted"
	check "the mounted store is kept and still readable" ls "$TMP/mnt1/source/file1.bin"
	check "the mount inside the cache is intact" cmp "$SRC/file1.bin" "$R/holder-cache/mnt/source/file1.bin"
	out=$("$STEPSTORE" gc "$R" --max-size 1K 2>&1)
	check "the size policy skips mounted units too" sh -c "[ -e '$R/mounted.stepfs/store.json' ] && [ -e '$R/holder-cache/blob.bin' ]"
	check "unmount the store" unmount "$TMP/mnt1"
	check "unmount the cache's mount" unmount "$R/holder-cache/mnt"
	out=$("$STEPSTORE" gc "$R" --max-age 30d 2>&1)
	check "unmounted, both go" sh -c "[ ! -e '$R/mounted.stepfs' ] && [ ! -e '$R/holder-cache' ]"
	check "the store that was mounted inside is untouched" "$STEPSTORE" verify "$TMP/elsewhere.stepfs"
else
	not_ok "mount for the mounted-unit tests"
fi

# ---- never: anything behind a symbolic link ---------------------------------
R=$TMP/links
OUT=$TMP/outside
mkdir -p "$R" "$OUT"
make_store "$OUT/precious.stepfs" "90 days"
make_cache "$OUT/precious-cache" "90 days" pipelines
echo keep >"$OUT/precious.txt"
ln -s "$OUT/precious.stepfs" "$R/link-to-store"
ln -s "$OUT/precious-cache" "$R/link-to-cache"
make_cache "$R/cache-with-links" "90 days" execution
ln -s "$OUT/precious.txt" "$R/cache-with-links/file-link"
ln -s "$OUT" "$R/cache-with-links/dir-link"
touch -h -d "90 days ago" "$R/cache-with-links/file-link" "$R/cache-with-links/dir-link"
out=$("$STEPSTORE" gc "$R" --max-age 30d 2>&1)
check "symlinked children are not units" sh -c "! grep -q link-to <<'EOF'
$out
EOF"
check "symlinks in ROOT are left alone" test -L "$R/link-to-store" -a -L "$R/link-to-cache"
check "a cache with symlinks out of ROOT is removed" absent "$R/cache-with-links"
check "what the symlinks pointed to is untouched" sh -c "[ -e '$OUT/precious.txt' ] && [ -e '$OUT/precious-cache/blob.bin' ]"
check "the store behind a symlink is untouched" "$STEPSTORE" verify "$OUT/precious.stepfs"

# ---- leftovers of an interrupted gc ------------------------------------------
R=$TMP/leftover
mkdir -p "$R"
sleep 0 & dead=$!; wait $dead
mkdir -p "$R/.gone.stepfs.stepstore-gc-$dead/shards"
echo x >"$R/.gone.stepfs.stepstore-gc-$dead/shards/00000.zst"
mkdir -p "$R/.alive.stepstore-gc-$$"
out=$("$STEPSTORE" gc "$R" --dry-run 2>&1)
check "dry run lists a leftover" grep -qE "^would remove +leftover" <<<"$out"
check "dry run keeps the leftover" exists "$R/.gone.stepfs.stepstore-gc-$dead"
out=$("$STEPSTORE" gc "$R" 2>&1)
check "a leftover of a dead gc is removed, even with no limit" absent "$R/.gone.stepfs.stepstore-gc-$dead"
check "a folder of a live process is left alone" exists "$R/.alive.stepstore-gc-$$"

# ---- usage -------------------------------------------------------------------
"$STEPSTORE" gc "$R" --max-age 3y >"$TMP/err" 2>&1; rc=$?
check "a bad duration: exit 2 naming the option" sh -c "[ $rc -eq 2 ] && grep -q \"^stepstore: gc: --max-age: '3y' has an unknown suffix\" '$TMP/err'"
"$STEPSTORE" gc "$R" --max-size 10X >"$TMP/err" 2>&1; rc=$?
check "a bad size: exit 2" sh -c "[ $rc -eq 2 ] && grep -q -- \"--max-size: '10X'\" '$TMP/err'"
"$STEPSTORE" gc >"$TMP/err" 2>&1; rc=$?
check "no ROOT: exit 2" test $rc -eq 2
"$STEPSTORE" gc "$TMP/no-such-root" --max-age 1d >"$TMP/err" 2>&1; rc=$?
check "a missing ROOT: exit 4 naming it" sh -c "[ $rc -eq 4 ] && grep -q \"'$TMP/no-such-root': no such folder\" '$TMP/err'"

# ---- stepstore config ----------------------------------------------------------
mkdir -p "$TMP/xdg/stepfs"
printf 'mount:\n  cache_size: 128M\n' >"$TMP/xdg/stepfs/config.yaml"
out=$(XDG_CONFIG_HOME=$TMP/xdg "$STEPSTORE" config 2>&1)
check "config: the user file is found and named" grep -qF "# configuration file: $TMP/xdg/stepfs/config.yaml" <<<"$out"
check "config: value and origin shown" grep -qE "^  cache_size: 128M +# $TMP/xdg/stepfs/config.yaml:2:15$" <<<"$out"
check "config: defaults marked" grep -qE "^  level: 3 +# default$" <<<"$out"
out=$(XDG_CONFIG_HOME=$TMP/xdg "$STEPSTORE" config --config "$TMP/gc.yaml" 2>&1)
check "config: --config replaces the user file" sh -c "grep -qE '^  max_age: 2w ' <<'EOF'
$out
EOF
! grep -q 128M <<'EOF'
$out
EOF"

finish
