/*
 * sf_pack.h - turning a cache directory into a store.
 *
 * sf_pack() walks SRC, recognises the cache layout, and writes a store:
 * every file of SRC under source/ byte for byte, plus the step views
 * (manager_meta.json, step_N/, by-name/) described in docs/VIEWS.md.
 * Rows are stored once per step in the step's own shard and every view
 * that shows them points at the same bytes.
 *
 * Memory does not grow with the size of the input files: JSON is scanned
 * through a fixed window and copied through fixed buffers. It grows only
 * with the number of files and batches (their index entries). With
 * dictionaries (auto, the default, or always) each open shard also holds
 * back up to SF_SEEK_DICT_SAMPLE_BYTES (8 MiB) of content to train on,
 * and step shards stay open until the end of the pack.
 *
 * The store is written into a temporary directory beside STORE
 * (".NAME.stepstore-tmp-PID"), fsync'ed, and renamed into place; on any
 * failure it is removed, and stale temporaries of killed runs are removed
 * by the next pack to the same target. SRC is only ever read.
 */
#ifndef SF_PACK_H
#define SF_PACK_H

#include <stdint.h>

#include "sf_error.h"

typedef struct sf_pack_options {
	int level;              /* zstd level (default SF_DEFAULT_LEVEL) */
	size_t frame_bytes;     /* content bytes per frame (SF_DEFAULT_FRAME_BYTES) */
	int threads;            /* compression threads (default: online CPUs); with
				   2 or more, whole batch files of different steps
				   are also scanned on two threads */
	int long_distance;      /* zstd long-distance matching */
	int dictionary;         /* enum sf_seek_dictionary: per-shard trained
				   dictionaries (default SF_SEEK_DICT_AUTO) */
	uint64_t shard_bytes;   /* roll a step's shard over past this many bytes (at least frame_bytes) */
	const char *layout;     /* "auto" (NULL), "current", "plain" */
	int max_depth;          /* JSON nesting limit (SF_JSCAN_DEFAULT_DEPTH) */
	int progress;           /* draw a progress bar on stderr */
	/* Set to nonzero (e.g. from a signal handler, with __atomic_store_n)
	   to abort the pack; both packing threads read it atomically. */
	volatile int *cancel;
} sf_pack_options;

typedef struct sf_pack_summary {
	const char *layout;
	uint64_t files, dirs, symlinks;
	uint64_t source_bytes;
	uint64_t steps, batches, rows;
	uint64_t store_bytes;
} sf_pack_summary;

void sf_pack_options_init(sf_pack_options *options);

sf_err sf_pack(const char *src, const char *store, const sf_pack_options *options,
	       sf_pack_summary *summary, sf_error *err);

#endif
