/*
 * sf_format.h - the constants of the store format, in one place.
 * docs/FORMAT.md describes the layout these names refer to.
 */
#ifndef SF_FORMAT_H
#define SF_FORMAT_H

#define SF_FORMAT_NAME "stepfs-store"
#define SF_FORMAT_MAJOR 1
#define SF_FORMAT_MINOR 0
/* Majors a reader accepts: 1.x, and 2.x, which adds shard dictionaries. */
#define SF_FORMAT_READ_MAJOR_MIN 1
#define SF_FORMAT_READ_MAJOR_MAX 2

#define SF_STORE_ROOT_FILE "store.json"
#define SF_STORE_SHARD_DIR "shards"
#define SF_STORE_INDEX_DIR "index"

/* Segment substitutions: a byte range served with every 0x0A replaced. */
#define SF_SUBST_NONE 0
#define SF_SUBST_NL_COMMA 1  /* '\n' -> ',' : a run of rows served as a JSON list body */
#define SF_SUBST_NL_SPACE 2  /* '\n' -> ' ' : a pretty-printed row served as one line */

/* Defaults of `stepstore pack`. */
#define SF_DEFAULT_LEVEL 3
#define SF_DEFAULT_FRAME_BYTES (256u * 1024u)
#define SF_DEFAULT_SHARD_BYTES (1024ull * 1024ull * 1024ull)

/* Limits a reader enforces on metadata. */
#define SF_MAX_METADATA_BYTES (512ull * 1024ull * 1024ull)
#define SF_MAX_PATH_BYTES 4096
#define SF_MAX_NAME_BYTES 255

#endif
