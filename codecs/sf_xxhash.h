/*
 * sf_xxhash.h - XXH64, the 64-bit xxHash, written from its public spec.
 *
 * zstd frames and the zstd seekable format both use the low 32 bits of
 * XXH64(content, seed 0) as their checksum; stepfs also uses the full
 * 64 bits to fingerprint every source file in a store.
 */
#ifndef SF_XXHASH_H
#define SF_XXHASH_H

#include <stddef.h>
#include <stdint.h>

/* One-shot hash of len bytes. */
uint64_t sf_xxh64(const void *data, size_t len, uint64_t seed);

/* Streaming state: caller-owned, no release needed. */
typedef struct sf_xxh64_state {
	uint64_t v[4];
	uint64_t total_len;
	unsigned char buffer[32];
	unsigned buffered;
	uint64_t seed;
} sf_xxh64_state;

void sf_xxh64_init(sf_xxh64_state *state, uint64_t seed);
void sf_xxh64_update(sf_xxh64_state *state, const void *data, size_t len);
uint64_t sf_xxh64_digest(const sf_xxh64_state *state);

#endif
