#include "sf_cache.h"
#include "sf_arena.h"
#include "sf_util.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define BUCKETS_MIN 1024u
/* Buffers of evicted entries kept for reuse (a few frames' worth). */
#define SPARE_MAX 8u
/* Consumed entries kept before their buffers are reused: a little slack
   for read-ahead requests that arrive after the reader passed a frame. */
#define CONSUMED_KEEP 8u
/* Frames a streaming reader finished and whose buffers went: a read-ahead
   hint for one of them arrives too late (the reader decompressed it
   itself) and is skipped, see sf_cache_wanted. */
#define GONE_SLOTS 64u

/*
 * Frame buffers of 64 KiB to 2 MiB come from a pool of 2 MiB chunks that
 * the kernel may back with huge pages. On virtual machines a fresh 4 KiB
 * page costs 10-15 us to fault in, so a fresh 256 KiB buffer cost more
 * than decompressing the frame into it; a cold mount fills its cache with
 * such buffers. Pool buffers are powers of two (a frame is charged at its
 * buffer's size), kept on a free list per size when their entry goes, and
 * unmapped with the cache. The pool stops growing at the budget (huge
 * pages are resident as a whole, so the pool's size is its memory); past
 * that, buffers come from malloc as smaller ones do. So that free buffers
 * of one size do not sit beside malloc'd ones of another (a store read
 * first with small frames, then with large ones), a malloc first gives
 * as many free pool bytes back to the kernel (MADV_DONTNEED: "dropped";
 * such a buffer is still used again, it only faults in anew).
 *
 * Even a huge page can be slow to fault in: when the host has not backed
 * the guest's memory, touching 2 MiB took 5 ms here against 0.15 ms. So
 * once the pool grows, a helper thread maps and touches the next chunks
 * (POOL_RESERVE of them, within the budget) while the readers work, and
 * the pool grows into those; a cold random reader no longer waits on a
 * fresh chunk every eighth 256 KiB frame.
 */
#define POOL_CHUNK SF_HUGE_PAGE
#define POOL_RESERVE 2u
#define POOL_MIN_SHIFT 16u  /* 64 KiB */
#define POOL_MAX_SHIFT 21u  /* 2 MiB */
#define POOL_CLASSES (POOL_MAX_SHIFT - POOL_MIN_SHIFT + 1)

typedef struct pool_chunk {
	struct pool_chunk *next;
	void *map;
} pool_chunk;

struct sf_cache {
	pthread_mutex_t lock;
	pthread_cond_t filled; /* broadcast when a fill ends, well or not */
	size_t budget_bytes;
	size_t bytes_in_use;
	sf_cache_entry **buckets;
	size_t bucket_count;
	size_t entry_count;
	/* LRU list of every entry, most recent at head. */
	sf_cache_entry *lru_head, *lru_tail;
	/* Unused buffers (as entries with data and capacity), via hash_next. */
	sf_cache_entry *spare;
	unsigned spare_count;
	size_t consumed_count; /* entries in the table marked consumed */
	sf_cache_stats stats;
	/* the buffer pool: free buffers by size, the chunk being carved */
	void *pool_free[POOL_CLASSES];
	void *pool_dropped[POOL_CLASSES];
	pool_chunk *pool_chunks;
	unsigned char *carve;
	size_t carve_left, pool_bytes;
	size_t pool_dropped_bytes;  /* free buffers given back to the kernel */
	size_t malloc_bytes;        /* buffers from malloc, in use or spare */
	struct { uint32_t shard, frame; uint8_t used; } gone[GONE_SLOTS];
	unsigned gone_next;
	/* chunks touched ahead of need by the helper (in pool_bytes already) */
	pool_chunk *reserved;
	unsigned reserved_count;
	int helper;                 /* 0 none yet, 1 running, -1 cannot start */
	int helper_stop, helper_wanted;
	pthread_t helper_thread;
	pthread_cond_t helper_wake;  /* to the helper: chunks wanted, or stop */
};

