/* Unit tests of the arena: zeroed and aligned memory, blocks that grow,
   large arrays, rolling back to a mark, freeing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sf_arena.h"

static int all_zero(const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

int main(void)
{
	sf_arena arena = { 0 };
	unsigned char *small[5000], *big, *after;
	sf_arena_mark mark, empty = sf_arena_get_mark(&arena);
	size_t i;
	int ok_zero = 1, ok_align = 1, ok_kept = 1;

	CHECK(sf_arena_alloc(&arena, 0) == NULL, "a zero-byte allocation is refused");
	CHECK(sf_arena_alloc(&arena, SIZE_MAX - 4) == NULL, "an impossible size is refused");
	CHECK(arena.reserved == 0, "refusals map nothing");

	/* 5,000 allocations of 1 to 999 bytes: well past the first blocks */
	for (i = 0; i < 5000; i++) {
		size_t len = 1 + (i * 37) % 999;

		small[i] = sf_arena_alloc(&arena, len);
		if (!small[i] || !all_zero(small[i], len))
			ok_zero = 0;
		if (small[i] && ((uintptr_t)small[i] % 16) != 0)
			ok_align = 0;
		if (small[i])
			memset(small[i], (int)(i % 251) + 1, len);
	}
	CHECK(ok_zero, "memory comes zeroed");
	CHECK(ok_align, "every allocation is 16-byte aligned");
	for (i = 0; i < 5000; i++) {
		size_t len = 1 + (i * 37) % 999, k;

		for (k = 0; k < len && ok_kept; k++)
			if (small[i][k] != (unsigned char)(i % 251 + 1))
				ok_kept = 0;
	}
	CHECK(ok_kept, "no allocation overlaps another");
	CHECK(arena.used >= 5000 && arena.reserved >= arena.used, "used and reserved counted");

	/* an array larger than any block gets a block of its own */
	mark = sf_arena_get_mark(&arena);
	big = sf_arena_alloc(&arena, (size_t)5 << 20);
	CHECK(big && all_zero(big, (size_t)5 << 20), "a 5 MiB array, zeroed");
	if (big)
		memset(big, 0xab, (size_t)5 << 20);
	after = sf_arena_alloc(&arena, 100);
	CHECK(after && all_zero(after, 100), "allocations go on after a large array");
	if (after)
		memset(after, 0xcd, 100);

	/* rolling back gives back what came after the mark, and only that */
	sf_arena_rollback(&arena, mark);
	CHECK(arena.used == mark.used, "rollback restores the count");
	CHECK(small[4999][0] == (unsigned char)(4999 % 251 + 1), "allocations before the mark are kept");
	after = sf_arena_alloc(&arena, 4000);
	CHECK(after && all_zero(after, 4000), "memory reused after a rollback is zeroed again");

	/* within one block: the same bytes come back, cleared */
	mark = sf_arena_get_mark(&arena);
	big = sf_arena_alloc(&arena, 300);
	if (big)
		memset(big, 0xee, 300);
	sf_arena_rollback(&arena, mark);
	after = sf_arena_alloc(&arena, 300);
	CHECK(after && after == big && all_zero(after, 300), "a rollback inside a block clears the bytes it gives back");

	sf_arena_rollback(&arena, empty);
	CHECK(arena.used == 0 && arena.reserved == 0 && arena.head == NULL, "rollback to an empty mark unmaps all");
	CHECK(sf_arena_alloc(&arena, 64) != NULL, "the arena is usable after that");
	sf_arena_free(&arena);
	CHECK(arena.used == 0 && arena.reserved == 0 && arena.head == NULL, "free unmaps all");
	sf_arena_free(&arena);
	CHECK(1, "freeing twice is harmless");
	return check_done();
}
