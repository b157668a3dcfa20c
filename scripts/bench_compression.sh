#!/usr/bin/env bash
# The size and speed effect of each `stepstore pack` compression choice on
# the benchmark data of scripts/bench.sh (same gen_cache.py parameters):
# zstd level, frame size, long-distance matching, and shard dictionaries.
# Needs neither root nor a page-cache drop: read time is a warm
# `stepstore unpack` of the whole store (every frame decompressed and
# checked), which is what a full read through the mount costs in CPU.
#
#   bash scripts/bench_compression.sh [--quick] [--runs N] [--out FILE]
#                                     [--work DIR] [--keep] [--no-build]
#
#   --quick      smaller data (bench.sh --quick's caches); a smoke run
#   --runs N     runs per figure (default 3; the median is reported)
#   --out FILE   also write the results as a Markdown section to FILE
#   --work DIR   where data and stores go (default /var/tmp/stepfs-bench-z)
#   --keep       keep DIR afterwards
#   --no-build   use build/stepstore as it is
#
# For each data set and choice it reports the store size, its ratio to one
# `zstd -LEVEL` stream of the same bytes (every file of the cache in path
# order, concatenated), the pack time and the unpack time.
set -euo pipefail
export LC_ALL=C
root=$(cd "$(dirname "$0")/.." && pwd)
runs=3
quick=0
out=""
work=/var/tmp/stepfs-bench-z
keep=0
build=1
command_line="scripts/bench_compression.sh${*:+ $*}"
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--runs) runs=${2:?--runs needs a number}; shift ;;
	--out) out=${2:?--out needs a file}; shift ;;
	--work) work=${2:?--work needs a folder}; shift ;;
	--keep) keep=1 ;;
	--no-build) build=0 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench_compression: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done

if [ "$quick" = 1 ]; then
	data_args=(--steps 3 --batches 2 --batch-size 4000 --text-bytes 400 --embedding-dim 64 --seed 1)
	meta_args=(--steps 3 --batches 2000 --batch-size 2 --text-bytes 60 --embedding-dim 4 --seed 2)
else
	data_args=(--steps 3 --batches 4 --batch-size 12000 --text-bytes 400 --embedding-dim 64 --seed 1)
	meta_args=(--steps 3 --batches 20400 --batch-size 2 --text-bytes 60 --embedding-dim 4 --seed 2)
fi

[ "$build" = 1 ] && make -s -C "$root" all >/dev/null
STEPSTORE=$root/build/stepstore
threads=$(nproc)
mkdir -p "$work"
made_work=$work
cleanup() { [ "$keep" = 1 ] || rm -rf "$made_work"; }
trap cleanup EXIT

