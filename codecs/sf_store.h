/*
 * sf_store.h - opening a store and reading the trees it describes.
 *
 * A store (docs/FORMAT.md) is a directory with a root document
 * (store.json), index documents (index/NNNNN.json) and seekable zstd
 * shards (shards/NNNNN.zst). Every file the store shows is a list of
 * segments, each a byte range of one shard's content, optionally served
 * with newlines substituted. Opening a store reads store.json only; an
 * index is parsed the first time something below its directory is looked
 * up, and a shard's seek table the first time one of its frames is read.
 *
 * Thread safety: after sf_store_open() every function may be called from
 * many threads at once.
 *
 * Ownership: nodes belong to the store; callers never free them. Without
 * a metadata budget (sf_store_options.metadata_bytes 0) a node stays valid
 * until sf_store_free(). With one, the store drops the least recently used
 * loaded index when the loaded ones hold more than the budget, and the
 * nodes it made go with it: a node is then valid only while its index is
 * pinned (sf_store_get, sf_store_hold, sf_store_open_dir). A dropped index
 * loads again when one of its nodes is asked for by inode number, and its
 * nodes come back with the same inode numbers. The calls that take no pin
 * (sf_store_load_dir, sf_store_child on an unpinned folder,
 * sf_store_lookup, sf_store_verify, unpack) are for stores opened without
 * a budget.
 *
 * Inode numbers are stable: the root is 1, and a node made by index I is
 * ((I + 1) << 32) | (its position in the order the index lists it).
 */
#ifndef SF_STORE_H
#define SF_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "sf_cache.h"
#include "sf_error.h"

typedef enum sf_node_type {
	SF_NODE_DIR = 1,
	SF_NODE_FILE = 2,
	SF_NODE_SYMLINK = 3
} sf_node_type;

/* 24 bytes: a store of 100,000 files holds several hundred thousand. A
   segment's offset in its file is the sum of the lengths before it; the
   store keeps those sums beside the array only for files of many
   segments (see segment_at in sf_store.c). */
typedef struct sf_segment {
	uint64_t shard_offset;  /* offset in the shard's decompressed content */
	uint64_t length;
	uint32_t shard;
	uint8_t subst;          /* SF_SUBST_* */
} sf_segment;

typedef struct sf_node {
	/* Fields ordered by size: a store holds one per file and folder, so
	   every byte counts (100,000 nodes are common). */
	char *name;                 /* last path component ("" for the root);
				       nodes other than the root carry it in
				       the same allocation */
	sf_segment *segments;
	char *target;               /* symlink target */
	struct sf_node *parent;
	struct sf_node **children;  /* sorted by name (byte order) once loaded */
	uint64_t size;              /* files: content bytes; symlinks: target length */
	uint64_t ino;
	uint64_t xxh64;             /* fingerprint of a file's content, when recorded */
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t mode;              /* permission bits (07777) */
	uint32_t segment_count;
	uint32_t child_count;
	uint32_t child_capacity;
	int32_t index_id;           /* >= 0: children come from that index, lazily */
	sf_err load_error;          /* the lazy index failed to load */
	uint8_t type;               /* sf_node_type */
	uint8_t has_xxh64;
	uint8_t loaded;             /* children are complete */
	uint8_t lazy_children;      /* some child folder has an index of its own */
} sf_node;

typedef struct sf_store sf_store;

typedef struct sf_store_options {
	size_t cache_bytes;         /* decompressed-frame cache budget; 0: default 64 MiB */
	size_t metadata_bytes;      /* loaded-index budget; 0: indexes are never dropped */
	int index_scanner_only;     /* read 2.0 indexes with the streaming scanner
				       alone, not the direct reader first (tests
				       compare the two) */
} sf_store_options;

typedef struct sf_index_stats {
	uint64_t loads;             /* index loads that succeeded (a reload counts again) */
	uint64_t failures;          /* index loads that failed */
	uint64_t drops;             /* loaded indexes dropped to stay within the budget */
	uint64_t resident;          /* indexes loaded now */
	uint64_t bytes;             /* memory their nodes hold now */
	uint64_t budget_bytes;      /* 0: none */
	uint64_t scanned;           /* 2.0 index reads the direct reader left to the
				       streaming scanner (escapes, hex names, new
				       keys, damage); 0 for what the packer writes */
} sf_index_stats;

typedef struct sf_shard_info {
	const char *file;           /* path relative to the store */
	const char *kind;           /* "step", "files", "raw" */
	const char *label;          /* step name or other label */
	uint64_t content_bytes;
	uint64_t compressed_bytes;
	uint32_t frames;
} sf_shard_info;

/* Open the store in directory path. Refuses an unknown major version.
   While open, the store holds a shared flock(2) on its store.json: a
   process that wants to remove the store takes LOCK_EX | LOCK_NB first. */
sf_err sf_store_open(sf_store **out, const char *path,
		     const sf_store_options *options, sf_error *err);