/* The pool's size class for a buffer of at least size bytes, or -1. */
static int pool_class(size_t size)
{
	unsigned shift = POOL_MIN_SHIFT;

	if (size < ((size_t)1 << POOL_MIN_SHIFT) || size > POOL_CHUNK)
		return -1;
	while (((size_t)1 << shift) < size)
		shift++;
	return (int)(shift - POOL_MIN_SHIFT);
}

/* A mapped chunk, touched so that it is resident, or NULL. */
static pool_chunk *chunk_new(int touch)
{
	pool_chunk *chunk = malloc(sizeof(*chunk));
	size_t offset;

	if (!chunk)
		return NULL;
	chunk->map = sf_map_huge(POOL_CHUNK);
	if (!chunk->map) {
		free(chunk);
		return NULL;
	}
	for (offset = 0; touch && offset < POOL_CHUNK; offset += 4096)
		((volatile unsigned char *)chunk->map)[offset] = 0;
	return chunk;
}

static void *pool_helper_main(void *arg)
{
	sf_cache *cache = arg;

	pthread_mutex_lock(&cache->lock);
	while (!cache->helper_stop) {
		pool_chunk *chunk;

		if (!cache->helper_wanted || cache->reserved_count >= POOL_RESERVE ||
		    cache->pool_bytes + POOL_CHUNK > cache->budget_bytes) {
			cache->helper_wanted = 0;
			pthread_cond_wait(&cache->helper_wake, &cache->lock);
			continue;
		}
		/* touched without holding any of the budget: the readers'
		   own growth comes first, and a chunk that no longer fits
		   when it is ready goes back */
		pthread_mutex_unlock(&cache->lock);
		chunk = chunk_new(1);
		pthread_mutex_lock(&cache->lock);
		if (!chunk) {
			cache->helper_wanted = 0;
		} else if (cache->pool_bytes + POOL_CHUNK > cache->budget_bytes) {
			pthread_mutex_unlock(&cache->lock);
			sf_unmap_huge(chunk->map, POOL_CHUNK);
			free(chunk);
			pthread_mutex_lock(&cache->lock);
		} else {
			cache->pool_bytes += POOL_CHUNK;
			chunk->next = cache->reserved;
			cache->reserved = chunk;
			cache->reserved_count++;
		}
	}
	pthread_mutex_unlock(&cache->lock);
	return NULL;
}

/* Ask the helper for chunks ahead of need, starting it the first time.
   Its signals are blocked: they belong to the program's own threads.
   Lock held. */
