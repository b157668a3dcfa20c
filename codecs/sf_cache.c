#include "sf_cache.h"
#include "sf_util.h"

#include <pthread.h>
#include <stdlib.h>

#define BUCKETS_MIN 1024u

struct sf_cache {
	pthread_mutex_t lock;
	size_t budget_bytes;
	size_t bytes_in_use;
	sf_cache_entry **buckets;
	size_t bucket_count;
	size_t entry_count;
	/* LRU list of every entry, most recent at head. */
	sf_cache_entry *lru_head, *lru_tail;
	sf_cache_stats stats;
};

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

/* Evict unpinned entries from the cold end until within budget. */
static void evict(sf_cache *cache)
{
	sf_cache_entry *entry = cache->lru_tail;

	while (entry && cache->bytes_in_use > cache->budget_bytes) {
		sf_cache_entry *prev = entry->lru_prev;

		if (entry->refs == 0) {
			lru_unlink(cache, entry);
			hash_remove(cache, entry);
			cache->bytes_in_use -= entry->size;
			cache->entry_count--;
			cache->stats.evictions++;
			free(entry->data);
			free(entry);
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

sf_cache_entry *sf_cache_get(sf_cache *cache, uint32_t shard, uint32_t frame,
			     size_t size, sf_cache_fill_fn fill, void *context,
			     sf_error *err)
{
	sf_cache_entry *entry, *existing;

	pthread_mutex_lock(&cache->lock);
	entry = find(cache, shard, frame);
	if (entry) {
		entry->refs++;
		lru_unlink(cache, entry);
		lru_push_front(cache, entry);
		cache->stats.hits++;
		pthread_mutex_unlock(&cache->lock);
		return entry;
	}
	cache->stats.misses++;
	pthread_mutex_unlock(&cache->lock);

	/* Decompress outside the lock so other readers are not held up. */
	entry = calloc(1, sizeof(*entry));
	if (!entry || !(entry->data = malloc(size ? size : 1))) {
		free(entry);
		sf_error_set(err, SF_ERR_NOMEM, "cannot allocate %zu bytes for frame %u of shard %u",
			     size, frame, shard);
		return NULL;
	}
	entry->shard = shard;
	entry->frame = frame;
	entry->size = size;
	entry->refs = 1;
	if (fill(context, shard, frame, entry->data, size, err) != SF_OK) {
		free(entry->data);
		free(entry);
		return NULL;
	}

	pthread_mutex_lock(&cache->lock);
	cache->stats.bytes_decompressed += size;
	existing = find(cache, shard, frame);
	if (existing) {
		/* Another thread filled it meanwhile: use theirs. */
		existing->refs++;
		pthread_mutex_unlock(&cache->lock);
		free(entry->data);
		free(entry);
		return existing;
	}
	if (cache->entry_count + 1 > cache->bucket_count)
		grow_buckets(cache);
	{
		size_t b = bucket_of(cache, shard, frame);

		entry->hash_next = cache->buckets[b];
		cache->buckets[b] = entry;
	}
	lru_push_front(cache, entry);
	cache->entry_count++;
	cache->bytes_in_use += size;
	evict(cache);
	pthread_mutex_unlock(&cache->lock);
	return entry;
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
	stats->entries = cache->entry_count;
	pthread_mutex_unlock(&cache->lock);
}

void sf_cache_free(sf_cache *cache)
{
	sf_cache_entry *entry, *next;

	if (!cache)
		return;
	for (entry = cache->lru_head; entry; entry = next) {
		next = entry->lru_next;
		free(entry->data);
		free(entry);
	}
	free(cache->buckets);
	pthread_mutex_destroy(&cache->lock);
	free(cache);
}
