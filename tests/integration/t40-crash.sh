#!/usr/bin/env bash
# Interrupted programs. `stepstore pack` killed with SIGKILL at random
# moments leaves the target absent or complete (and verified), never half
# written; the next pack to the same target removes the leftover temporary
# folder; the source is never changed. SIGINT and SIGTERM stop a pack with
# exit code 130 and nothing left behind. The stepfs daemon unmounts cleanly
# on SIGTERM and SIGINT, and on `fusermount3 -u` while readers are busy.
. "$(dirname "$0")/lib.sh"

# the interpreter itself, not a version-manager shim that costs a second a call
PY=$($(command -v python3) -c 'import sys; print(sys.executable)')
KILLS=20
READERS=4
SANITIZER_RE='ERROR: (Address|Leak)Sanitizer|runtime error:'
PIDS=()
crash_cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	cleanup
}
trap crash_cleanup EXIT

# listing DIR: every entry's path, type, mode, mtime and content hash.
listing() {
	$PY - "$1" <<'PY'
import hashlib, os, stat, sys
top = os.fsencode(sys.argv[1])
for dirpath, dirnames, filenames in os.walk(top):
    dirnames.sort()
    for name in sorted(dirnames + filenames):
        p = os.path.join(dirpath, name)
        st = os.lstat(p)
        digest = ""
        if stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            digest = os.readlink(p).hex()
        print(repr(os.path.relpath(p, top)), oct(st.st_mode), st.st_mtime_ns, digest)
PY
}
temporaries() { find "$TMP" -maxdepth 1 -name '.*.stepstore-tmp-*' | wc -l; }

SRC=$TMP/src
$GEN --layout current --out "$SRC" --seed 40 --steps 3 --batches 300 --batch-size 40 >/dev/null
listing "$SRC" >"$TMP/source.before"
# A slow, single-threaded level makes the pack last long enough for kills
# to land in every phase (walk, batches, shards, indexes, rename).
PACK=("$STEPSTORE" pack --quiet --level 12 --threads 1 --frame-size 64K)
TARGET=$TMP/killed.stepfs

start=$($PY -c 'import time; print(time.monotonic())')
check "a full pack works (timing run)" "${PACK[@]}" "$SRC" "$TMP/reference.stepfs"
duration=$($PY -c "import time; print(max(0.2, time.monotonic() - $start))")
echo "# one pack takes ${duration}s here; kills land in [0, ${duration}s]"

# ---- SIGKILL at random moments ------------------------------------------
complete=0 absent=0 bad=0
for i in $(seq 1 $KILLS); do
	delay=$($PY -c "import random; r = random.Random(4000 + $i); print('%.3f' % (r.random() * $duration))")
	"${PACK[@]}" "$SRC" "$TARGET" >/dev/null 2>&1 &
	pid=$!
	sleep "$delay"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if [ ! -e "$TARGET" ]; then
		absent=$((absent + 1))
	elif timeout 120 "$STEPSTORE" verify "$TARGET" >"$TMP/verify.out" 2>&1 &&
		"$STEPSTORE" unpack "$TARGET" "$TMP/killed.unpacked" >/dev/null 2>&1 &&
		diff -r "$SRC" "$TMP/killed.unpacked" >/dev/null; then
		complete=$((complete + 1))
		rm -rf "$TARGET" "$TMP/killed.unpacked"
	else
		bad=$((bad + 1))
		echo "# kill $i after ${delay}s left a target that does not verify:"
		sed 's/^/#   /' "$TMP/verify.out" | head -5
		rm -rf "$TARGET" "$TMP/killed.unpacked"
	fi
done
if [ $bad -eq 0 ]; then
	ok "$KILLS SIGKILLs: target absent $absent times, complete and verified $complete times"
else
	not_ok "$KILLS SIGKILLs: $bad left a partial target"
fi
echo "# $(temporaries) temporary folders left by the killed runs"
check "the next pack to the same target succeeds" "${PACK[@]}" "$TMP/src" "$TARGET"
check "and removed every leftover temporary folder" test "$(temporaries)" -eq 0
check "the packed store verifies" "$STEPSTORE" verify "$TARGET"
listing "$SRC" >"$TMP/source.after"
check "the source is untouched (paths, modes, times, content)" cmp "$TMP/source.before" "$TMP/source.after"
rm -rf "$TARGET"

