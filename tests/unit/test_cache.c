/* Unit tests of the frame cache: hits, eviction order, pinning, failures. */
#include <string.h>

#include "check.h"
#include "sf_cache.h"

static int fills;

static sf_err fill(void *context, uint32_t shard, uint32_t frame, unsigned char *dst,
		   size_t capacity, sf_error *err)
{
	(void)context;
	fills++;
	if (frame == 999)
		return sf_error_set(err, SF_ERR_CORRUPT, "frame %u of shard %u: damaged", frame, shard);
	memset(dst, (int)(shard * 16 + frame), capacity);
	return SF_OK;
}

int main(void)
{
	sf_cache *cache = sf_cache_create(4096);
	sf_cache_entry *a, *b, *pinned, *e;
	sf_cache_stats stats;
	sf_error err;
	uint32_t i;

	CHECK(cache != NULL, "create");
	a = sf_cache_get(cache, 1, 2, 1024, fill, NULL, &err);
	CHECK(a && a->data[0] == 18 && a->size == 1024, "miss fills the frame");
	sf_cache_put(cache, a);
	b = sf_cache_get(cache, 1, 2, 1024, fill, NULL, &err);
	CHECK(b == a && fills == 1, "second get is a hit");
	sf_cache_put(cache, b);

	/* pin one entry, then push far more than the budget through */
	pinned = sf_cache_get(cache, 7, 7, 1024, fill, NULL, &err);
	for (i = 0; i < 50; i++) {
		e = sf_cache_get(cache, 2, i, 1024, fill, NULL, &err);
		sf_cache_put(cache, e);
	}
	sf_cache_stats_get(cache, &stats);
	CHECK(stats.bytes_in_use <= 4096, "eviction keeps the cache within budget");
	CHECK(pinned->data[0] == (unsigned char)(7 * 16 + 7) && pinned->data[1023] == (unsigned char)(7 * 16 + 7),
	      "a pinned entry survives eviction untouched");
	CHECK(sf_cache_contains(cache, 7, 7), "the pinned entry is still cached");
	CHECK(!sf_cache_contains(cache, 1, 2), "the least recently used entry was evicted");
	CHECK(sf_cache_contains(cache, 2, 49), "the most recent entry is cached");
	sf_cache_put(cache, pinned);

	e = sf_cache_get(cache, 3, 999, 100, fill, NULL, &err);
	CHECK(e == NULL && err.code == SF_ERR_CORRUPT && strstr(err.message, "frame 999"),
	      "a failed fill returns NULL with the error");
	CHECK(!sf_cache_contains(cache, 3, 999), "a failed frame is not cached");

	sf_cache_stats_get(cache, &stats);
	CHECK_EQ_U64(stats.hits, 1, "one hit counted");
	CHECK(stats.misses >= 52 && stats.evictions > 0, "misses and evictions counted");
	sf_cache_free(cache);
	sf_cache_free(NULL);

	/* a zero budget caches nothing beyond pinned entries */
	cache = sf_cache_create(0);
	a = sf_cache_get(cache, 0, 0, 64, fill, NULL, &err);
	sf_cache_put(cache, a);
	CHECK(!sf_cache_contains(cache, 0, 0), "zero budget: released entries are dropped");
	sf_cache_free(cache);
	return check_done();
}
