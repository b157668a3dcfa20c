#include "sf_xxhash.h"

#include <string.h>

/* The five primes of the XXH64 specification. */
#define PRIME64_1 0x9E3779B185EBCA87ull
#define PRIME64_2 0xC2B2AE3D27D4EB4Full
#define PRIME64_3 0x165667B19E3779F9ull
#define PRIME64_4 0x85EBCA77C2B2AE63ull
#define PRIME64_5 0x27D4EB2F165667C5ull

static inline uint64_t rotl64(uint64_t value, unsigned bits)
{
	return (value << bits) | (value >> (64 - bits));
}

/* The spec reads all words little-endian, whatever the host order. */
static inline uint64_t read_le64(const unsigned char *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	       (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 |
	       (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
	       (uint64_t)p[7] << 56;
}

static inline uint32_t read_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t xxh64_round(uint64_t acc, uint64_t lane)
{
	acc += lane * PRIME64_2;
	acc = rotl64(acc, 31);
	return acc * PRIME64_1;
}

static inline uint64_t xxh64_merge(uint64_t hash, uint64_t acc)
{
	hash ^= xxh64_round(0, acc);
	return hash * PRIME64_1 + PRIME64_4;
}

static void xxh64_stripe(uint64_t v[4], const unsigned char *stripe)
{
	v[0] = xxh64_round(v[0], read_le64(stripe));
	v[1] = xxh64_round(v[1], read_le64(stripe + 8));
	v[2] = xxh64_round(v[2], read_le64(stripe + 16));
	v[3] = xxh64_round(v[3], read_le64(stripe + 24));
}

static void xxh64_reset_lanes(uint64_t v[4], uint64_t seed)
{
	v[0] = seed + PRIME64_1 + PRIME64_2;
	v[1] = seed + PRIME64_2;
	v[2] = seed;
	v[3] = seed - PRIME64_1;
}

static uint64_t xxh64_converge(const uint64_t v[4])
{
	uint64_t hash = rotl64(v[0], 1) + rotl64(v[1], 7) + rotl64(v[2], 12) +
			rotl64(v[3], 18);

	hash = xxh64_merge(hash, v[0]);
	hash = xxh64_merge(hash, v[1]);
	hash = xxh64_merge(hash, v[2]);
	return xxh64_merge(hash, v[3]);
}

/* Consumes the last (len < 32) bytes and applies the final avalanche. */
static uint64_t xxh64_finish(uint64_t hash, const unsigned char *p, size_t len)
{
	while (len >= 8) {
		hash ^= xxh64_round(0, read_le64(p));
		hash = rotl64(hash, 27) * PRIME64_1 + PRIME64_4;
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		hash ^= (uint64_t)read_le32(p) * PRIME64_1;
		hash = rotl64(hash, 23) * PRIME64_2 + PRIME64_3;
		p += 4;
		len -= 4;
	}
	while (len > 0) {
		hash ^= (uint64_t)*p * PRIME64_5;
		hash = rotl64(hash, 11) * PRIME64_1;
		p++;
		len--;
	}
	hash ^= hash >> 33;
	hash *= PRIME64_2;
	hash ^= hash >> 29;
	hash *= PRIME64_3;
	hash ^= hash >> 32;
	return hash;
}

uint64_t sf_xxh64(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	size_t left = len;
	uint64_t hash;

	if (left >= 32) {
		uint64_t v[4];

		xxh64_reset_lanes(v, seed);
		while (left >= 32) {
			xxh64_stripe(v, p);
			p += 32;
			left -= 32;
		}
		hash = xxh64_converge(v);
	} else {
		hash = seed + PRIME64_5;
	}
	hash += (uint64_t)len;
	return xxh64_finish(hash, p, left);
}

void sf_xxh64_init(sf_xxh64_state *state, uint64_t seed)
{
	memset(state, 0, sizeof(*state));
	state->seed = seed;
	xxh64_reset_lanes(state->v, seed);
}

void sf_xxh64_update(sf_xxh64_state *state, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (len == 0)
		return;
	state->total_len += (uint64_t)len;
	if (state->buffered > 0) {
		size_t room = sizeof(state->buffer) - state->buffered;
		size_t take = len < room ? len : room;

		memcpy(state->buffer + state->buffered, p, take);
		state->buffered += (unsigned)take;
		p += take;
		len -= take;
		if (state->buffered < sizeof(state->buffer))
			return;
		xxh64_stripe(state->v, state->buffer);
		state->buffered = 0;
	}
	while (len >= 32) {
		xxh64_stripe(state->v, p);
		p += 32;
		len -= 32;
	}
	if (len > 0) {
		memcpy(state->buffer, p, len);
		state->buffered = (unsigned)len;
	}
}

uint64_t sf_xxh64_digest(const sf_xxh64_state *state)
{
	uint64_t hash;

	/* Short inputs never fill a stripe, so the lanes are not used. */
	if (state->total_len >= 32)
		hash = xxh64_converge(state->v);
	else
		hash = state->seed + PRIME64_5;
	hash += state->total_len;
	return xxh64_finish(hash, state->buffer, state->buffered);
}
