#!/usr/bin/env bash
# Daemon memory of `stepfs` on a store of many batch files, with the default
# metadata budget and with one that keeps every index loaded, in one run on
# the same store.
#   bash scripts/measure_mount_memory.sh [--steps N] [--batches N] [--runs N] [--work DIR] [--keep]
# Defaults: 4 steps of 50,000 batch files each (about 200,000 files), 3 runs
# of each mount. Each run mounts the store, opens and reads every file under
# source/ (find | xargs cat), then reads the daemon's peak and current RSS
# (VmHWM, VmRSS) and the index counters of .stepfs/stats.json, and unmounts.
# Prints a Markdown table of the medians.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
steps=4 batches=50000 runs=3 work="" keep=0
while [ $# -gt 0 ]; do
	case $1 in
	--steps) steps=$2; shift 2 ;;
	--batches) batches=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	*) echo "usage: $0 [--steps N] [--batches N] [--runs N] [--work DIR] [--keep]" >&2; exit 2 ;;
	esac
done
if [ -z "$work" ]; then
	work=$(mktemp -d /var/tmp/stepfs-mount-mem.XXXXXX)
fi
mkdir -p "$work"
mnt=$work/mnt
cleanup() {
	mountpoint -q "$mnt" 2>/dev/null && fusermount3 -u "$mnt"
	if [ "$keep" = 0 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
make -s -C "$root"
stepfs=$root/build/stepfs stepstore=$root/build/stepstore

cache=$work/cache-$steps-$batches store=$work/store-$steps-$batches.stepfs
if [ ! -e "$store/store.json" ]; then
	echo "generating $steps steps of $batches batch files in $cache" >&2
	rm -rf "$cache" "$store"
	python3 "$root/scripts/gen_cache.py" --layout current --out "$cache" --steps "$steps" \
		--batches "$batches" --batch-size 1 --text-bytes 8 --embedding-dim 1 --seed 11 >/dev/null
	"$stepstore" pack --quiet "$cache" "$store"
fi
files=$("$stepstore" info "$store" | sed -n 's/^source: *\([0-9]*\) files.*/\1/p')
indexes=$(ls "$store/index" | wc -l)

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# one mount: prints "hwm_kib rss_kib metadata_bytes resident dropped loads"
measure() {
	local budget=$1 pid stats
	mkdir -p "$mnt"
	"$stepfs" "$store" "$mnt" -f -o metadata_size="$budget" 2>"$work/stepfs.log" &
	pid=$!
	for _ in $(seq 1 200); do mountpoint -q "$mnt" && break; sleep 0.05; done
	mountpoint -q "$mnt" || { echo "stepfs did not mount:" >&2; cat "$work/stepfs.log" >&2; exit 1; }
	find "$mnt/source" -type f -print0 | xargs -0 cat >/dev/null
	stats=$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["metadata_bytes"], d["indexes_resident"], d["indexes_dropped"], d["indexes_loaded"])' "$mnt/.stepfs/stats.json")
	echo "$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status") $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status") $stats"
	fusermount3 -u "$mnt"
	wait "$pid"
}

echo "| metadata budget | peak RSS (MiB) | RSS after (MiB) | metadata held (MiB) | indexes loaded now / loads / drops |"
echo "| --- | --- | --- | --- | --- |"
for budget in 16 4096; do
	: >"$work/runs.txt"
	for _ in $(seq 1 "$runs"); do
		sync
		echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
		measure "$budget" >>"$work/runs.txt"
	done
	hwm=$(awk '{ print $1 }' "$work/runs.txt" | median)
	rss=$(awk '{ print $2 }' "$work/runs.txt" | median)
	meta=$(awk '{ print $3 }' "$work/runs.txt" | median)
	read -r _ _ _ resident dropped loads < <(tail -1 "$work/runs.txt")
	label=$([ "$budget" = 16 ] && echo "16 MiB (default)" || echo "$budget MiB (every index kept)")
	awk -v label="$label" -v hwm="$hwm" -v rss="$rss" -v meta="$meta" -v counts="$resident / $loads / $dropped" \
		'BEGIN { printf "| %s | %.1f | %.1f | %.1f | %s |\n", label, hwm / 1024, rss / 1024, meta / 1048576, counts }'
done
echo
echo "store: $store ($indexes indexes, ${files:-?} files); frame cache 64 MiB (default); $runs runs each, medians"
