#!/usr/bin/env bash
# The main job on the bundled sample cache: build, pack, mount, look, unmount.
#   bash scripts/demo.sh [CACHE]     (default: tests/data/distilabel-pr766)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:-$root/tests/data/distilabel-pr766}

bash "$root/scripts/deps.sh" build
make -s -C "$root"

work=$(mktemp -d /tmp/stepfs-demo.XXXXXX)
store=$work/cache.stepfs
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
	if mountpoint -q "$mnt" 2>/dev/null; then fusermount3 -u "$mnt"; fi
	rm -rf "$work"
}
trap cleanup EXIT

run() { printf '\n$ %s\n' "$*"; "$@"; }

run "$root/build/stepstore" pack "$cache" "$store"
run "$root/build/stepstore" info "$store"
run "$root/build/stepfs" "$store" "$mnt"
run ls -l "$mnt"
run ls -l "$mnt/by-name/"
run ls "$mnt/step_1" "$mnt/step_1/batches"
run head -c 600 "$mnt/manager_meta.json"; echo
run sh -c "head -n 2 '$mnt/step_1/rows.jsonl' | cut -c 1-160"
run wc -l "$mnt"/step_*/rows.jsonl
echo
echo "\$ diff -r $cache $mnt/source"
diff -r "$cache" "$mnt/source" && echo "(identical)"
run "$root/build/stepstore" verify "$store"
run fusermount3 -u "$mnt"
echo
echo "stepfs demo: done"
