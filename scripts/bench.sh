#!/usr/bin/env bash
# stepfs against squashfuse on the same data: sequential and random reads,
# cold and warm, metadata walks, mount time, daemon memory, store size and
# pack time. Run as root (it drops the page cache and mounts).
#
#   bash scripts/bench.sh [--quick] [--runs N] [--out FILE] [--work DIR]
#                         [--keep] [--no-build]
#
#   --quick      small data, 3 runs, short fio runs: a smoke run (~5 min)
#   --runs N     runs per figure (default 5; the median is reported)
#   --out FILE   also write the results as a Markdown section to FILE
#   --work DIR   where data, stores, images and mounts go
#                (default /var/tmp/stepfs-bench); generated caches found
#                there from an earlier --keep run are reused
#   --keep       keep DIR afterwards (default: remove what this run made)
#   --no-build   use build/stepfs and build/stepstore as they are
#
# A full run takes about 20 minutes on 2 cores (about 2 of them generate the data).
#
# What is compared (docs/BENCHMARKS.md explains the method and the results):
#   stepfs STORE (frames of 256 KiB, zstd level 3, cache_size 64 MiB) against
#   mksquashfs -comp zstd -Xcompression-level 3 -b 256K mounted with Debian's
#   squashfuse and squashfuse_ll (both with their default options); packing
#   uses the same number of threads on both sides (nproc).
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
runs=5
quick=0
out=""
work=/var/tmp/stepfs-bench
keep=0
build=1
cache_mib=64
command_line="scripts/bench.sh${*:+ $*}"

while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1; runs=3 ;;
	--runs) runs=${2:?--runs needs a number}; shift ;;
	--runs=*) runs=${1#--runs=} ;;
	--out) out=${2:?--out needs a file}; shift ;;
	--out=*) out=${1#--out=} ;;
	--work) work=${2:?--work needs a folder}; shift ;;
	--work=*) work=${1#--work=} ;;
	--keep) keep=1 ;;
	--no-build) build=0 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
case $runs in '' | *[!0-9]* | 0) echo "bench: --runs wants a positive number" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then
	echo "bench: run as root (drops the page cache, mounts FUSE file systems)" >&2
	exit 1
