/*
 * sf_index.h - the compact index documents of format 2.0.
 *
 * docs/FORMAT.md ("Index documents, version 2.0") describes the encoding:
 * a zstd frame holding JSON text in which every folder lists its entries
 * as arrays, with names relative to the folder, times and segment offsets
 * coded as differences from the entry before.
 *
 * The writer side takes the entries in the shape of format 1.0 (objects
 * with "path" or "path_hex", "type", "mode", "mtime", ...), so that
 * `stepstore pack` and `stepstore upgrade` share one encoder. The reader
 * side lives in sf_store.c, which owns the nodes it fills.
 *
 * Ownership: returned buffers are malloc'd and freed by the caller; the
 * entries passed to sf_index_encode() are borrowed.
 */
#ifndef SF_INDEX_H
#define SF_INDEX_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sf_arena.h"
#include "sf_error.h"
#include "sf_store.h"

/* zstd level of index documents. On 51,792 small files (a 4.4 MB index
   text) level 9 takes 0.25 s and gives 1,037 KB; level 19 gives 856 KB
   but takes 4.8 s of one core, more than the rest of the pack's
   compression, for 0.7% of the store. */
#define SF_INDEX_LEVEL 9

/* Type codes, the first element of every 2.0 entry. */
#define SF_INDEX_FILE "f"
#define SF_INDEX_DIR "d"
#define SF_INDEX_SYMLINK "l"

/* One entry to encode, with what format 1.0 said of it (pointers borrowed). */
typedef struct sf_index_entry {
	const char *path;              /* raw bytes, relative to the index's folder */
	int type;                      /* SF_NODE_FILE, SF_NODE_DIR, SF_NODE_SYMLINK;
					  anything else fails the encoding */
	int has_mode;                  /* else 0644 for files, 0755 for folders */
	uint32_t mode;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	const sf_segment *segments;    /* files: shard, shard_offset, length, subst */
	size_t segment_count;
	const char *xxh64;             /* files: 16 hex digits, or NULL */
	const char *target;            /* symlinks: raw bytes, or NULL */
	int has_index;                 /* folders: contents in index `index` */
	long long index;
} sf_index_entry;

/* Encode count entries as the JSON text of a 2.0 index (as below). */
sf_err sf_index_encode_entries(const sf_index_entry *entries, size_t count, int keep_hashes,
				char **text, size_t *len, sf_error *err);

/*
 * Encode a 1.0-shaped "entries" array as the JSON text of a 2.0 index.
 * keep_hashes: 0 drops every "xxh64" (views derived from source files).
 * Folders that lead to an entry without having one of their own are
 * written as folders with mode 0555 and a null time ("the time of the
 * folder above"), as format 1.0 reads them. Children are written in
 * natural order (digit runs compared as numbers), which keeps the time
 * differences of batch_N files small. On success *text is a malloc'd
 * NUL-terminated string of *len bytes.
 */
sf_err sf_index_encode(json_t *entries, int keep_hashes, char **text, size_t *len,
		       sf_error *err);

/* Compress text into one zstd frame (content size and checksum set). */
sf_err sf_index_compress(const char *text, size_t len, void **out, size_t *out_len,
			 sf_error *err);

/*
 * Decompress one zstd frame that states its content size: a stored 2.0
 * index (limit SF_MAX_METADATA_BYTES) or a 2.2 shard dictionary (limit
 * SF_SEEK_MAX_FRAME_BYTES). shown names it in messages. Refuses content
 * larger than limit before allocating, and frames without a content
 * size. *text is NUL-terminated: taken from scratch when it is given
 * (freed with it), else malloc'd.
 */
sf_err sf_index_decompress(const void *data, size_t len, size_t limit, const char *shown, sf_arena *scratch,
			   char **text, size_t *text_len, sf_error *err);

#endif
