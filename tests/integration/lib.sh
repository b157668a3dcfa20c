# Shared by the integration tests: TAP helpers, temporary folders, and
# mounts that are always unmounted (trap on EXIT), even when a test fails.
# Each test sources this file, then calls `ok`/`not_ok`/`check` and `finish`.

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
STEPSTORE=$BUILD/stepstore
STEPFS=$BUILD/stepfs
GEN="python3 $ROOT/scripts/gen_cache.py"
TMP=$(mktemp -d /tmp/stepfs-test.XXXXXX)
MOUNTS=()
MOUNT_PIDS=()
test_count=0
test_failed=0

for tool in "$STEPSTORE" "$STEPFS"; do
	if [ ! -x "$tool" ]; then
		echo "Bail out! $tool is not built (run make first)"
		exit 1
	fi
done

ok() { test_count=$((test_count + 1)); echo "ok $test_count - $*"; }
not_ok() {
	test_count=$((test_count + 1))
	test_failed=$((test_failed + 1))
	echo "not ok $test_count - $*"
}
# check DESCRIPTION COMMAND...: one test point, output shown on failure.
check() {
	local desc=$1
	shift
	if "$@" >"$TMP/check.out" 2>&1; then
		ok "$desc"
	else
		not_ok "$desc"
		sed 's/^/#   /' "$TMP/check.out" | head -30
	fi
}
# check_fails DESCRIPTION COMMAND...: passes when the command fails.
check_fails() {
	local desc=$1
	shift
	if "$@" >"$TMP/check.out" 2>&1; then
		not_ok "$desc (command succeeded)"
	else
		ok "$desc"
	fi
}

# mount_store STORE MOUNTPOINT [stepfs options]: runs stepfs in the
# foreground in the background, so its stderr (and any sanitizer report)
# is kept in MOUNTPOINT.log; waits until the mount is up.
mount_store() {
	local store=$1 mnt=$2
	shift 2
	mkdir -p "$mnt"
	"$STEPFS" "$store" "$mnt" -f "$@" 2>"$mnt.log" &
	local pid=$!
	MOUNTS+=("$mnt")
	MOUNT_PIDS+=("$pid")
	local i
	for i in $(seq 1 200); do
		if mountpoint -q "$mnt"; then return 0; fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "# stepfs exited before mounting:"; sed 's/^/#   /' "$mnt.log"
			return 1
		fi
		sleep 0.05
	done
	echo "# stepfs did not mount within 10 s"
	return 1
}

# unmount MOUNTPOINT: unmounts, waits for the daemon, fails if it crashed
# or printed a sanitizer report.
unmount() {
	local mnt=$1 i pid="" status=0
	for i in "${!MOUNTS[@]}"; do
		if [ "${MOUNTS[$i]}" = "$mnt" ]; then pid=${MOUNT_PIDS[$i]}; unset "MOUNTS[$i]" "MOUNT_PIDS[$i]"; fi
	done
	fusermount3 -u "$mnt" || status=1
	if [ -n "$pid" ]; then wait "$pid" || status=1; fi
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$mnt.log" 2>/dev/null; then
		echo "# sanitizer report from stepfs:"; sed 's/^/#   /' "$mnt.log" | head -40
		status=1
	fi
	return $status
}

cleanup() {
	local m
	for m in "${MOUNTS[@]}"; do
		fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

finish() {
	echo "1..$test_count"
	[ "$test_failed" -eq 0 ]
}
