/* Unit tests of the frame cache: hits, eviction order, pinning, failures. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

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

/* Get and release `count` frames of `size` bytes of one shard, frame
   i % distinct at step i; the number that did not hold their own bytes. */
static uint32_t cycle(sf_cache *cache, uint32_t shard, uint32_t count, uint32_t distinct, size_t size)
{
	uint32_t i, bad = 0;

	for (i = 0; i < count; i++) {
		sf_error err;
		sf_cache_entry *e = sf_cache_get(cache, shard, i % distinct, size, fill, NULL, &err);

		if (!e || e->data[0] != (unsigned char)(shard * 16 + i % distinct) || e->data[size - 1] != e->data[0])
			bad++;
		if (e)
			sf_cache_put(cache, e);
	}
	return bad;
}

/* A slow fill, so that other threads arrive while it runs. */
static int slow_fills;
static pthread_mutex_t slow_lock = PTHREAD_MUTEX_INITIALIZER;

static sf_err slow_fill(void *context, uint32_t shard, uint32_t frame, unsigned char *dst,
			size_t capacity, sf_error *err)
{
	(void)context;
	pthread_mutex_lock(&slow_lock);
	slow_fills++;
	pthread_mutex_unlock(&slow_lock);
	usleep(100 * 1000);
	if (frame == 999)
		return sf_error_set(err, SF_ERR_CORRUPT, "frame %u of shard %u: damaged", frame, shard);
	memset(dst, (int)(shard * 16 + frame), capacity);
	return SF_OK;
}

typedef struct getter {
	sf_cache *cache;
	uint32_t frame;
	int ok;
} getter;

static void *get_and_check(void *arg)
{
	getter *g = arg;
	sf_error err;
	sf_cache_entry *e = sf_cache_get(g->cache, 5, g->frame, 512, slow_fill, NULL, &err);

	g->ok = e ? e->data[0] == (unsigned char)(5 * 16 + g->frame) && e->data[511] == e->data[0]
		  : err.code == SF_ERR_CORRUPT && strstr(err.message, "damaged") != NULL;
	sf_cache_put(g->cache, e);
	return NULL;
}

/* Eight threads ask for one frame at once: one decompression, eight copies. */
static void test_single_flight(uint32_t frame, int expect_fills, const char *what)
{
	sf_cache *cache = sf_cache_create(1 << 20);
	pthread_t threads[8];
	getter getters[8];
	sf_cache_stats stats;
	int i, all_ok = 1;

	slow_fills = 0;
	for (i = 0; i < 8; i++) {
		getters[i] = (getter){ cache, frame, 0 };
		pthread_create(&threads[i], NULL, get_and_check, &getters[i]);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(threads[i], NULL);
		all_ok &= getters[i].ok;
	}
	sf_cache_stats_get(cache, &stats);
	CHECK(all_ok, what);
	if (expect_fills >= 0)
		CHECK_EQ_U64(slow_fills, (uint64_t)expect_fills, "fills for one frame asked by 8 threads");
	else
		CHECK(slow_fills >= 1 && slow_fills <= 8, "a failing frame: each waiter may retry, never more");
	CHECK(stats.shared_fills + stats.hits + stats.misses >= 8, "every get counted");
	sf_cache_free(cache);
}

/* A streaming reader: consumed entries are recycled, the cache stays small. */
static void test_consumed(void)
{
	sf_cache *cache = sf_cache_create(1 << 20); /* room for 64 entries of 16 KiB */
	sf_cache_stats stats;
	sf_cache_entry *e, *kept;
	sf_error err;
	uint32_t i, bad = 0;

	fills = 0;
	kept = sf_cache_get(cache, 9, 1000, 16384, fill, NULL, &err);
	sf_cache_put(cache, kept); /* an ordinary entry: must survive the stream */
	for (i = 0; i < 200; i++) {
		e = sf_cache_get(cache, 9, i, 16384, fill, NULL, &err);
		if (!e || e->data[0] != (unsigned char)(9 * 16 + i) || e->data[16383] != e->data[0])
			bad++;
		sf_cache_put_consumed(cache, e);
	}
	CHECK_EQ_U64(bad, 0, "streaming: each frame holds its own bytes");
	sf_cache_stats_get(cache, &stats);
	CHECK(stats.bytes_in_use <= 12 * 16384, "streaming 200 frames keeps a few buffers, not the budget");
	CHECK(stats.recycled >= 180, "their buffers are reused");
	CHECK(sf_cache_contains(cache, 9, 1000), "a frame read normally is not pushed out by the stream");
	CHECK(sf_cache_contains(cache, 9, 199) && sf_cache_contains(cache, 9, 192),
	      "the last consumed frames stay for late readers");
	e = sf_cache_get(cache, 9, 199, 16384, fill, NULL, &err);
	CHECK(e && e->data[0] == (unsigned char)(9 * 16 + 199), "a consumed frame read again is a hit");
	sf_cache_put(cache, e);
	CHECK_EQ_U64(fills, 201, "no frame decompressed twice");
	sf_cache_free(cache);
}

