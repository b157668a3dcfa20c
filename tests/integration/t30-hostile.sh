#!/usr/bin/env bash
# The hostile corpus (tests/hostile/cases.txt): bad or odd inputs, each
# built at test time by tests/hostile/make_case.py, each with its expected
# outcome. For every input: no crash (exit below 128, no sanitizer report)
# and nothing written outside the target folder. Bad inputs fail with the
# expected exit code and a message naming the file and the byte offset (or
# line), leaving no store and no temporary folder; legal inputs verify and
# come back byte for byte through unpack and through the mount, whose views
# stay inside it. Links are stored as links: nothing outside the cache is
# ever read into the store.
. "$(dirname "$0")/lib.sh"

# the interpreter itself, not a version-manager shim that costs a second a call
PY=$(python3 -c 'import sys; print(sys.executable)')

HOSTILE=$ROOT/tests/hostile
MAKE="$PY $HOSTILE/make_case.py"
TREE="$PY $ROOT/tests/integration/treecmp.py"
MARK=OUTSIDE-THE-CACHE-7f3a9c
SANITIZER_RE='ERROR: (Address|Leak)Sanitizer|runtime error:'
# the unprivileged runs need to reach their folders
chmod 755 "$TMP"

# Known failures would be listed here, case name -> reason, and their
# test points marked TODO (prove does not count them). None at present.
declare -A KNOWN_BUGS=()
TODO_REASON=
not_ok() {
	test_count=$((test_count + 1))
	if [ -n "$TODO_REASON" ]; then
		echo "not ok $test_count - $* # TODO $TODO_REASON"
	else
		test_failed=$((test_failed + 1))
		echo "not ok $test_count - $*"
	fi
}

# as_user RUNAS COMMAND...: run as root, or as nobody without privileges.
as_user() {
	local who=$1
	shift
	if [ "$who" = nobody ]; then
		setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
	else
		"$@"
	fi
}

# error_names WHERE FILE: the first message names the file (its base name,
# as the path may hold odd bytes) and, for WHERE, the byte or line.
error_names() {
	local where=$1 file=$2 first
	first=$(head -1 "$file")
	case "$first" in
	"stepstore: '"*"'"*) ;;
	*) return 1 ;;
	esac
	case $where in
	byte) grep -qE "^stepstore: '[^']+': byte [0-9]+: " <<<"$first" ;;
	line) grep -qE "^stepstore: '[^']+': line [0-9]+, column [0-9]+: " <<<"$first" ;;
	*) return 0 ;;
	esac
}

run_case() {
	local name=$1 expect=$2 where=$3 runas=$4 desc=$5
	local dir=$TMP/$name src=$TMP/$name/src out=$TMP/$name/out log=$TMP/logs/$name
	local store=$out/store status leftovers
	mkdir -p "$dir" "$out" "$log"
	if ! $MAKE "$name" "$src" "$dir/outside" >"$log/make" 2>&1; then
		not_ok "$name: build the input"
		sed 's/^/#   /' "$log/make" | head
		return
	fi
	if [ "$runas" = nobody ]; then
		if ! command -v setpriv >/dev/null || [ "$(id -u)" -ne 0 ] || ! id nobody >/dev/null 2>&1; then
			ok "$name: $desc # SKIP needs root, setpriv and a nobody user to drop privileges"
			return
		fi
		chmod 755 "$dir"
		chmod 777 "$out"
	fi
	$TREE snapshot "$TMP" "$out" "$TMP/logs" "$TMP/check.out" >"$log/before"

	# from inside the case folder, so a stray relative write would show
	(cd "$dir" && as_user "$runas" timeout 300 "$STEPSTORE" pack --quiet "$src" "$store") >"$log/pack.out" 2>"$log/pack.err"
	status=$?
	if [ $status -ge 124 ] || grep -qE "$SANITIZER_RE" "$log/pack.err"; then
		not_ok "$name: pack ends without crash or hang (exit $status)"
		sed 's/^/#   /' "$log/pack.err" | head -20
		return
	fi
	ok "$name: pack ends without crash or hang (exit $status)"
	leftovers=$(find "$out" -maxdepth 1 -name '.*stepstore-tmp*' | wc -l)

	if [ "$expect" != roundtrip ]; then
		if [ "$status" -eq "$expect" ] && [ ! -e "$store" ] && [ "$leftovers" -eq 0 ] &&
			error_names "$where" "$log/pack.err"; then
			ok "$name: refused (exit $status), no store, no temporary folder: $(head -1 "$log/pack.err" | sed "s|$TMP/||" | cut -c1-160)"
		else
			not_ok "$name: refused with exit $expect naming the file and $where, no store, no temporary folder (exit $status, store $([ -e "$store" ] && echo left || echo absent), $leftovers temporary folders)"
			sed 's/^/#   /' "$log/pack.err" | head -5
		fi
	else
		if [ $status -ne 0 ]; then
			not_ok "$name: $desc: pack succeeds (exit $status)"
			sed 's/^/#   /' "$log/pack.err" | head -5
		else
			check "$name: verify" "$STEPSTORE" verify "$store"
			check "$name: nothing from outside the cache is in the store" $TREE nomark "$store" "$MARK" "root:x:0:0"
			(cd "$dir" && timeout 300 "$STEPSTORE" unpack "$store" "$out/unpacked") >"$log/unpack.out" 2>&1
			status=$?
			if [ $status -eq 0 ] && ! grep -qE "$SANITIZER_RE" "$log/unpack.out"; then
				check "$name: unpack is byte-exact (names, links, modes, times)" $TREE same "$src" "$out/unpacked"
			else
				not_ok "$name: unpack (exit $status)"
				sed 's/^/#   /' "$log/unpack.out" | head -5
			fi
			if mount_store "$store" "$out/mnt"; then
				check "$name: mounted source/ is byte-exact" timeout 300 $TREE same "$src" "$out/mnt/source"
				check "$name: views are sane and stay inside the mount" timeout 300 $TREE views "$out/mnt" "$src"
				check "$name: unmount" unmount "$out/mnt"
			else
				not_ok "$name: mount"
			fi
		fi
	fi
	$TREE snapshot "$TMP" "$out" "$TMP/logs" "$TMP/check.out" >"$log/after"
	if cmp -s "$log/before" "$log/after"; then
		ok "$name: nothing written outside the target folder"
	else
		not_ok "$name: nothing written outside the target folder"
		diff "$log/before" "$log/after" | head -10 | sed 's/^/#   /'
	fi
	rm -rf "$dir"
}

count=0
while read -r name expect where runas desc; do
	case $name in '' | '#'*) continue ;; esac
	count=$((count + 1))
	TODO_REASON=${KNOWN_BUGS[$name]:-}
	run_case "$name" "$expect" "$where" "$runas" "$desc"
	TODO_REASON=
done <"$HOSTILE/cases.txt"
if [ $count -ge 40 ]; then ok "the corpus holds $count inputs"; else not_ok "the corpus holds $count inputs, expected at least 40"; fi

finish
