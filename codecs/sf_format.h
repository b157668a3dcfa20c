/*
 * sf_format.h - the constants of the store format, in one place.
 * docs/FORMAT.md describes the layout these names refer to.
 */
#ifndef SF_FORMAT_H
#define SF_FORMAT_H

#define SF_FORMAT_NAME "stepfs-store"
/* The version stepstore writes. Readers also read every major from
   SF_FORMAT_OLDEST_MAJOR on (1.0: plain JSON indexes). */
#define SF_FORMAT_MAJOR 2
#define SF_FORMAT_MINOR 2
/* 2.1 adds substitution 3 (SF_SUBST_LIST_LINES), 2.2 shard dictionaries
   stored zstd-compressed (NNNNN.dict.zst). A store is labelled with the
   lowest minor whose features it uses (SF_FORMAT_MINOR_LIST_LINES,
   SF_FORMAT_MINOR_DICT_ZST), so that older 2.x readers read what they can. */
#define SF_FORMAT_MINOR_BASE 0
#define SF_FORMAT_MINOR_LIST_LINES 1
#define SF_FORMAT_MINOR_DICT_ZST 2
/* suffix of a dictionary stored as one zstd frame (format 2.2) */
#define SF_DICT_ZST_SUFFIX ".dict.zst"
#define SF_FORMAT_OLDEST_MAJOR 1

#define SF_STORE_ROOT_FILE "store.json"
#define SF_STORE_SHARD_DIR "shards"
#define SF_STORE_INDEX_DIR "index"
#define SF_INDEX_SUFFIX ".json.zst"   /* 2.0 index documents: JSON text in one zstd frame */

/* Segment substitutions: a byte range served with some bytes replaced
   one for one (the length never changes). */
#define SF_SUBST_NONE 0
#define SF_SUBST_NL_COMMA 1  /* '\n' -> ',' : a run of rows served as a JSON list body */
#define SF_SUBST_NL_SPACE 2  /* '\n' -> ' ' : a pretty-printed row served as one line */
#define SF_SUBST_LIST_LINES 3 /* format 2.1: a run of a JSON list's elements, starting
				 at an element, served one element per line: every ','
				 between elements -> '\n', every other '\n' -> ' ' */
#define SF_SUBST_MAX SF_SUBST_LIST_LINES

/* Defaults of `stepstore pack`. */
#define SF_DEFAULT_LEVEL 3
#define SF_DEFAULT_FRAME_BYTES (256u * 1024u)
#define SF_DEFAULT_SHARD_BYTES (1024ull * 1024ull * 1024ull)

/* Limits a reader enforces on metadata. */
#define SF_MAX_METADATA_BYTES (512ull * 1024ull * 1024ull)
#define SF_MAX_PATH_BYTES 4096
#define SF_MAX_NAME_BYTES 255

#endif