fi
case $out in '' | /*) ;; *) out=$PWD/$out ;; esac
case $work in /*) ;; *) work=$PWD/$work ;; esac

# ---- sizes ------------------------------------------------------------------
threads=$(nproc)
if [ "$quick" = 1 ]; then
	data_args=(--steps 3 --batches 2 --batch-size 4000 --text-bytes 400 --embedding-dim 64 --seed 1)
	meta_args=(--steps 3 --batches 2000 --batch-size 2 --text-bytes 60 --embedding-dim 4 --seed 2)
	fio_cold_size=2M
	fio_warm_seconds=2
else
	# step_2/rows.jsonl ~ 90 MiB, source batch files of ~45 MiB
	data_args=(--steps 3 --batches 4 --batch-size 12000 --text-bytes 400 --embedding-dim 64 --seed 1)
	# 20400 + 20400 + 10200 = 51000 batch files
	meta_args=(--steps 3 --batches 20400 --batch-size 2 --text-bytes 60 --embedding-dim 4 --seed 2)
	fio_cold_size=8M
	fio_warm_seconds=3
fi

# ---- dependencies -----------------------------------------------------------
need=()
for pair in squashfuse:squashfuse squashfuse_ll:squashfuse mksquashfs:squashfs-tools \
	fio:fio zstd:zstd python3:python3 fusermount3:fuse3 mountpoint:util-linux; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
	mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
	echo "bench: installing ${need[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$build" = 1 ]; then
	bash "$root/scripts/deps.sh" build
	make -s -C "$root" -j"$threads" all
fi
for b in stepfs stepstore; do
	[ -x "$root/build/$b" ] || { echo "bench: build/$b is missing (run make)" >&2; exit 1; }
done

# ---- work area, mounts and cleanup -----------------------------------------
gen=$work/gen
run=$work/run
mkdir -p "$gen"
rm -rf "$run"
mkdir -p "$run/bin" "$run/mnt/stepfs" "$run/mnt/squashfuse" "$run/mnt/squashfuse_ll" "$run/log" "$run/stats"
# private copies: a rebuild elsewhere cannot change the binaries mid-run
cp "$root/build/stepfs" "$root/build/stepstore" "$run/bin/"
STEPFS=$run/bin/stepfs
STEPSTORE=$run/bin/stepstore
results=$run/results.tsv
info=$run/info.tsv
: >"$results"
: >"$info"

declare -A daemon_pid=()   # mount point -> daemon pid (only daemons started here)

unmount_dir() {
	local mnt=$1 pid=${daemon_pid[$1]:-} i
	if mountpoint -q "$mnt" 2>/dev/null; then
		for i in 1 2 3 4 5; do
			fusermount3 -u "$mnt" 2>/dev/null && break
			sleep 0.2
		done
		mountpoint -q "$mnt" 2>/dev/null && umount -l "$mnt" 2>/dev/null || true
	fi
	if [ -n "$pid" ]; then
		for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		unset "daemon_pid[$mnt]"
	fi
}

cleanup() {
	local status=$? mnt
	trap - EXIT INT TERM
	for mnt in "$run/mnt/stepfs" "$run/mnt/squashfuse" "$run/mnt/squashfuse_ll" "${!daemon_pid[@]}"; do
		unmount_dir "$mnt"
	done
	if [ "$keep" = 0 ]; then
		rm -rf "$run"
		[ "$quick" = 1 ] && rm -rf "$gen"
		rmdir "$work" 2>/dev/null || true
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; }
note() { printf '%s\t%s\n' "$1" "$2" >>"$info"; }
mib_s() { awk -v b="$1" -v us="$2" 'BEGIN { printf "%.2f", b / 1048576 / (us / 1e6) }'; }
secs() { awk -v us="$1" 'BEGIN { printf "%.4f", us / 1e6 }'; }
msecs() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1e3 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
say() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# mount_fs SYSTEM STORE_OR_IMAGE: start the daemon in the foreground
# (background job, so its pid is known), wait for the mount; sets mount_us.
mount_us=0
mount_fs() {
	local sys=$1 src=$2 mnt=$run/mnt/$1 t0 pid i=0
	unmount_dir "$mnt"
	t0=$(now_us)
	case $sys in
	stepfs) "$STEPFS" "$src" "$mnt" -f -o cache_size=$cache_mib >>"$run/log/$sys.log" 2>&1 & ;;
	squashfuse) squashfuse -f "$src" "$mnt" >>"$run/log/$sys.log" 2>&1 & ;;
	squashfuse_ll) squashfuse_ll -f "$src" "$mnt" >>"$run/log/$sys.log" 2>&1 & ;;
	esac
	pid=$!
	daemon_pid[$mnt]=$pid
	until mountpoint -q "$mnt"; do
		if ! kill -0 "$pid" 2>/dev/null || [ $((i += 1)) -gt 20000 ]; then
			echo "bench: $sys could not mount $src (see $run/log/$sys.log)" >&2
			cat "$run/log/$sys.log" >&2 || true
			exit 1
		fi
	done
	mount_us=$(($(now_us) - t0))
}

rss_mib() { awk '/^VmRSS:/ { printf "%.2f", $2 / 1024 }' "/proc/${daemon_pid[$run/mnt/$1]}/status"; }

# A daemon that dies during a test loses that sample: it is counted and
# reported, the mount is cleaned up and the next test mounts again.
crashes=0
alive() {
	[ "$1" = disk ] && return 0
	local pid=${daemon_pid[$run/mnt/$1]:-}
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && mountpoint -q "$run/mnt/$1"
}
checked() { # SYSTEM METRIC: true when the daemon survived the test
	alive "$1" && return 0
	if [ -n "${daemon_pid[$run/mnt/$1]:-}" ]; then
		crashes=$((crashes + 1))
		note "crash_$crashes" "$1 died during $2 (run $r); its log: $run/log/$1.log"
		say "WARNING: the $1 daemon died during $2 (run $r); sample dropped"
		unmount_dir "$run/mnt/$1"
	fi
	return 1
}

# ---- machine --------------------------------------------------------------
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/^[^:]*: *//')
kernel=$(uname -srm)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$root" status --porcelain -- codecs fs Makefile 2>/dev/null)" ]; then
	commit="$commit (with uncommitted changes under codecs/, fs/ or Makefile)"
