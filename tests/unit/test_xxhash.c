/*
 * test_xxhash.c - XXH64 against known vectors, streaming against one-shot
 * at every split point, and against libzstd's frame content checksum
 * (the low 32 bits of XXH64, seed 0, stored in the last 4 bytes).
 */
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "check.h"
#include "sf_xxhash.h"

static void fill_pattern(unsigned char *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
}

static void test_vectors(void)
{
	CHECK_EQ_U64(sf_xxh64("", 0, 0), 0xEF46DB3751D8E999ull, "XXH64 of empty input");
	CHECK_EQ_U64(sf_xxh64("a", 1, 0), 0xD24EC4F1A98C6E5Bull, "XXH64 of \"a\"");
	CHECK_EQ_U64(sf_xxh64("abc", 3, 0), 0x44BC2CF5AD770999ull, "XXH64 of \"abc\"");
}

/* Streaming must give the one-shot digest whatever the update sizes. */
static void test_streaming(void)
{
	enum { MAX_LEN = 200 };
	unsigned char data[MAX_LEN];
	int split_ok = 1, bytewise_ok = 1, triple_ok = 1, seed_ok = 1;

	fill_pattern(data, sizeof(data), 7);
	for (size_t len = 0; len <= MAX_LEN; len++) {
		uint64_t expected = sf_xxh64(data, len, 0);
		sf_xxh64_state state;

		for (size_t split = 0; split <= len; split++) {
			sf_xxh64_init(&state, 0);
			sf_xxh64_update(&state, data, split);
			sf_xxh64_update(&state, data + split, len - split);
			if (sf_xxh64_digest(&state) != expected)
				split_ok = 0;
		}
		for (size_t first = 0; first <= len; first += 5) {
			for (size_t second = first; second <= len; second += 3) {
				sf_xxh64_init(&state, 0);
				sf_xxh64_update(&state, data, first);
				sf_xxh64_update(&state, data + first, second - first);
				sf_xxh64_update(&state, data + second, len - second);
				if (sf_xxh64_digest(&state) != expected)
					triple_ok = 0;
			}
		}
		sf_xxh64_init(&state, 0);
		for (size_t i = 0; i < len; i++)
			sf_xxh64_update(&state, data + i, 1);
		if (sf_xxh64_digest(&state) != expected)
			bytewise_ok = 0;

		sf_xxh64_init(&state, 0x0123456789ABCDEFull);
		sf_xxh64_update(&state, data, len / 3);
		sf_xxh64_update(&state, data + len / 3, len - len / 3);
		if (sf_xxh64_digest(&state) != sf_xxh64(data, len, 0x0123456789ABCDEFull))
			seed_ok = 0;
	}
	CHECK(split_ok, "streaming in two parts matches one-shot at every split (0..200 bytes)");
	CHECK(triple_ok, "streaming in three parts matches one-shot");
	CHECK(bytewise_ok, "streaming one byte at a time matches one-shot");
	CHECK(seed_ok, "streaming with a seed matches one-shot with that seed");
	CHECK(sf_xxh64("abc", 3, 1) != sf_xxh64("abc", 3, 0), "the seed changes the hash");
}

static uint32_t zstd_frame_checksum(ZSTD_CCtx *cctx, const void *data, size_t len,
				    unsigned char *frame, size_t capacity, int *ok)
{
	size_t size = ZSTD_compress2(cctx, frame, capacity, data, len);

	if (ZSTD_isError(size) || size < 4) {
		*ok = 0;
		return 0;
	}
	return (uint32_t)frame[size - 4] | (uint32_t)frame[size - 3] << 8 |
	       (uint32_t)frame[size - 2] << 16 | (uint32_t)frame[size - 1] << 24;
}

static void test_against_zstd(void)
{
	size_t big = 3 * 1024 * 1024 + 17;
	unsigned char *data = malloc(big);
	size_t capacity = ZSTD_compressBound(big);
	unsigned char *frame = malloc(capacity);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	size_t lengths[] = {1000, 4096, 65535, 131072, 131073, 1048576, big};
	int ok = 1, matched = 1;

	if (!CHECK(data && frame && cctx, "buffers and zstd context")) {
		free(data);
		free(frame);
		ZSTD_freeCCtx(cctx);
		return;
	}
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
	fill_pattern(data, big, 42);
	/* Half random, half repetitive, so zstd both stores and compresses. */
	memset(data + big / 2, 'x', big / 4);
	for (size_t len = 0; len <= 300; len++) {
		uint32_t expected = zstd_frame_checksum(cctx, data, len, frame, capacity, &ok);

		if ((uint32_t)sf_xxh64(data, len, 0) != expected)
			matched = 0;
	}
	CHECK(ok && matched, "low 32 bits match zstd's content checksum for 0..300 bytes");
	ok = 1;
	matched = 1;
	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		uint32_t expected = zstd_frame_checksum(cctx, data, lengths[i], frame,
							capacity, &ok);
		sf_xxh64_state state;
		size_t done = 0, step = 1;

		if ((uint32_t)sf_xxh64(data, lengths[i], 0) != expected)
			matched = 0;
		sf_xxh64_init(&state, 0);
		while (done < lengths[i]) {
			size_t take = lengths[i] - done < step ? lengths[i] - done : step;

			sf_xxh64_update(&state, data + done, take);
			done += take;
			step = step * 3 + 1;
		}
		if ((uint32_t)sf_xxh64_digest(&state) != expected)
			matched = 0;
	}
	CHECK(ok && matched, "one-shot and streaming match zstd's checksum up to 3 MiB");
	ZSTD_freeCCtx(cctx);
	free(frame);
	free(data);
}

int main(void)
{
	test_vectors();
	test_streaming();
	test_against_zstd();
	return check_done();
}