now_us() { date +%s%6N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
say() { echo "bench_compression: $*" >&2; }

generate() {
	local name=$1 dir
	shift
	dir=$work/$name-$(printf '%s ' "$@" | md5sum | cut -c1-10)
	if [ ! -e "$dir/.complete" ]; then
		say "generating the $name cache ($*)"
		rm -rf "$dir"
		python3 "$root/scripts/gen_cache.py" --layout current --out "$dir/cache" "$@" >/dev/null
		(cd "$dir/cache" && find . -type f | sort | xargs -d '\n' cat) >"$dir/all.bin"
		touch "$dir/.complete"
	fi
	echo "$dir"
}

# The choices: "label|pack options|zstd level of the reference stream".
choices=(
	"level 1, 256K|--level 1 --frame-size 256K --dictionary never|1"
	"level 3, 256K (default frames)|--level 3 --frame-size 256K --dictionary never|3"
	"level 9, 256K|--level 9 --frame-size 256K --dictionary never|9"
	"level 19, 256K|--level 19 --frame-size 256K --dictionary never|19"
	"level 3, 64K|--level 3 --frame-size 64K --dictionary never|3"
	"level 3, 1M|--level 3 --frame-size 1M --dictionary never|3"
	"level 3, 256K, --long|--level 3 --frame-size 256K --long --dictionary never|3"
	"level 3, 1M, --long|--level 3 --frame-size 1M --long --dictionary never|3"
	"level 3, 16K, dictionary never|--level 3 --frame-size 16K --dictionary never|3"
	"level 3, 16K, dictionary always|--level 3 --frame-size 16K --dictionary always|3"
	"level 3, 16K, dictionary auto|--level 3 --frame-size 16K --dictionary auto|3"
	"level 3, 64K, dictionary always|--level 3 --frame-size 64K --dictionary always|3"
	"level 3, 64K, dictionary auto|--level 3 --frame-size 64K --dictionary auto|3"
	"level 3, 256K, dictionary auto|--level 3 --frame-size 256K --dictionary auto|3"
)

results=$work/results.tsv
: >"$results"
for set in meta data; do
	if [ "$set" = meta ]; then dir=$(generate meta "${meta_args[@]}"); else dir=$(generate data "${data_args[@]}"); fi
	source_bytes=$(stat -c %s "$dir/all.bin")
	declare -A stream=()
	for choice in "${choices[@]}"; do
		IFS='|' read -r label options level <<<"$choice"
		if [ -z "${stream[$level]:-}" ]; then
			stream[$level]=$(zstd -q -"$level" -T1 -c "$dir/all.bin" | wc -c)
		fi
		packs=() reads=()
		for run in $(seq 1 "$runs"); do
			rm -rf "$work/store" "$work/out"
			t0=$(now_us)
			# shellcheck disable=SC2086
			"$STEPSTORE" pack --quiet --threads "$threads" $options "$dir/cache" "$work/store"
			packs+=($(($(now_us) - t0)))
			"$STEPSTORE" unpack "$work/store" "$work/out" >/dev/null # warm the page cache
			rm -rf "$work/out"
			t0=$(now_us)
			"$STEPSTORE" unpack "$work/store" "$work/out" >/dev/null
			reads+=($(($(now_us) - t0)))
		done
		store_bytes=$(du -sb --apparent-size "$work/store/shards" | cut -f1)
		dicts=$(find "$work/store/shards" -name '*.dict' | wc -l)
		pack_ms=$(printf '%s\n' "${packs[@]}" | median)
		read_ms=$(printf '%s\n' "${reads[@]}" | median)
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$set" "$label" "$store_bytes" "${stream[$level]}" \
			"$source_bytes" "$((pack_ms / 1000))" "$((read_ms / 1000))" "$dicts" | tee -a "$results" >&2
	done
	unset stream
done

report() {
	echo "Command: \`$command_line\`, $(date -u +%Y-%m-%d), $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), $(zstd --version | sed 's/^\*\*\* //; s/ \*\*\*$//; s/, by .*//')."
	echo "Medians of $runs runs; pack uses $threads threads. Sizes are the shards and dictionaries (\`du --apparent-size shards/\`);"
	echo "\"vs zstd\" is that size divided by one \`zstd -LEVEL\` stream of the same bytes (1.00: as small as one stream)."
	echo
	for set in meta data; do
		if [ "$set" = meta ]; then
			echo "Many-file data (\`gen_cache.py --layout current ${meta_args[*]}\`, $(awk -F'\t' -v s=meta '$1 == s { printf "%.1f", $5 / 1048576; exit }' "$results") MiB of files):"
		else
			echo "Large-file data (\`gen_cache.py --layout current ${data_args[*]}\`, $(awk -F'\t' -v s=data '$1 == s { printf "%.1f", $5 / 1048576; exit }' "$results") MiB of files):"
		fi
		echo
		echo "| choice | store MiB | vs zstd | dictionaries | pack s | unpack s |"
		echo "| --- | ---: | ---: | ---: | ---: | ---: |"
		awk -F'\t' -v s="$set" '$1 == s {
			printf "| %s | %.2f | %.2f | %d | %.2f | %.2f |\n", $2, $3 / 1048576, $3 / $4, $8, $6 / 1000, $7 / 1000 }' "$results"
		echo
	done
}
report | tee "$work/report.md"
if [ -n "$out" ]; then
	report >>"$out"
fi