fi
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
versions="squashfuse $(pkgver squashfuse), squashfs-tools $(pkgver squashfs-tools), fio $(pkgver fio), zstd $(pkgver zstd), libfuse3 $(pkgver libfuse3-3)"
note command "$command_line"
note date "$started"
note cpu "$cpu"
note nproc "$threads"
note kernel "$kernel"
note commit "$commit"
note versions "$versions"
note rss_limit_mib $((cache_mib + 32))
note load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
{
	echo "== machine"
	echo "date:    $started"
	echo "command: $command_line"
	echo "cpu:     $cpu"
	echo "nproc:   $threads"
	echo "kernel:  $kernel"
	echo "stepfs:  $commit"
	echo "tools:   $versions"
	free -g
} | tee "$run/machine.txt"
note free "$(free -g | awk '/^Mem:/ { print $2 " GiB total, " $7 " GiB available" }')"

# ---- data -------------------------------------------------------------------
# generate NAME ARGS...: a cache under $gen, reused when the options match
generate() {
	local name=$1 sig dir
	shift
	sig=$(printf '%s ' "$@" | md5sum | cut -c1-10)
	dir=$gen/$name-$sig
	if [ ! -e "$dir/.complete" ]; then
		say "generating the $name cache ($*)"
		rm -rf "$dir"
		python3 "$root/scripts/gen_cache.py" --layout current --out "$dir/cache" "$@" >/dev/null
		touch "$dir/.complete"
	fi
	echo "$dir/cache"
}
data_src=$(generate data "${data_args[@]}")
meta_src=$(generate meta "${meta_args[@]}")
note data_args "${data_args[*]}"
note meta_args "${meta_args[*]}"
note data_source "$(find "$data_src" -type f | wc -l) files, $(mib "$(du -sb "$data_src" | cut -f1)") MiB"
note meta_source "$(find "$meta_src" -type f | wc -l) files, $(mib "$(du -sb "$meta_src" | cut -f1)") MiB"
note meta_batch_files "$(find "$meta_src" -path '*/steps_data/*' -name 'batch_*.json' | wc -l)"

# ---- pack: size and time ------------------------------------------------------
pack_stepfs() { "$STEPSTORE" pack --quiet --level 3 --frame-size 256K --threads "$threads" "$1" "$2" >/dev/null; }
pack_squash() {
	mksquashfs "$1" "$2" -comp zstd -Xcompression-level 3 -b 256K -processors "$threads" \
		-noappend -quiet -no-progress >/dev/null
}
store_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }'; }
for kind in data meta; do
	src=$data_src
	[ $kind = meta ] && src=$meta_src
	say "packing the $kind cache, $runs runs each way"
	find "$src" -type f -exec cat {} + >/dev/null # the source is read from the page cache by both
	for r in $(seq "$runs"); do
		rm -rf "$run/$kind.stepfs"
		sync
		t0=$(now_us); pack_stepfs "$src" "$run/$kind.stepfs"; t=$(($(now_us) - t0))
		record "pack_$kind" stepfs "$(secs $t)"
		record "pack_sync_$kind" stepfs "$(secs $t)"
		rm -f "$run/$kind.sqfs"
		sync
		t0=$(now_us); pack_squash "$src" "$run/$kind.sqfs"; t=$(($(now_us) - t0))
		t0=$(now_us); sync "$run/$kind.sqfs"; ts=$(($(now_us) - t0))
		for sys in squashfuse squashfuse_ll; do
			record "pack_$kind" $sys "$(secs $t)"
			record "pack_sync_$kind" $sys "$(secs $((t + ts)))"
		done
	done
	for sys in squashfuse squashfuse_ll; do
		record "size_$kind" $sys "$(mib "$(stat -c %s "$run/$kind.sqfs")")"
	done
	record "size_$kind" stepfs "$(mib "$(store_bytes "$run/$kind.stepfs")")"
	note "size_${kind}_index" "$(mib "$(store_bytes "$run/$kind.stepfs/index")")"
	note "size_${kind}_shards" "$(mib "$(store_bytes "$run/$kind.stepfs/shards")")"
