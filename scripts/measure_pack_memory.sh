#!/usr/bin/env bash
# Peak memory of `stepstore pack` on a large monolithic batch_manager.json.
#   bash scripts/measure_pack_memory.sh [BYTES]   (default 1 GiB)
# Generates the cache (scripts/gen_cache.py streams it to disk), packs it
# under /usr/bin/time -v, checks the unpacked file is byte-identical, and
# prints the peak RSS, the wall and CPU time, and the sizes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bytes=${1:-1073741824}
work=$(mktemp -d /var/tmp/stepfs-mem.XXXXXX)
trap 'rm -rf "$work"' EXIT
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
make -s -C "$root"

echo "generating a monolithic cache of about $bytes bytes in $work"
python3 "$root/scripts/gen_cache.py" --layout monolithic --out "$work/cache" --seed 1 \
	--target-bytes "$bytes" >/dev/null
manager=$(find "$work/cache" -name batch_manager.json)
ls -l "$manager"

/usr/bin/time -v "$root/build/stepstore" pack --quiet "$work/cache" "$work/store" 2>"$work/time.txt"
grep -E "Maximum resident set size|Elapsed \(wall clock\)|User time|System time|Percent of CPU" "$work/time.txt"
rss_kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time.txt")
echo "peak RSS: $((rss_kib / 1024)) MiB"
du -sb "$work/cache" "$work/store"
"$root/build/stepstore" info "$work/store" | tail -8
"$root/build/stepstore" unpack "$work/store" "$work/unpacked"
cmp "$manager" "$work/unpacked/${manager#$work/cache/}" && echo "unpacked batch_manager.json is byte-identical"
