/*
 * sf_gc.h - removing stores and caches that have not been used for a while
 * (`stepstore gc`).
 *
 * ROOT is a folder whose top-level children are the units gc deals with:
 *   store  a folder holding a store.json whose "format" is "stepfs-store";
 *          its contents are never looked into beyond sizes
 *   cache  an unpacked distilabel cache: a folder holding pipelines/, or a
 *          pipeline folder holding steps_data/, or an execution folder
 *          holding batch_manager.json
 * Every other child is ignored: plain files, symbolic links (never
 * followed), folders of neither kind, and hidden entries (a pack in
 * progress writes ".NAME.stepstore-tmp-PID"). Hidden ".NAME.stepstore-gc-PID"
 * folders left by a gc that was killed are removed (kind "leftover").
 *
 * Last use: for a store, the newest of store.json's atime and mtime and the
 * store folder's mtime (opening a store reads store.json); for a cache, the
 * newest mtime of any non-folder entry in it, or the folder's own mtime
 * when it holds no file. Size is the space allocated (st_blocks * 512,
 * what du(1) shows), hard links counted each time.
 *
 * Policies: max_age removes every unit unused for longer; max_bytes removes
 * the least recently used units until the units left add up to at most
 * max_bytes; with both, age goes first. A unit is never removed while
 *   - it is a store and another process holds a lock on its store.json
 *     (sf_store_open() takes LOCK_SH; gc needs LOCK_EX | LOCK_NB),
 *   - it, or something in it, is the source of a FUSE mount, or a mount
 *     point lies inside it (per the mounts file, and any folder on another
 *     device found while walking it),
 * and such a unit frees nothing, so the size policy moves on to the next.
 *
 * Removal is atomic as seen from ROOT: the unit is renamed to
 * ".NAME.stepstore-gc-PID" in ROOT, then deleted with unlinkat(), never
 * following a symbolic link and never crossing into another file system.
 *
 * Limits: each unit's walk stops after max_entries entries or 256 levels;
 * such a unit is reported as unreadable and kept.
 *
 * Ownership: units passed to the report callback, and every string in
 * them, are borrowed for the duration of the call only.
 */
#ifndef SF_GC_H
#define SF_GC_H

#include <stdint.h>

#include "sf_error.h"

#define SF_GC_TMP_INFIX ".stepstore-gc-"
#define SF_GC_DEFAULT_MAX_ENTRIES 10000000u
#define SF_GC_MAX_DEPTH 256

typedef enum sf_gc_kind {
	SF_GC_STORE = 1,
	SF_GC_CACHE,
	SF_GC_LEFTOVER          /* a folder a killed gc left behind */
} sf_gc_kind;

typedef enum sf_gc_action {
	SF_GC_KEEP = 0,         /* within every limit */
	SF_GC_REMOVE,           /* removed, or with dry_run would be */
	SF_GC_IN_USE,           /* over a limit, but another process holds the store */
	SF_GC_MOUNTED,          /* over a limit, but mounted or holding a mount point */
	SF_GC_UNREADABLE,       /* could not be inspected completely: kept */
	SF_GC_FAILED            /* removal failed: reason says why */
} sf_gc_action;

typedef struct sf_gc_options {
	uint64_t max_age_seconds;   /* 0: no age limit */
	uint64_t max_bytes;         /* 0: no size limit */
	int dry_run;                /* decide and report, remove nothing */
	int64_t now;                /* seconds since the epoch; 0: the current time */
	const char *mounts_file;    /* NULL: /proc/self/mounts */
	uint64_t max_entries;       /* per unit; 0: SF_GC_DEFAULT_MAX_ENTRIES */
} sf_gc_options;

typedef struct sf_gc_unit {
	const char *name;           /* the child's name in ROOT */
	const char *path;           /* ROOT/NAME */
	sf_gc_kind kind;
	int64_t last_use;           /* seconds since the epoch */
	uint64_t bytes;             /* allocated space */
	sf_gc_action action;
	const char *reason;         /* "" or why: "older than 30d", "locked by ..." */
} sf_gc_unit;

typedef struct sf_gc_summary {
	uint64_t units;             /* stores and caches found (not leftovers) */
	uint64_t removed;           /* units and leftovers removed (or would be) */
	uint64_t kept;
	uint64_t failed;
	uint64_t bytes_before;      /* of all units */
	uint64_t bytes_freed;       /* by what was removed (or would be) */
} sf_gc_summary;

void sf_gc_options_init(sf_gc_options *options);

/* Called once per unit, leftovers first, then units from least recently
   used, after the unit's action is decided (and carried out). */
typedef void (*sf_gc_report_fn)(void *context, const sf_gc_unit *unit);

/* Kind as a word: "store", "cache", "leftover". */
const char *sf_gc_kind_name(sf_gc_kind kind);

/*
 * Apply the policies of options to the units of root. Returns SF_OK when
 * every removal that was decided succeeded (units kept because they are in
 * use, mounted or unreadable are not errors); otherwise the first failure,
 * after trying every unit. Errors before any unit is considered: root
 * missing (SF_ERR_NOTFOUND), not a folder (SF_ERR_INVALID), unreadable
 * (SF_ERR_IO). summary may be NULL.
 */
sf_err sf_gc_run(const char *root, const sf_gc_options *options, sf_gc_report_fn report,
		 void *context, sf_gc_summary *summary, sf_error *err);

#endif