static void pool_helper_wake(sf_cache *cache)
{
	if (cache->helper == 0) {
		sigset_t all, old;

		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		cache->helper = pthread_create(&cache->helper_thread, NULL, pool_helper_main, cache) == 0 ? 1 : -1;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (cache->helper == 1) {
		cache->helper_wanted = 1;
		pthread_cond_signal(&cache->helper_wake);
	}
}

/* The next 2 MiB chunk to carve: one the helper touched, or a new one.
   Lock held, and never released here: the caller has just missed and not
   yet published its placeholder (another thread would miss the same frame
   meanwhile), and has given up the current chunk (another thread would
   start carving a new one). */
static int pool_grow(sf_cache *cache)
{
	pool_chunk *chunk = cache->reserved;

	if (chunk) {
		cache->reserved = chunk->next;
		cache->reserved_count--;
	} else {
		if (cache->pool_bytes + POOL_CHUNK > cache->budget_bytes)
			return 0;
		chunk = chunk_new(0);
		if (!chunk)
			return 0;
		cache->pool_bytes += POOL_CHUNK;
	}
	chunk->next = cache->pool_chunks;
	cache->pool_chunks = chunk;
	cache->carve = chunk->map;
	cache->carve_left = POOL_CHUNK;
	pool_helper_wake(cache);
	return 1;
}

static void pool_give(sf_cache *cache, unsigned char *p, size_t capacity);

/* The pool is full and size k has no free buffer: cut one out of a larger
   free buffer (resident ones first), whose other halves go to the lists of
   their sizes (dropped halves stay dropped). NULL when there is none. */
static unsigned char *pool_split(sf_cache *cache, int k, size_t *capacity)
{
	int j, dropped;

	for (dropped = 0; dropped < 2; dropped++) {
		for (j = k + 1; j < (int)POOL_CLASSES; j++) {
			void **list = dropped ? &cache->pool_dropped[j] : &cache->pool_free[j];
			unsigned char *p = *list;
			size_t bytes = (size_t)1 << (POOL_MIN_SHIFT + (unsigned)j);

			if (!p)
				continue;
			memcpy(list, p, sizeof(void *));
			/* keep the first 2^k, hand back the upper halves */
			while (j > k) {
				void **half_list;

				bytes >>= 1;
				j--;
				half_list = dropped ? &cache->pool_dropped[j] : &cache->pool_free[j];
				memcpy(p + bytes, half_list, sizeof(void *));
				*half_list = p + bytes;
			}
			if (dropped)
				cache->pool_dropped_bytes -= bytes;
			*capacity = bytes;
			return p;
		}
	}
	return NULL;
}

/* A pool buffer for size bytes, its size in *capacity; NULL when the size
   is not pooled or the pool is full. Lock held. */
static unsigned char *pool_take(sf_cache *cache, size_t size, size_t *capacity)
{
	int k = pool_class(size);
	size_t bytes;
	unsigned char *p;

	if (k < 0)
		return NULL;
	bytes = (size_t)1 << (POOL_MIN_SHIFT + (unsigned)k);
	if (cache->pool_free[k]) {
		p = cache->pool_free[k];
		memcpy(&cache->pool_free[k], p, sizeof(void *));
		*capacity = bytes;
		return p;
	}
	if (cache->pool_dropped[k]) {
		p = cache->pool_dropped[k];
		memcpy(&cache->pool_dropped[k], p, sizeof(void *));
		cache->pool_dropped_bytes -= bytes;
		*capacity = bytes;
		return p;
	}
	if (cache->carve_left < bytes) {
		/* the chunk's tail (a multiple of the smallest size) goes to the
		   free lists of the sizes it holds, largest first */
		while (cache->carve_left >= ((size_t)1 << POOL_MIN_SHIFT)) {
			size_t piece = (size_t)1 << POOL_MAX_SHIFT;

			while (piece > cache->carve_left)
				piece >>= 1;
			pool_give(cache, cache->carve, piece);
			cache->carve += piece;
			cache->carve_left -= piece;
		}
		if (!pool_grow(cache))
			return pool_split(cache, k, capacity);
	}
	p = cache->carve;
	cache->carve += bytes;
	cache->carve_left -= bytes;
	*capacity = bytes;
	return p;
}

static void pool_give(sf_cache *cache, unsigned char *p, size_t capacity)
{
	int k = pool_class(capacity);

	memcpy(p, &cache->pool_free[k], sizeof(void *));
	cache->pool_free[k] = p;
}

/* Give at least `need` bytes of free pool buffers back to the kernel, the
   largest first, before that much is taken from malloc. Lock held. */
static void pool_shed(sf_cache *cache, size_t need)
{
	size_t shed = 0;
	int k;

	for (k = (int)POOL_CLASSES - 1; k >= 0 && shed < need; k--) {
		size_t bytes = (size_t)1 << (POOL_MIN_SHIFT + (unsigned)k);

		while (cache->pool_free[k] && shed < need) {
			unsigned char *p = cache->pool_free[k];

			memcpy(&cache->pool_free[k], p, sizeof(void *));
			(void)madvise(p, bytes, MADV_DONTNEED);
			memcpy(p, &cache->pool_dropped[k], sizeof(void *));
			cache->pool_dropped[k] = p;
			cache->pool_dropped_bytes += bytes;
			shed += bytes;
		}
	}
}

static inline size_t bucket_of(const sf_cache *cache, uint32_t shard, uint32_t frame)
{
	uint64_t key = ((uint64_t)shard << 32) | frame;

	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	key ^= key >> 33;
	return (size_t)(key & (cache->bucket_count - 1));
}


sf_cache *sf_cache_create(size_t budget_bytes)
{
	sf_cache *cache = calloc(1, sizeof(*cache));

	if (!cache)
		return NULL;
	cache->bucket_count = BUCKETS_MIN;
	cache->buckets = calloc(cache->bucket_count, sizeof(*cache->buckets));
	if (!cache->buckets) {
		free(cache);
		return NULL;
	}
	cache->budget_bytes = budget_bytes;
	cache->stats.budget_bytes = budget_bytes;
	sf_mutex_init(&cache->lock);
	pthread_cond_init(&cache->filled, NULL);
	pthread_cond_init(&cache->helper_wake, NULL);
	return cache;
}

static void lru_unlink(sf_cache *cache, sf_cache_entry *entry)
{
	if (entry->lru_prev)
		entry->lru_prev->lru_next = entry->lru_next;
	else
		cache->lru_head = entry->lru_next;
	if (entry->lru_next)
		entry->lru_next->lru_prev = entry->lru_prev;
	else
		cache->lru_tail = entry->lru_prev;
	entry->lru_prev = entry->lru_next = NULL;
}

static void lru_push_front(sf_cache *cache, sf_cache_entry *entry)
{
	entry->lru_prev = NULL;
	entry->lru_next = cache->lru_head;
	if (cache->lru_head)
		cache->lru_head->lru_prev = entry;
	cache->lru_head = entry;
	if (!cache->lru_tail)
		cache->lru_tail = entry;
}

static void hash_remove(sf_cache *cache, sf_cache_entry *entry)
{
	sf_cache_entry **link = &cache->buckets[bucket_of(cache, entry->shard, entry->frame)];

	while (*link && *link != entry)
		link = &(*link)->hash_next;
	if (*link)
		*link = entry->hash_next;
}

static void grow_buckets(sf_cache *cache)
{
	size_t new_count = cache->bucket_count * 2;
	sf_cache_entry **fresh = calloc(new_count, sizeof(*fresh));
	sf_cache_entry *entry;

	if (!fresh)
		return; /* keep longer chains rather than fail */
	free(cache->buckets);
	cache->buckets = fresh;
	cache->bucket_count = new_count;
	for (entry = cache->lru_head; entry; entry = entry->lru_next) {
		size_t b = bucket_of(cache, entry->shard, entry->frame);

		entry->hash_next = cache->buckets[b];
		cache->buckets[b] = entry;
	}
}

static void entry_free(sf_cache *cache, sf_cache_entry *entry)
{
	if (entry->pooled) {
		pool_give(cache, entry->data, entry->capacity);
	} else {
		if (entry->data)
			cache->malloc_bytes -= entry->capacity;
		free(entry->data);
	}
	free(entry);
}

/* Keep an unlinked entry's buffer for reuse, or free it. Lock held. */
static void retire(sf_cache *cache, sf_cache_entry *entry)
{
	if (cache->spare_count < SPARE_MAX && entry->data) {
		entry->hash_next = cache->spare;
		cache->spare = entry;
		cache->spare_count++;
	} else {
		entry_free(cache, entry);
	}
}

static void unlink_entry(sf_cache *cache, sf_cache_entry *entry)
{
	lru_unlink(cache, entry);
	hash_remove(cache, entry);
	cache->bytes_in_use -= entry->capacity;
	cache->entry_count--;
	if (entry->consumed) {
		unsigned slot = cache->gone_next++ % GONE_SLOTS;

		cache->consumed_count--;
		cache->gone[slot].shard = entry->shard;
		cache->gone[slot].frame = entry->frame;
		cache->gone[slot].used = 1;
	}
	entry->consumed = 0;
}

/* 1 when gone slot i holds (shard, frame). Lock held. */
static int gone_is(const sf_cache *cache, unsigned i, uint32_t shard, uint32_t frame)
{
	return cache->gone[i].used && cache->gone[i].shard == shard && cache->gone[i].frame == frame;
}

/* A frame is being filled again: it is no longer gone. Lock held. */
static void gone_forget(sf_cache *cache, uint32_t shard, uint32_t frame)
{
	unsigned i;

	for (i = 0; i < GONE_SLOTS; i++)
		if (gone_is(cache, i, shard, frame))
			cache->gone[i].used = 0;
}

/* Evict unpinned entries from the cold end until within budget. */
static void evict(sf_cache *cache)
{
	sf_cache_entry *entry = cache->lru_tail;

	while (entry && cache->bytes_in_use > cache->budget_bytes) {
		sf_cache_entry *prev = entry->lru_prev;

		if (entry->refs == 0) {
			unlink_entry(cache, entry);
			cache->stats.evictions++;
			retire(cache, entry);
		}
		entry = prev;
	}
}

static sf_cache_entry *find(sf_cache *cache, uint32_t shard, uint32_t frame)
{
	sf_cache_entry *entry = cache->buckets[bucket_of(cache, shard, frame)];

	while (entry && (entry->shard != shard || entry->frame != frame))
		entry = entry->hash_next;
	return entry;
}

/*
 * A buffer of at least size bytes without allocating: a spare one, else the
 * coldest consumed entry that nobody holds (consumed entries gather at the
 * cold end, so the walk stops at the first one that is not). The returned
 * entry is unlinked; its data is reused. Lock held.
 */
static sf_cache_entry *reusable(sf_cache *cache, size_t size)
{
	sf_cache_entry **link = &cache->spare, *entry;

	for (; *link; link = &(*link)->hash_next) {
		if ((*link)->capacity >= size) {
			entry = *link;
			*link = entry->hash_next;
			cache->spare_count--;
			return entry;
		}
	}
	if (cache->consumed_count <= CONSUMED_KEEP)
		return NULL;
	for (entry = cache->lru_tail; entry && entry->consumed; entry = entry->lru_prev) {
		if (entry->refs == 0 && entry->capacity >= size) {
			unlink_entry(cache, entry);
			cache->stats.evictions++;
			return entry;
		}
	}
	return NULL;
}

/* A cached entry is used again: most recent, and no longer consumed (so
   the consumed ones stay together at the cold end). Lock held. */
static void touch(sf_cache *cache, sf_cache_entry *entry)
{
	if (entry->consumed) {
		entry->consumed = 0;
		cache->consumed_count--;
	}
	lru_unlink(cache, entry);
	lru_push_front(cache, entry);
}

/* The last reference of a failed entry frees it. Lock held. */
static void unref(sf_cache *cache, sf_cache_entry *entry)
{
	entry->refs--;
	if (entry->refs == 0 && entry->failed)
		retire(cache, entry);
}

static sf_cache_entry *get(sf_cache *cache, uint32_t shard, uint32_t frame, size_t size,
			   sf_cache_fill_fn fill, void *context, int streaming, sf_error *err)
{
	sf_cache_entry *entry, *buffer;
	unsigned char *data;
	size_t capacity;
	unsigned char pooled;
	int fresh = 0;
	sf_err rc;

	pthread_mutex_lock(&cache->lock);
	for (;;) {
		entry = find(cache, shard, frame);
		if (!entry)
			break;
		entry->refs++;
		if (!entry->filling) {
			/* A streaming reader finishing a frame it passed already
			   (requests arrive out of order) leaves it consumed. */
			if (!(streaming && entry->consumed))
				touch(cache, entry);
			cache->stats.hits++;
			pthread_mutex_unlock(&cache->lock);
			return entry;
		}
		/* Another thread is decompressing it: wait for that. */
		cache->stats.shared_fills++;
		while (entry->filling)
			pthread_cond_wait(&cache->filled, &cache->lock);
		if (!entry->failed) {
			/* the filler may have released it as consumed meanwhile */
			if (!(streaming && entry->consumed))
				touch(cache, entry);
			pthread_mutex_unlock(&cache->lock);
			return entry;
		}
		/* Theirs failed: try once more ourselves, to report the error. */
		unref(cache, entry);
	}
	cache->stats.misses++;
	gone_forget(cache, shard, frame);

	/* A placeholder in the table, so that other threads wait for this fill. */
	buffer = reusable(cache, size);
	if (buffer) {
		cache->stats.recycled++;
		entry = buffer;
		data = entry->data;
		capacity = entry->capacity;
		pooled = entry->pooled;
	} else {
		entry = calloc(1, sizeof(*entry));
		capacity = 0;
		data = entry ? pool_take(cache, size, &capacity) : NULL;
		pooled = data != NULL;
		if (!entry) {
			pthread_mutex_unlock(&cache->lock);
			sf_error_set(err, SF_ERR_NOMEM, "cannot allocate a cache entry for frame %u of shard %u",
				     frame, shard);
			return NULL;
		}
	}
	memset(entry, 0, sizeof(*entry));
	/* charged at its capacity: a reused buffer may be larger than size */
	entry->capacity = capacity ? capacity : (size ? size : 1);
	entry->pooled = pooled;
	if (!data)
		pool_shed(cache, entry->capacity);  /* malloc takes as much below */
	entry->shard = shard;
	entry->frame = frame;
	entry->size = size;
	entry->refs = 1;
	entry->filling = 1;
	if (cache->entry_count + 1 > cache->bucket_count)
		grow_buckets(cache);
	{
		size_t b = bucket_of(cache, shard, frame);

		entry->hash_next = cache->buckets[b];
		cache->buckets[b] = entry;
	}
	lru_push_front(cache, entry);
	cache->entry_count++;
	cache->bytes_in_use += entry->capacity;
	pthread_mutex_unlock(&cache->lock);

	/* Allocate and decompress outside the lock so other readers go on. */
	if (!data) {
		data = malloc(entry->capacity);
		fresh = data != NULL;
	}
	if (!data)
		rc = sf_error_set(err, SF_ERR_NOMEM, "cannot allocate %zu bytes for frame %u of shard %u",
				  size, frame, shard);
	else
		rc = fill(context, shard, frame, data, size, err);

	pthread_mutex_lock(&cache->lock);
	entry->data = data;
	if (fresh)
		cache->malloc_bytes += entry->capacity;
	entry->filling = 0;
	if (rc != SF_OK) {
		/* Nothing is cached for a frame that failed. */
		unlink_entry(cache, entry);
		entry->failed = 1;
		unref(cache, entry);
	} else {
		cache->stats.bytes_decompressed += size;
		evict(cache);
	}
	pthread_cond_broadcast(&cache->filled);
	pthread_mutex_unlock(&cache->lock);
	return rc == SF_OK ? entry : NULL;
}

sf_cache_entry *sf_cache_get(sf_cache *cache, uint32_t shard, uint32_t frame,
			     size_t size, sf_cache_fill_fn fill, void *context,
			     sf_error *err)
{
	return get(cache, shard, frame, size, fill, context, 0, err);
}

sf_cache_entry *sf_cache_get_streaming(sf_cache *cache, uint32_t shard, uint32_t frame,
				       size_t size, sf_cache_fill_fn fill, void *context,
				       sf_error *err)
{
	return get(cache, shard, frame, size, fill, context, 1, err);
}

void sf_cache_put(sf_cache *cache, sf_cache_entry *entry)
{
	if (!entry)
		return;
	pthread_mutex_lock(&cache->lock);
	entry->refs--;
	if (entry->refs == 0 && cache->bytes_in_use > cache->budget_bytes)
		evict(cache);
	pthread_mutex_unlock(&cache->lock);
}

void sf_cache_put_consumed(sf_cache *cache, sf_cache_entry *entry)
{
	if (!entry)
		return;
	pthread_mutex_lock(&cache->lock);
	entry->refs--;
	if (!entry->consumed) {
		sf_cache_entry *after;

		/* Into the run of consumed entries at the cold end, as its newest:
		   the run is recycled oldest first. */
		lru_unlink(cache, entry);
		after = cache->lru_tail;
		while (after && after->consumed)
			after = after->lru_prev;
		entry->lru_prev = after;
		entry->lru_next = after ? after->lru_next : cache->lru_head;
		if (entry->lru_next)
			entry->lru_next->lru_prev = entry;
		else
			cache->lru_tail = entry;
		if (after)
			after->lru_next = entry;
		else
			cache->lru_head = entry;
		entry->consumed = 1;
		cache->consumed_count++;
	}
	if (entry->refs == 0 && cache->bytes_in_use > cache->budget_bytes)
		evict(cache);
	pthread_mutex_unlock(&cache->lock);
}

int sf_cache_wanted(sf_cache *cache, uint32_t shard, uint32_t frame)
{
	int wanted;
	unsigned i;

	pthread_mutex_lock(&cache->lock);
	wanted = find(cache, shard, frame) == NULL;
	for (i = 0; wanted && i < GONE_SLOTS; i++)
		if (gone_is(cache, i, shard, frame))
			wanted = 0;
	pthread_mutex_unlock(&cache->lock);
	return wanted;
}

int sf_cache_contains(sf_cache *cache, uint32_t shard, uint32_t frame)
{
	int found;

	pthread_mutex_lock(&cache->lock);
	found = find(cache, shard, frame) != NULL;
	pthread_mutex_unlock(&cache->lock);
	return found;
}

void sf_cache_stats_get(sf_cache *cache, sf_cache_stats *stats)
{
	pthread_mutex_lock(&cache->lock);
	*stats = cache->stats;
	stats->bytes_in_use = cache->bytes_in_use;
	stats->memory_bytes = cache->pool_bytes - cache->pool_dropped_bytes + cache->malloc_bytes;
	stats->entries = cache->entry_count;
	pthread_mutex_unlock(&cache->lock);
}

void sf_cache_free(sf_cache *cache)
{
	sf_cache_entry *entry, *next;

	if (!cache)
		return;
	if (cache->helper == 1) {
		pthread_mutex_lock(&cache->lock);
		cache->helper_stop = 1;
		pthread_cond_signal(&cache->helper_wake);
		pthread_mutex_unlock(&cache->lock);
		pthread_join(cache->helper_thread, NULL);
	}
	while (cache->reserved) {
		pool_chunk *chunk = cache->reserved;

		cache->reserved = chunk->next;
		chunk->next = cache->pool_chunks;
		cache->pool_chunks = chunk;
	}
	for (entry = cache->lru_head; entry; entry = next) {
		next = entry->lru_next;
		entry_free(cache, entry);
	}
	for (entry = cache->spare; entry; entry = next) {
		next = entry->hash_next;
		entry_free(cache, entry);
	}
	while (cache->pool_chunks) {
		pool_chunk *chunk = cache->pool_chunks;

		cache->pool_chunks = chunk->next;
		sf_unmap_huge(chunk->map, POOL_CHUNK);
		free(chunk);
	}
	free(cache->buckets);
	pthread_cond_destroy(&cache->helper_wake);
	pthread_cond_destroy(&cache->filled);
	pthread_mutex_destroy(&cache->lock);
	free(cache);
}