done

# ---- the files read ------------------------------------------------------------
# The largest step_N/rows.jsonl, copied out of a stepfs mount once: the
# squashfs image used for reading holds the same bytes at bench/rows.jsonl.
mount_fs stepfs "$run/data.stepfs"
m=$run/mnt/stepfs
rows_rel=$(cd "$m" && stat -c '%s %n' step_*/rows.jsonl | sort -n | tail -1 | cut -d' ' -f2)
batch_rel=$(cd "$m/source" && find . -path '*/steps_data/*' -name 'batch_*.json' -printf '%s %P\n' | sort -n | tail -1 | cut -d' ' -f2)
mkdir -p "$run/plain"
cp "$m/$rows_rel" "$run/plain/rows.jsonl"
cmp "$m/source/$batch_rel" "$data_src/$batch_rel"
unmount_dir "$m"
rows_bytes=$(stat -c %s "$run/plain/rows.jsonl")
batch_bytes=$(stat -c %s "$data_src/$batch_rel")
note rows_file "$rows_rel ($(mib "$rows_bytes") MiB)"
note batch_file "source/$batch_rel ($(mib "$batch_bytes") MiB)"
say "read tests use $rows_rel ($(mib "$rows_bytes") MiB) and source/$batch_rel ($(mib "$batch_bytes") MiB)"
mkdir -p "$run/sqsrc"
cp -al "$data_src/." "$run/sqsrc/"
mkdir -p "$run/sqsrc/bench"
ln "$run/plain/rows.jsonl" "$run/sqsrc/bench/rows.jsonl"
pack_squash "$run/sqsrc" "$run/dataread.sqfs"
zstd -q -3 -f "$run/plain/rows.jsonl" -o "$run/plain/rows.jsonl.zst"

# path of the rows file and the batch file as each system shows them
rows_path() {
	case $1 in
	stepfs) echo "$run/mnt/stepfs/$rows_rel" ;;
	disk) echo "$run/plain/rows.jsonl" ;;
	*) echo "$run/mnt/$1/bench/rows.jsonl" ;;
	esac
}
batch_path() {
	case $1 in
	stepfs) echo "$run/mnt/stepfs/source/$batch_rel" ;;
	disk) echo "$data_src/$batch_rel" ;;
	*) echo "$run/mnt/$1/$batch_rel" ;;
	esac
}
image_of() { if [ "$1" = stepfs ]; then echo "$run/$2.stepfs"; elif [ "$2" = data ]; then echo "$run/dataread.sqfs"; else echo "$run/$2.sqfs"; fi; }

# cold SYSTEM KIND: nothing cached anywhere: unmount, drop the page cache, mount
cold() {
	[ "$1" = disk ] || unmount_dir "$run/mnt/$1"
	drop_caches
	if [ "$1" != disk ]; then
		mount_fs "$1" "$(image_of "$1" "$2")"
		record "mount_$2" "$1" "$(msecs "$mount_us")"
	fi
}

read_file() { # METRIC SYSTEM FILE BYTES
	local t0 t
	alive "$2" || return 0
	t0=$(now_us); cat "$3" >/dev/null 2>>"$run/log/errors.log" || true; t=$(($(now_us) - t0))
	checked "$2" "$1" && record "$1" "$2" "$(mib_s "$4" "$t")"
	return 0
}