void sf_store_free(sf_store *store);

/* The store's root node (always loaded). */
const sf_node *sf_store_root(sf_store *store);

/* store.json as parsed (a borrowed jansson json_t *, never NULL). */
void *sf_store_document(const sf_store *store);

uint32_t sf_store_shard_count(const sf_store *store);
void sf_store_shard_info(const sf_store *store, uint32_t shard, sf_shard_info *info);
uint32_t sf_store_index_count(const sf_store *store);

/*
 * Make sure dir's children are loaded (parsing its index on first use).
 * Returns the load error on a damaged index, every time it is asked.
 */
sf_err sf_store_load_dir(sf_store *store, const sf_node *dir, sf_error *err);

/* The same, for a load ahead of need: an index that failed before gives
   SF_OK here (its error was reported then), and so does one that another
   thread is loading (without waiting for it); a new failure is returned.
   Loads of different folders run at once. */
sf_err sf_store_load_dir_ahead(sf_store *store, const sf_node *dir, sf_error *err);

/* 1 when dir's children come from an index not loaded (nor failed) yet:
   what a reader may load ahead of need. */
int sf_store_dir_pending(const sf_node *dir);

/*
 * Pins (see the top of this file). sf_store_get finds a node by inode
 * number, loading the indexes on its path that were dropped, and pins
 * the node's index. It finds the nodes of indexes whose folder has been
 * made since the store was opened (the inode numbers this open has
 * handed out, as a mount does); an index never reached in this open is
 * not found (SF_ERR_NOTFOUND), even though its numbers are the same from
 * one open to the next. sf_store_hold pins the index of a node the caller
 * already holds by another pin; sf_store_release undoes either. The root
 * needs no pin (holding and releasing it do nothing).
 * sf_store_open_dir loads a held folder's children like sf_store_load_dir
 * and pins the index they live in, so that they stay valid until
 * sf_store_close_dir. A pinned index keeps the indexes above it loaded.
 */
sf_err sf_store_get(sf_store *store, uint64_t ino, const sf_node **out, sf_error *err);
void sf_store_hold(sf_store *store, const sf_node *node);
void sf_store_release(sf_store *store, const sf_node *node);
sf_err sf_store_open_dir(sf_store *store, const sf_node *dir, sf_error *err);
void sf_store_close_dir(sf_store *store, const sf_node *dir);

/* Child of a loaded directory by name; NULL when absent. */
const sf_node *sf_store_child(const sf_node *dir, const char *name);

/* Resolve a '/'-separated path from the root (no symlinks followed). */
sf_err sf_store_lookup(sf_store *store, const char *path, const sf_node **out,
		       sf_error *err);

/*
 * Read up to len bytes of file node at offset into buf; *got receives the
 * count (short only at end of file). Decompresses only the frames that
 * cover the range, through the cache. A damaged frame gives SF_ERR_CORRUPT
 * with the shard, frame and file named in err.
 */
sf_err sf_store_read(sf_store *store, const sf_node *file, uint64_t offset,
		     size_t len, void *buf, size_t *got, sf_error *err);

/* The same for a caller that reads the file front to back: the frames it
   reads to their end are released as consumed (sf_cache_put_consumed), so
   a long sequential read reuses a few cache buffers instead of filling the
   whole cache. */
sf_err sf_store_read_sequential(sf_store *store, const sf_node *file, uint64_t offset,
				size_t len, void *buf, size_t *got, sf_error *err);

/* Where file byte `offset` lives: its shard and shard content offset.
   Returns 0 past the end of the file. */
int sf_store_locate(const sf_node *file, uint64_t offset, uint32_t *shard,
		    uint64_t *shard_offset);

/* Decompress into the cache, ahead of need, the frame holding
   (shard, shard_offset) unless sf_cache_wanted says it is not worth it
   (cached, being filled, or just finished by a streaming reader).
   Errors are ignored. */
void sf_store_prefetch(sf_store *store, uint32_t shard, uint64_t shard_offset);

/* Content offset where the frame after the one holding shard_offset
   begins; UINT64_MAX when there is none. */
uint64_t sf_store_next_frame_offset(sf_store *store, uint32_t shard, uint64_t shard_offset);

/* Path of a node from the root, into buf ("" for the root). */
void sf_store_node_path(const sf_node *node, char *buf, size_t size);

void sf_store_cache_stats(sf_store *store, sf_cache_stats *stats);
void sf_store_index_stats(sf_store *store, sf_index_stats *stats);

/*
 * Check every frame of every shard and every index: checksums, sizes and
 * segment references. Each problem is reported through report() (one call
 * per problem, a complete message naming shard, frame and affected files);
 * returns the number of problems found (0: the store is intact).
 */
typedef void (*sf_verify_report_fn)(void *context, const char *message);
uint64_t sf_store_verify(sf_store *store, sf_verify_report_fn report,
			 void *context);

#endif
