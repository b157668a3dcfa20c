/*
 * sf_cache.h - a bounded, thread-safe cache of decompressed frames.
 *
 * Entries are keyed by (shard, frame) and reference-counted: a buffer
 * returned by sf_cache_get() is pinned until sf_cache_put() releases it,
 * so eviction never frees memory another thread is still copying from.
 * When every entry is pinned the cache may exceed its budget by the pinned
 * bytes; it shrinks back as soon as they are released.
 *
 * Fills are single-flight: while one thread decompresses a frame, others
 * asking for the same frame wait for it instead of decompressing it again.
 * Buffers of evicted entries are kept (a few) and reused for the next miss,
 * so a busy cache does not keep faulting in fresh memory.
 *
 * Ownership: the cache owns every buffer. Callers borrow entry->data from
 * get() until the matching put().
 */
#ifndef SF_CACHE_H
#define SF_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "sf_error.h"

typedef struct sf_cache sf_cache;

typedef struct sf_cache_entry {
	uint32_t shard;
	uint32_t frame;
	size_t size;
	unsigned char *data;
	/* private */
	size_t capacity;      /* bytes allocated at data */
	unsigned refs;
	unsigned char filling; /* being decompressed by one thread */
	unsigned char failed;  /* the fill failed; unlinked, freed by the last ref */
	unsigned char consumed; /* released as read to its end: recycle first */
	unsigned char pooled;   /* data is a buffer of the cache's pool */
	struct sf_cache_entry *hash_next, *lru_prev, *lru_next;
} sf_cache_entry;

/* Fill dst (capacity bytes) with the frame's content; return SF_OK or an
   error described in err. Called without the cache lock held. */
typedef sf_err (*sf_cache_fill_fn)(void *context, uint32_t shard, uint32_t frame,
				   unsigned char *dst, size_t capacity,
				   sf_error *err);

typedef struct sf_cache_stats {
	uint64_t hits, misses, evictions, bytes_in_use, entries, budget_bytes;
	uint64_t bytes_decompressed;
	uint64_t shared_fills; /* gets that waited for another thread's fill */
	uint64_t recycled;     /* misses served with a reused buffer */
	uint64_t memory_bytes; /* frame buffers held: the pool's resident part
				  plus buffers from malloc, in use or not */
} sf_cache_stats;

/* budget_bytes 0 disables caching beyond pinned entries. */
sf_cache *sf_cache_create(size_t budget_bytes);

/*
 * Return the pinned entry for (shard, frame), filling it with fill() on a
 * miss (size is the frame's decompressed size). Returns NULL on failure
 * with err set; nothing is cached for a frame that failed.
 */
sf_cache_entry *sf_cache_get(sf_cache *cache, uint32_t shard, uint32_t frame,
			     size_t size, sf_cache_fill_fn fill, void *context,
			     sf_error *err);

/* The same for a sequential reader: an entry already released as
   consumed stays so (its requests may arrive out of order). */
sf_cache_entry *sf_cache_get_streaming(sf_cache *cache, uint32_t shard, uint32_t frame,
				       size_t size, sf_cache_fill_fn fill, void *context,
				       sf_error *err);

/* Release a pinned entry. NULL is a no-op. */
void sf_cache_put(sf_cache *cache, sf_cache_entry *entry);

/*
 * Release a pinned entry that a sequential reader has read to its end: it
 * goes to the cold end of the LRU list and its buffer is the first to be
 * reused by a later miss, even below the budget, so a streaming read cycles
 * through a few buffers instead of the whole budget. NULL is a no-op.
 */
void sf_cache_put_consumed(sf_cache *cache, sf_cache_entry *entry);

/* 1 when (shard, frame) is cached or being filled. */
int sf_cache_contains(sf_cache *cache, uint32_t shard, uint32_t frame);

/* 1 when decompressing (shard, frame) ahead of need is worth it: it is not
   cached nor being filled, and it is not among the last 64 frames that a
   streaming reader finished and whose buffers went (a hint for one of
   those comes too late). A frame filled again leaves that list. */
int sf_cache_wanted(sf_cache *cache, uint32_t shard, uint32_t frame);

void sf_cache_stats_get(sf_cache *cache, sf_cache_stats *stats);

/* Free the cache; every entry must have been released. NULL is a no-op. */
void sf_cache_free(sf_cache *cache);

#endif