# ---- SIGINT and SIGTERM ---------------------------------------------------
# signal_pack SIGNAL: send SIGNAL once the pack is writing (its temporary
# folder exists); the pack must exit 130 and leave nothing behind.
signal_pack() {
	local sig=$1 attempt pid status=0 i
	for attempt in 1 2 3; do
		"${PACK[@]}" "$SRC" "$TARGET" >/dev/null 2>"$TMP/signal.err" &
		pid=$!
		for i in $(seq 1 500); do
			[ "$(temporaries)" -gt 0 ] && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.01
		done
		kill "-$sig" "$pid" 2>/dev/null
		wait "$pid"
		status=$?
		if [ $status -eq 0 ]; then
			rm -rf "$TARGET" # it finished first: try again
			continue
		fi
		break
	done
	if [ $status -eq 130 ] && [ ! -e "$TARGET" ] && [ "$(temporaries)" -eq 0 ] &&
		! grep -qE "$SANITIZER_RE" "$TMP/signal.err"; then
		ok "SIG$sig during pack: exit 130, no store, no temporary folder"
	else
		not_ok "SIG$sig during pack: exit 130, no store, no temporary folder (exit $status, store $([ -e "$TARGET" ] && echo left || echo absent), $(temporaries) temporary folders)"
		sed 's/^/#   /' "$TMP/signal.err" | head -5
	fi
	rm -rf "$TARGET"
}
signal_pack INT
signal_pack TERM
signal_pack HUP

# ---- the daemon -------------------------------------------------------------
STORE=$TMP/reference.stepfs
MNT=$TMP/mnt

# daemon_signal SIGNAL: stepfs -f in the background unmounts on SIGNAL.
# Bash starts background commands with SIGINT ignored, nohup ignores
# SIGHUP, and libfuse leaves an ignored signal alone (so that `nohup stepfs`
# survives a hangup), so the daemon is started with default dispositions.
daemon_signal() {
	local sig=$1 pid status i
	mkdir -p "$MNT"
	$PY -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$STEPFS" "$STORE" "$MNT" -f 2>"$MNT.log" &
	pid=$!
	MOUNTS+=("$MNT")
	MOUNT_PIDS+=("$pid")
	for i in $(seq 1 200); do
		mountpoint -q "$MNT" && break
		sleep 0.05
	done
	cat "$MNT/manager_meta.json" >/dev/null
	kill "-$sig" "$pid"
	timeout 60 tail --pid="$pid" -f /dev/null
	if kill -0 "$pid" 2>/dev/null; then
		not_ok "SIG$sig to stepfs: it did not exit within 60 s"
		fusermount3 -u "$MNT"
		wait "$pid"
		unset 'MOUNTS[-1]' 'MOUNT_PIDS[-1]'
		return
	fi
	wait "$pid"
	status=$?
	unset 'MOUNTS[-1]' 'MOUNT_PIDS[-1]'
	if [ $status -eq 0 ] && ! mountpoint -q "$MNT" && ! grep -qE "$SANITIZER_RE" "$MNT.log"; then
		ok "SIG$sig to stepfs: it unmounts and exits 0"
	else
		not_ok "SIG$sig to stepfs: it unmounts and exits 0 (exit $status, $(mountpoint -q "$MNT" && echo still mounted || echo unmounted))"
		sed 's/^/#   /' "$MNT.log" | head -20
		fusermount3 -u "$MNT" 2>/dev/null
	fi
}
daemon_signal TERM
daemon_signal INT
daemon_signal HUP

# fusermount3 -u while readers are busy
if mount_store "$STORE" "$MNT"; then
	pid=${MOUNT_PIDS[-1]}
	BIG=$(find "$MNT/source" -type f -size +100k | head -4)
	for r in $(seq 1 $READERS); do
		(while :; do cat $BIG "$MNT/step_0/rows.jsonl" >/dev/null 2>&1 || exit 0; done) &
		PIDS+=($!)
	done
	sleep 1
	lazy=no
	attempt=0
	for attempt in $(seq 1 50); do
		fusermount3 -u "$MNT" 2>"$TMP/umount.err" && break
		sleep 0.1
	done
	if mountpoint -q "$MNT"; then
		lazy=yes
		echo "# fusermount3 -u kept failing while the readers held files open ($(head -1 "$TMP/umount.err")): falling back to -z"
		fusermount3 -u -z "$MNT"
	fi
	# the readers stop on their own once the mount is gone
	for r in "${PIDS[@]}"; do timeout 60 tail --pid="$r" -f /dev/null; kill "$r" 2>/dev/null; wait "$r" 2>/dev/null; done
	PIDS=()
	timeout 60 tail --pid="$pid" -f /dev/null
	wait "$pid"
	status=$?
	unset 'MOUNTS[-1]' 'MOUNT_PIDS[-1]'
	if [ $status -eq 0 ] && ! mountpoint -q "$MNT" && ! grep -qE "$SANITIZER_RE" "$MNT.log"; then
		ok "fusermount3 -u with $READERS busy readers (attempts: $attempt, lazy fallback: $lazy): unmounted, stepfs exits 0"
	else
		not_ok "fusermount3 -u with $READERS busy readers (lazy fallback: $lazy): unmounted, stepfs exits 0 (exit $status)"
		sed 's/^/#   /' "$MNT.log" | head -20
	fi
else
	not_ok "mount for the busy unmount"
fi

finish
