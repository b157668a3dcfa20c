/*
 * sf_arena: a bump allocator for the many small, long-lived objects of a
 * loaded tree (nodes with their names, segment arrays).
 *
 * A store with 100,000 files holds 100,000 nodes and as many segment
 * arrays. From malloc each costs a 16-byte header and leaves holes when
 * arrays grow; from an arena it costs its own bytes. Blocks grow from
 * 64 KiB to 2 MiB; 2 MiB blocks are aligned and offered to the kernel as
 * transparent huge pages (MADV_HUGEPAGE), which on virtual machines
 * makes touching fresh memory many times cheaper than 4 KiB faults.
 *
 * Memory comes zeroed. Nothing is freed alone: sf_arena_rollback gives
 * back everything allocated after a mark (a failed index load), and
 * sf_arena_free everything. Not thread-safe: callers hold their own lock.
 */
#ifndef SF_ARENA_H
#define SF_ARENA_H

#include <stddef.h>

typedef struct sf_arena_block sf_arena_block;

typedef struct sf_arena {
	sf_arena_block *head;   /* newest block */
	size_t reserved;        /* bytes mapped, headers included */
	size_t used;            /* bytes handed out */
} sf_arena;

typedef struct sf_arena_mark {
	sf_arena_block *block;
	size_t block_used;
	size_t used;
} sf_arena_mark;

/* size bytes aligned to 16, zeroed; NULL when out of memory (or size 0). */
void *sf_arena_alloc(sf_arena *arena, size_t size);

sf_arena_mark sf_arena_get_mark(const sf_arena *arena);
void sf_arena_rollback(sf_arena *arena, sf_arena_mark mark);

void sf_arena_free(sf_arena *arena);

/* The size of a transparent huge page on x86-64 and arm64 (4 KiB base). */
#define SF_HUGE_PAGE ((size_t)2 << 20)

/* len bytes (rounded up to 4 KiB) of fresh memory starting on a 2 MiB
   boundary, its whole 2 MiB units advised as huge pages (MADV_HUGEPAGE);
   NULL when out of memory. For the arena's blocks and the frame cache's
   buffer pool. sf_unmap_huge(p, len) gives it back. */
void *sf_map_huge(size_t len);
void sf_unmap_huge(void *p, size_t len);

#endif