/* Frames of 64 KiB and more live in pooled power-of-two buffers: charged at
   that size, never overlapping, reused after eviction, and the pool stops
   growing at the budget (larger demand falls back to malloc). */
static void test_pool(void)
{
	sf_cache *cache = sf_cache_create(4 << 20); /* sixteen 256 KiB frames, two chunks */
	sf_cache_entry *e, *held[24];
	sf_cache_stats stats;
	sf_error err;
	uint32_t i, bad = 0;

	e = sf_cache_get(cache, 3, 0, 100 * 1024, fill, NULL, &err);
	sf_cache_stats_get(cache, &stats);
	if (!CHECK(e && stats.bytes_in_use == 128 * 1024, "a 100 KiB frame is charged at its 128 KiB buffer"))
		printf("#   bytes in use %" PRIu64 "\n", stats.bytes_in_use);
	sf_cache_put(cache, e);
	bad = cycle(cache, 4, 100, 30, 256 * 1024);
	CHECK_EQ_U64(bad, 0, "256 KiB frames cycled through a 4 MiB cache hold their own bytes");
	sf_cache_stats_get(cache, &stats);
	CHECK(stats.bytes_in_use <= (4 << 20), "the cache stays within its budget");
	/* 24 pinned frames: half again the budget, past what the pool may map */
	for (i = 0; i < 24; i++)
		held[i] = sf_cache_get(cache, 5, i, 256 * 1024, fill, NULL, &err);
	for (i = 0; i < 24; i++) {
		uint32_t k;

		if (!held[i] || held[i]->data[0] != (unsigned char)(5 * 16 + i) ||
		    held[i]->data[256 * 1024 - 1] != held[i]->data[0])
			bad++;
		for (k = 0; k < i; k++)
			if (held[i] && held[k] && held[i]->data < held[k]->data + 256 * 1024 &&
			    held[k]->data < held[i]->data + 256 * 1024)
				bad++;
	}
	CHECK_EQ_U64(bad, 0, "pinned frames beyond the pool's size get their own, separate buffers");
	for (i = 0; i < 24; i++)
		if (held[i])
			sf_cache_put(cache, held[i]);
	e = sf_cache_get(cache, 6, 0, 3 << 20, fill, NULL, &err);
	CHECK(e && e->data[0] == (unsigned char)(6 * 16) && e->data[(3 << 20) - 1] == e->data[0],
	      "a frame larger than a pool chunk comes from malloc");
	if (e)
		sf_cache_put(cache, e);
	sf_cache_free(cache);
}

/* Frames of one size, then of another: free pool buffers of the first size
   must not sit beside malloc'd buffers of the second. Small after large
   cuts the large free buffers; large after small gives the small ones back
   to the kernel before taking as much from malloc. */
static void test_pool_sizes(void)
{
	const size_t budget = 8 << 20;
	sf_cache *cache = sf_cache_create(budget);
	sf_cache_stats stats;
	uint32_t bad;

	bad = cycle(cache, 1, 400, 400, 64 * 1024);
	sf_cache_stats_get(cache, &stats);
	CHECK(stats.memory_bytes <= budget + (2 << 20), "64 KiB frames: buffers held within the budget");
	bad += cycle(cache, 2, 40, 40, 2 << 20);
	sf_cache_stats_get(cache, &stats);
	if (!CHECK(stats.memory_bytes <= budget + (4 << 20), "then 2 MiB frames: still within the budget and a frame or two"))
		printf("#   memory %" PRIu64 " bytes\n", stats.memory_bytes);
	bad += cycle(cache, 3, 400, 400, 100 * 1024);
	sf_cache_stats_get(cache, &stats);
	if (!CHECK(stats.memory_bytes <= budget + (4 << 20), "then 100 KiB frames: cut from the free 2 MiB buffers"))
		printf("#   memory %" PRIu64 " bytes\n", stats.memory_bytes);
	CHECK_EQ_U64(bad, 0, "every frame of every size holds its own bytes");
	sf_cache_free(cache);
}

/* Read-ahead hints: a frame a streaming reader finished, whose buffer went
   since, is not worth decompressing ahead again, until it is read again. */
