#!/usr/bin/env bash
# A pack that fails while its index writer thread still has index files to
# write leaves nothing behind: the writer is stopped before the temporary
# store is removed. A small LD_PRELOAD library makes one shard's fsync
# fail with EIO (a disk error at the end of the pack) and slows the index
# files' fsyncs and unlinks, so that the writer still has work queued while
# the failed pack cleans up (before the fix, files it created after the
# cleanup had listed the folder kept the folder alive). The same pack then
# succeeds without the library.
. "$(dirname "$0")/lib.sh"

cat >"$TMP/faults.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* FAULT_FSYNC: fsync of a file whose path holds it fails with EIO.
   FAULT_SLOW_MS: fsyncs and unlinks of index files take this long. */
static void path_of(int fd, char *out, size_t size)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, out, size - 1);
	out[n > 0 ? n : 0] = '\0';
}

static void slow_index(const char *path)
{
	const char *ms = getenv("FAULT_SLOW_MS");

	if (ms && strstr(path, "/index/"))
		usleep((useconds_t)atoi(ms) * 1000);
}

int fsync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	const char *fail = getenv("FAULT_FSYNC");
	char path[4096];

	path_of(fd, path, sizeof(path));
	if (fail && *fail && strstr(path, fail)) {
		errno = EIO;
		return -1;
	}
	slow_index(path);
	return real(fd);
}

int unlink(const char *path)
{
	int (*real)(const char *) = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");

	slow_index(path);
	return real(path);
}
C
check "build the fault library" ${CC:-cc} -shared -fPIC -o "$TMP/faults.so" "$TMP/faults.c" -ldl

# four executions of four steps: enough index files to keep the writer busy
$GEN --layout current --out "$TMP/src" --executions 4 --steps 4 >/dev/null
mkdir -p "$TMP/out"
for run in 1 2 3; do
	rc=0
	# a sanitizer build wants its runtime first; the library only wraps libc calls
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
		FAULT_FSYNC=shards/00000.zst FAULT_SLOW_MS=60 LD_PRELOAD="$TMP/faults.so" \
		"$STEPSTORE" pack --quiet --threads 2 "$TMP/src" "$TMP/out/store" 2>"$TMP/err" || rc=$?
	check "run $run: the pack fails with an I/O error, exit 4 (got $rc)" test "$rc" -eq 4
	check "run $run: and names the shard and the error" \
		grep -q "shards/00000.zst': fsync failed: Input/output error" "$TMP/err"
	left=$(ls -A "$TMP/out")
	check "run $run: nothing is left behind (found: '$left')" test -z "$left"
done
check "without the faults the same pack succeeds" "$STEPSTORE" pack --quiet --threads 2 "$TMP/src" "$TMP/out/store"
check "and verifies" "$STEPSTORE" verify "$TMP/out/store"
finish
