#!/usr/bin/env bash
# Many readers on one mount with a small frame cache: 8 processes mix
# random-offset, random-length reads with whole-file reads for a bounded
# time and check every byte (source/ against the packed folder, batches
# against the source batch files, every file against the content rebuilt
# from the store itself). Then the cache must be within its budget, having
# evicted, the daemon's memory must be bounded, and the unmount must be clean
# (under the sanitizer build: no leak reported).
. "$(dirname "$0")/lib.sh"

# the interpreter itself, not a version-manager shim that costs a second a call
PY=$($(command -v python3) -c 'import sys; print(sys.executable)')
READERS=8
if [ -n "${SANITIZE:-}" ]; then
	SECONDS_PER_READER=60
	RSS_LIMIT_MIB=1024 # shadow memory and quarantine
else
	SECONDS_PER_READER=10
	RSS_LIMIT_MIB=256
fi
CACHE_MIB=4

if [ -f "$ROOT/scripts/gen_cache.py" ]; then
	SRC=$TMP/src
	$GEN --layout current --out "$SRC" --seed 50 --steps 3 --batches 120 --batch-size 20 >/dev/null
else
	SRC=$ROOT/tests/data/distilabel-pr766
fi
STORE=$TMP/stress.stepfs
MNT=$TMP/mnt
# 64 KiB frames: many frames, so a 4 MiB cache must evict all the time
check "pack" "$STEPSTORE" pack --quiet --frame-size 64K "$SRC" "$STORE"
check "mount with -o cache_size=$CACHE_MIB" mount_store "$STORE" "$MNT" -o cache_size=$CACHE_MIB
pid=${MOUNT_PIDS[-1]}

check "$READERS readers, ${SECONDS_PER_READER}s each, every byte checked" \
	timeout $((SECONDS_PER_READER * 4 + 300)) $PY "$ROOT/tests/integration/stress.py" run \
	"$STORE" "$SRC" "$MNT" $READERS $SECONDS_PER_READER 50
sed 's/^/# /' "$TMP/check.out" | head -3

$PY - "$MNT/.stepfs/stats.json" $CACHE_MIB >"$TMP/stats.out" 2>&1 <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))
budget = int(sys.argv[2]) << 20
print("cache_bytes %d of a %d budget, %d evictions, %d frames decompressed, %d reads, %d read errors"
      % (stats["cache_bytes"], stats["cache_budget_bytes"], stats["cache_evictions"],
         stats["frames_decompressed"], stats["reads"], stats["read_errors"]))
assert stats["cache_budget_bytes"] == budget, "budget %d, expected %d" % (stats["cache_budget_bytes"], budget)
assert stats["cache_bytes"] <= budget, "the cache holds more than its budget"
assert stats["cache_evictions"] > 0, "the small cache never evicted"
assert stats["read_errors"] == 0, "reads failed"
PY
if [ $? -eq 0 ]; then ok "stats.json: $(head -1 "$TMP/stats.out")"; else not_ok "stats.json within budget"; sed 's/^/#   /' "$TMP/stats.out"; fi

rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
if [ -n "$rss_kib" ] && [ "$rss_kib" -le $((RSS_LIMIT_MIB * 1024)) ]; then
	ok "daemon resident memory $((rss_kib / 1024)) MiB (limit $RSS_LIMIT_MIB MiB)"
else
	not_ok "daemon resident memory ${rss_kib:-unknown} KiB (limit $RSS_LIMIT_MIB MiB)"
fi
check "unmount is clean (no sanitizer or leak report)" unmount "$MNT"

finish