static void test_wanted(void)
{
	sf_cache *cache = sf_cache_create(256 * 1024); /* sixteen 16 KiB frames */
	sf_cache_entry *e;
	sf_error err;
	uint32_t i, bad;

	CHECK(sf_cache_wanted(cache, 3, 0), "a frame never seen is wanted");
	for (i = 0; i < 20; i++) {
		e = sf_cache_get_streaming(cache, 3, i, 16384, fill, NULL, &err);
		if (e)
			sf_cache_put_consumed(cache, e);
	}
	CHECK(!sf_cache_contains(cache, 3, 0) && !sf_cache_wanted(cache, 3, 0),
	      "a frame the stream finished, its buffer reused since, is not wanted");
	CHECK(!sf_cache_wanted(cache, 3, 19), "a cached frame is not wanted");
	CHECK(sf_cache_wanted(cache, 3, 25), "a frame ahead of the stream is wanted");
	e = sf_cache_get(cache, 3, 0, 16384, fill, NULL, &err);
	if (e)
		sf_cache_put(cache, e);
	bad = cycle(cache, 4, 40, 40, 16384); /* pushes frame 0 out, not consumed */
	CHECK(!sf_cache_contains(cache, 3, 0) && sf_cache_wanted(cache, 3, 0),
	      "read again and then evicted, it is wanted again");
	CHECK_EQ_U64(bad, 0, "those frames hold their own bytes");
	sf_cache_free(cache);
}

/* Several threads asking for the same frames while the pool grows: each
   frame is decompressed once (a miss publishes its placeholder before the
   cache lock is let go). */
static int counted_fills;

static sf_err counted_fill(void *context, uint32_t shard, uint32_t frame, unsigned char *dst,
			   size_t capacity, sf_error *err)
{
	(void)context;
	(void)err;
	__atomic_fetch_add(&counted_fills, 1, __ATOMIC_RELAXED);
	memset(dst, (int)(shard * 16 + frame), capacity);
	return SF_OK;
}

static void *get_many(void *arg)
{
	sf_cache *cache = arg;
	uint32_t i;

	for (i = 0; i < 400; i++) {
		sf_error err;
		sf_cache_entry *e = sf_cache_get(cache, 9, i, 64 * 1024, counted_fill, NULL, &err);

		if (e)
			sf_cache_put(cache, e);
	}
	return NULL;
}

static void test_growth_single_flight(void)
{
	int round, extra = 0;

	for (round = 0; round < 5; round++) {
		sf_cache *cache = sf_cache_create(64 << 20);
		pthread_t threads[4];
		int t, started = 0;

		counted_fills = 0;
		for (t = 0; t < 4; t++)
			if (pthread_create(&threads[t], NULL, get_many, cache) == 0)
				started++;
		while (started > 0)
			pthread_join(threads[--started], NULL);
		extra += counted_fills - 400;
		sf_cache_free(cache);
	}
	CHECK_EQ_U64(extra, 0, "4 threads, 400 frames, a growing pool: no frame decompressed twice (5 rounds)");
}

/* The pool's memory once the helper thread is idle: the same figure twice,
   100 ms apart (at most 10 s). */
static uint64_t settled_memory(sf_cache *cache)
{
	sf_cache_stats stats;
	uint64_t last = UINT64_MAX;
	int i;

	for (i = 0; i < 100; i++) {
		sf_cache_stats_get(cache, &stats);
		if (stats.memory_bytes == last)
			break;
		last = stats.memory_bytes;
		usleep(100 * 1000);
	}
	return stats.memory_bytes;
}

/* Once the pool grows, a helper thread touches the next two chunks ahead of
   need, never past the budget, and stops with the cache. */
static void test_pool_helper(void)
{
	const uint64_t chunk = 2 << 20;
	sf_cache *cache = sf_cache_create(16 << 20);
	uint64_t memory;
	uint32_t bad;

	bad = cycle(cache, 7, 1, 1, 256 * 1024);
	memory = settled_memory(cache);
	CHECK_EQ_U64(memory, 3 * chunk, "the first chunk, then two touched ahead of need");
	bad += cycle(cache, 7, 200, 100, 256 * 1024);
	memory = settled_memory(cache);
	/* a miss allocates before its fill evicts: one frame may come from
	   malloc when the pool is full and no buffer is spare yet */
	if (!CHECK(memory >= 16 << 20 && memory <= (16 << 20) + 256 * 1024,
		   "a cache filled past its budget: the pool at the budget, not past it"))
		printf("#   memory %" PRIu64 " bytes\n", memory);
	sf_cache_free(cache);

	cache = sf_cache_create(3 << 20);
	bad += cycle(cache, 8, 1, 1, 64 * 1024);
	memory = settled_memory(cache);
	CHECK_EQ_U64(memory, chunk, "a 3 MiB budget: no second chunk reserved past it");
	bad += cycle(cache, 8, 100, 50, 64 * 1024);
	CHECK_EQ_U64(bad, 0, "frames carved from touched chunks hold their own bytes");
	sf_cache_free(cache);
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

	test_single_flight(3, 1, "single flight: every thread gets the frame's bytes");
	test_single_flight(999, -1, "single flight: every thread gets the error of a failed frame");
	test_consumed();
	test_pool();
	test_pool_sizes();
	test_pool_helper();
	test_wanted();
	test_growth_single_flight();
	return check_done();
}
