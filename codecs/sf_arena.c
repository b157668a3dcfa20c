/* sf_arena: see sf_arena.h. */

#include "sf_arena.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_ALIGN 16
#define ARENA_FIRST_BLOCK ((size_t)64 << 10)

struct sf_arena_block {
	sf_arena_block *prev;
	size_t map_len;         /* what munmap takes back, from the block itself */
	size_t size;            /* usable bytes after the header */
	size_t used;
};

#define HEADER_BYTES ((sizeof(sf_arena_block) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

static unsigned char *block_data(sf_arena_block *b)
{
	return (unsigned char *)b + HEADER_BYTES;
}

void *sf_map_huge(size_t len)
{
	size_t map_len, head, tail;
	unsigned char *map, *start;

	len = (len + 4095) & ~(size_t)4095;
	if (len == 0 || len > SIZE_MAX - SF_HUGE_PAGE)
		return NULL;
	map_len = len + SF_HUGE_PAGE;
	map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return NULL;
	start = (unsigned char *)(((uintptr_t)map + SF_HUGE_PAGE - 1) & ~(uintptr_t)(SF_HUGE_PAGE - 1));
	head = (size_t)(start - map);
	tail = map_len - head - len;
	if (head)
		munmap(map, head);
	if (tail)
		munmap(start + len, tail);
#ifdef MADV_HUGEPAGE
	if (len >= SF_HUGE_PAGE)
		(void)madvise(start, len & ~(SF_HUGE_PAGE - 1), MADV_HUGEPAGE);
#endif
	return start;
}

void sf_unmap_huge(void *p, size_t len)
{
	if (p)
		munmap(p, (len + 4095) & ~(size_t)4095);
}

/* A block of at least `need` usable bytes; blocks of 2 MiB and more come
   from sf_map_huge, so the kernel can back them with huge pages. */
static sf_arena_block *new_block(sf_arena *arena, size_t need)
{
	size_t want = arena->head ? arena->head->size + HEADER_BYTES : ARENA_FIRST_BLOCK;
	size_t len;
	unsigned char *start;
	sf_arena_block *b;

	if (arena->head)
		want *= 2;
	if (want > SF_HUGE_PAGE)
		want = SF_HUGE_PAGE;
	if (need > SIZE_MAX - HEADER_BYTES - SF_HUGE_PAGE)
		return NULL;
	len = want;
	if (need + HEADER_BYTES > len)  /* a large array: its own block */
		len = (need + HEADER_BYTES + 4095) & ~(size_t)4095;
	if (len >= SF_HUGE_PAGE) {
		start = sf_map_huge(len);
		if (!start)
			return NULL;
	} else {
		start = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (start == MAP_FAILED)
			return NULL;
	}
	b = (sf_arena_block *)start;
	b->prev = arena->head;
	b->map_len = len;
	b->size = len - HEADER_BYTES;
	b->used = 0;
	arena->head = b;
	arena->reserved += len;
	return b;
}

void *sf_arena_alloc(sf_arena *arena, size_t size)
{
	sf_arena_block *b = arena->head;
	void *p;

	if (size == 0 || size > SIZE_MAX - ARENA_ALIGN)
		return NULL;
	size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (!b || b->size - b->used < size) {
		b = new_block(arena, size);
		if (!b)
			return NULL;
	}
	p = block_data(b) + b->used;
	b->used += size;
	arena->used += size;
	return p;
}

sf_arena_mark sf_arena_get_mark(const sf_arena *arena)
{
	sf_arena_mark mark = { arena->head, arena->head ? arena->head->used : 0, arena->used };

	return mark;
}

void sf_arena_rollback(sf_arena *arena, sf_arena_mark mark)
{
	while (arena->head && arena->head != mark.block) {
		sf_arena_block *b = arena->head;

		arena->head = b->prev;
		arena->reserved -= b->map_len;
		munmap(b, b->map_len);
	}
	if (arena->head) {
		/* memory handed out is zeroed: clear what comes back */
		memset(block_data(arena->head) + mark.block_used, 0, arena->head->used - mark.block_used);
		arena->head->used = mark.block_used;
	}
	arena->used = mark.used;
}

void sf_arena_free(sf_arena *arena)
{
	sf_arena_mark none = { NULL, 0, 0 };

	sf_arena_rollback(arena, none);
}