fio_iops() { # METRIC SYSTEM FILE JOBS cold|warm
	local extra=(--io_size="$fio_cold_size")
	[ "$5" = warm ] && extra=(--time_based --runtime="$fio_warm_seconds")
	alive "$2" || return 0
	rm -f "$run/fio.json"
	fio --name=rand --filename="$3" --readonly --rw=randread --bs=4k --ioengine=psync \
		--numjobs="$4" --invalidate=0 --randrepeat=1 --group_reporting \
		--output-format=json --output="$run/fio.json" "${extra[@]}" >/dev/null 2>>"$run/log/errors.log" || true
	checked "$2" "$1" &&
		record "$1" "$2" "$(python3 -c 'import json, sys; print("%.0f" % json.load(open(sys.argv[1]))["jobs"][0]["read"]["iops"])' "$run/fio.json")"
	return 0
}

snapshot() { # stepfs counters after a test, first run only
	[ "$1" = stepfs ] && [ "$r" = 1 ] && cp "$run/mnt/stepfs/.stepfs/stats.json" "$run/stats/$2.json" 2>/dev/null || true
}

# ---- large files ------------------------------------------------------------
# check once that every system serves the same bytes
for sys in stepfs squashfuse squashfuse_ll; do
	mount_fs $sys "$(image_of $sys data)"
	cmp "$(rows_path $sys)" "$run/plain/rows.jsonl"
	unmount_dir "$run/mnt/$sys"
done

for r in $(seq "$runs"); do
	say "large-file reads, run $r of $runs"
	for sys in stepfs squashfuse squashfuse_ll disk; do
		f=$(rows_path $sys)
		cold $sys data
		read_file seq_cold_rows $sys "$f" "$rows_bytes"
		snapshot $sys seq_cold_rows
		read_file seq_warm_rows $sys "$f" "$rows_bytes"

		cold $sys data
		read_file seq_cold_batch $sys "$(batch_path $sys)" "$batch_bytes"
		snapshot $sys seq_cold_batch
		read_file seq_warm_batch $sys "$(batch_path $sys)" "$batch_bytes"

		cold $sys data
		fio_iops rand1_cold $sys "$f" 1 cold
		snapshot $sys rand1_cold
		cold $sys data
		fio_iops rand4_cold $sys "$f" 4 cold
		snapshot $sys rand4_cold

		alive $sys || cold $sys data
		cat "$f" >/dev/null 2>>"$run/log/errors.log" || true
		fio_iops rand1_warm $sys "$f" 1 warm
		fio_iops rand4_warm $sys "$f" 4 warm
		snapshot $sys rand_warm

		if [ $sys != disk ]; then
			cold $sys data
			find "$run/mnt/$sys" -path "$run/mnt/$sys/.stepfs" -prune -o -type f -print0 |
				xargs -0 cat >/dev/null 2>>"$run/log/errors.log" || true
			checked $sys read_all && record rss_data $sys "$(rss_mib $sys)"
			snapshot $sys read_all
			unmount_dir "$run/mnt/$sys"
		fi
	done
	cat "$run/plain/rows.jsonl.zst" >/dev/null
	t0=$(now_us); zstd -qdc "$run/plain/rows.jsonl.zst" >/dev/null; t=$(($(now_us) - t0))
	record zstd_dc zstd "$(mib_s "$rows_bytes" "$t")"
done

