#!/usr/bin/env bash
# Read-ahead of a sequential reader: its window grows past the first
# megabyte, stays within an eighth of the cache, and never runs past the
# end of the file. Counted with .stepfs/stats.json once the background
# threads are idle (the counters stop moving); no timing is asserted.
. "$(dirname "$0")/lib.sh"

src=$TMP/src
store=$TMP/big.stepfs
mkdir -p "$src"
# 24 MiB of varied text: 97 frames of 256 KiB
python3 - "$src/big.jsonl" <<'PY'
import random, sys
rng = random.Random(7)
with open(sys.argv[1], "w") as out:
    size = 0
    while size < 24 << 20:
        line = '{"id": %d, "text": "%s"}\n' % (size, "".join(rng.choices("abcdefghij ", k=200)))
        out.write(line)
        size += len(line)
PY
printf 'small\n' >"$src/small.txt"
check "pack a generic folder with one 24 MiB file" "$STEPSTORE" pack --quiet --frame-size 256K "$src" "$store"

frames_now() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["frames_decompressed"])' "$1/.stepfs/stats.json"; }

# the count once it has not moved for half a second (at most 20 s)
frames_settled() {
	local last=-1 now i
	for i in $(seq 40); do
		now=$(frames_now "$1")
		[ "$now" = "$last" ] && break
		last=$now
		sleep 0.5
	done
	echo "$now"
}

frame=$((256 << 10))
read_first() { dd if="$1/source/big.jsonl" of=/dev/null bs=128K count=16 status=none; } # 2 MiB, front to back

mnt=$TMP/mnt
check "mount with the default cache (64 MiB)" mount_store "$store" "$mnt"
read_first "$mnt"
n=$(frames_settled "$mnt")
# 2 MiB read (8 frames) plus the kernel's own read-ahead (a few frames)
# and a 1 MiB window would stay under 18 frames; a window grown to 8 MiB
# reaches about 42.
check "a sequential reader's window grows past 1 MiB: $n frames decompressed after reading 2 MiB (want >= 24)" \
	test "$n" -ge 24
check "and stays within 8 MiB ahead: $n frames (want <= $(((2 << 20) / frame + 4 + (8 << 20) / frame + 2)))" \
	test "$n" -le $(((2 << 20) / frame + 4 + (8 << 20) / frame + 2))
cat "$mnt/source/big.jsonl" >/dev/null
n=$(frames_settled "$mnt")
all=$((($(stat -c %s "$src/big.jsonl") + frame - 1) / frame))
# once each: read-ahead hints that arrive after the reader finished a frame
# are skipped; the slack of 4 is for the kernel's own requests, which may be
# served out of order by more than the few finished frames kept
check "reading to the end decompresses each of the file's $all frames once (slack 4): got $n" \
	test "$n" -ge "$all" -a "$n" -le $((all + 4))
check "the read is byte-exact" cmp "$mnt/source/big.jsonl" "$src/big.jsonl"
check "unmount" unmount "$mnt"

mnt=$TMP/mnt-seek
check "mount again" mount_store "$store" "$mnt"
# one file handle streams [16, 20) MiB, whose read-ahead runs to the end of
# the file, then goes back to 0 and streams 2 MiB: the frames decompressed
# for the second run, once the counters settle
n=$(python3 - "$mnt/source/big.jsonl" "$mnt/.stepfs/stats.json" <<'PY'
import json, os, sys, time
path, stats = sys.argv[1:3]
def settled():
    last = -1
    for _ in range(40):
        now = json.load(open(stats))["frames_decompressed"]
        if now == last:
            break
        last = now
        time.sleep(0.5)
    return now
fd = os.open(path, os.O_RDONLY)
os.lseek(fd, 16 << 20, os.SEEK_SET)
for _ in range(32):
    os.read(fd, 128 << 10)
first = settled()
os.lseek(fd, 0, os.SEEK_SET)
for _ in range(16):
    os.read(fd, 128 << 10)
print(settled() - first)
PY
)
check "after a seek back on the same handle, read-ahead starts again: ${n:-?} frames for 2 MiB read (want >= 24)" \
	test "${n:-0}" -ge 24
check "unmount" unmount "$mnt"

mnt=$TMP/mnt-small
check "mount with an 8 MiB cache" mount_store "$store" "$mnt" -o cache_size=8
read_first "$mnt"
n=$(frames_settled "$mnt")
check "the window is held to an eighth of the cache (1 MiB): $n frames (want <= 18)" test "$n" -le 18
check "unmount" unmount "$mnt"

finish