# ---- many small files -------------------------------------------------------
walk_root() { if [ "$1" = stepfs ]; then echo "$run/mnt/stepfs/source"; else echo "$run/mnt/$1"; fi; }
count_files() { find "$1" -type f | wc -l; }
last=0
time_find() { # METRIC SYSTEM DIR
	local t0 t n
	last=""
	alive "$2" || return 0
	t0=$(now_us); n=$(find "$3" -type f 2>>"$run/log/errors.log" | wc -l); t=$(($(now_us) - t0))
	checked "$2" "$1" || return 0
	last=$(secs $t)
	record "$1" "$2" "$last"
	[ "$r" = 1 ] && note "files_$1_$2" "$n"
	return 0
}
time_ls() { # METRIC SYSTEM DIR
	local t0 t
	last=""
	alive "$2" || return 0
	t0=$(now_us); ls -lR "$3" >/dev/null 2>>"$run/log/errors.log" || true; t=$(($(now_us) - t0))
	checked "$2" "$1" || return 0
	last=$(secs $t)
	record "$1" "$2" "$last"
}
for r in $(seq "$runs"); do
	say "metadata walks, run $r of $runs"
	for sys in stepfs squashfuse squashfuse_ll; do
		cold $sys meta
		time_find find_cold $sys "$(walk_root $sys)"
		find_cold=$last
		snapshot $sys find_cold
		time_find find_warm $sys "$(walk_root $sys)"
		cold $sys meta
		time_ls lslR_cold $sys "$(walk_root $sys)"
		lslR_cold=$last
		alive $sys && record rss_meta $sys "$(rss_mib $sys)"
		snapshot $sys lslR_cold
		time_ls lslR_warm $sys "$(walk_root $sys)"
		if [ $sys = stepfs ]; then
			# the whole mount: source/ plus the step views (about twice the files)
			cold $sys meta
			time_find find_cold_all $sys "$run/mnt/stepfs"
		else
			# a squashfs mount's whole tree is the same tree
			[ -n "$find_cold" ] && record find_cold_all $sys "$find_cold"
		fi
		if [ "$r" = 1 ]; then
			# reading all ~100,000 files takes minutes: first run only
			cold $sys meta
			find "$run/mnt/$sys" -path "$run/mnt/$sys/.stepfs" -prune -o -type f -print0 |
				xargs -0 cat >/dev/null 2>>"$run/log/errors.log" || true
			checked $sys meta_read_all && record rss_meta_all $sys "$(rss_mib $sys)"
			snapshot $sys meta_read_all
		fi
		unmount_dir "$run/mnt/$sys"
	done
done

# ---- report ----------------------------------------------------------------
note crashes "$crashes"
note load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "== results (median of $runs runs; stepfs/best = stepfs divided by the better of squashfuse and squashfuse_ll)"
python3 "$root/scripts/bench/report.py" "$results" "$info" --markdown "$run/table.md" | tee "$run/table.txt"
if [ -n "$out" ]; then
	{
		echo "## Results"
		echo
		echo "- command: \`$command_line\`"
		echo "- date: $started"
		echo "- machine: $cpu, nproc $threads, $(awk -F'\t' '$1 == "free" { print $2 }' "$info") (\`free -g\`), kernel $kernel"
		echo "- stepfs: $commit; $versions"
		echo "- load average (1, 5, 15 min) at the start: $(awk -F'\t' '$1 == "load_start" { print $2 }' "$info"), at the end: $(awk -F'\t' '$1 == "load_end" { print $2 }' "$info")"
		echo "- large-file cache: \`gen_cache.py --layout current ${data_args[*]}\` ($(awk -F'\t' '$1 == "data_source" { print $2 }' "$info"))"
		echo "- many-file cache: \`gen_cache.py --layout current ${meta_args[*]}\` ($(awk -F'\t' '$1 == "meta_source" { print $2 }' "$info"); $(awk -F'\t' '$1 == "meta_batch_files" { print $2 }' "$info") batch files)"
		echo "- read: \`$rows_rel\` ($(mib "$rows_bytes") MiB) and \`source/$batch_rel\` ($(mib "$batch_bytes") MiB)"
		if [ "$crashes" -gt 0 ]; then
			echo "- **daemon crashes: $crashes** (those samples are missing): $(awk -F'\t' '$1 ~ /^crash_/ { printf "%s%s", sep, $2; sep = "; " }' "$info")"
		fi
		echo "- stepfs store index / shards: large-file $(awk -F'\t' '$1 == "size_data_index" { print $2 }' "$info") / $(awk -F'\t' '$1 == "size_data_shards" { print $2 }' "$info") MiB, many-file $(awk -F'\t' '$1 == "size_meta_index" { print $2 }' "$info") / $(awk -F'\t' '$1 == "size_meta_shards" { print $2 }' "$info") MiB"
		echo
		cat "$run/table.md"
	} >"$out"
	echo "bench: wrote $out"
fi
if [ "$keep" = 1 ]; then
	echo "bench: kept $work (samples: $results, stepfs counters: $run/stats/)"
fi
