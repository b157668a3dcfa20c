/*
 * sf_config.h - the configuration of stepstore and stepfs (docs/CONFIG.md).
 *
 * A configuration file is YAML: a mapping of sections (pack, mount, gc),
 * each a mapping of keys to scalars:
 *
 *   pack:  {level: 3, frame_size: 256K, threads: auto, long_distance: false,
 *           dictionary: auto}
 *   mount: {cache_size: 64M, threads: 10}
 *   gc:    {max_age: 30d, max_size: 50G}
 *
 * Precedence, lowest first: built-in defaults, one configuration file,
 * command-line options. The file is the one given with --config, else
 * $XDG_CONFIG_HOME/stepfs/config.yaml (XDG_CONFIG_HOME defaults to
 * ~/.config), else /etc/stepfs/config.yaml; when none exists the defaults
 * stand. Files are never merged: the first one found is the only one read.
 *
 * Every value remembers where it came from (default, FILE:LINE:COLUMN or
 * command line), which `stepstore config` prints.
 *
 * Errors (all name the file, the 1-based line and column, and what was
 * expected, e.g. "'cfg.yaml': line 3, column 10: pack.level: 99 is out of
 * range, expected an integer from -131072 to 22"):
 *   SF_ERR_INVALID  unknown key, duplicate key, wrong type (including a
 *                   collection or an alias where a scalar belongs),
 *                   out-of-range value, a file that is not a regular file
 *   SF_ERR_FORMAT   not YAML, or more than one YAML document
 *   SF_ERR_LIMIT    a file larger than SF_CONFIG_MAX_BYTES
 *   SF_ERR_NOTFOUND / SF_ERR_IO  the file given with --config cannot be read
 * A failed load leaves the configuration exactly as it was.
 *
 * Hostile input: files are read up to SF_CONFIG_MAX_BYTES; the structure
 * is fixed at two levels, so the first collection or alias where a scalar
 * belongs stops the parse (no depth grows, no alias is expanded).
 *
 * Ownership: sf_config is caller-owned memory. sf_config_init_defaults()
 * sets it up, sf_config_release() frees what it holds (the copies of
 * the file names that sources point to); a released config may be
 * initialised again. Do not copy an sf_config by value: its sources point
 * into it. Strings passed in are copied; nothing returned needs freeing.
 */
#ifndef SF_CONFIG_H
#define SF_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sf_error.h"
#include "sf_pack.h"

#define SF_CONFIG_MAX_BYTES (1024 * 1024)
#define SF_CONFIG_SYSTEM_PATH "/etc/stepfs/config.yaml"
#define SF_CONFIG_USER_PATH "stepfs/config.yaml" /* below $XDG_CONFIG_HOME */

typedef enum sf_config_key {
	SF_CONFIG_PACK_LEVEL,
	SF_CONFIG_PACK_FRAME_SIZE,
	SF_CONFIG_PACK_THREADS,
	SF_CONFIG_PACK_LONG_DISTANCE,
	SF_CONFIG_PACK_DICTIONARY,
	SF_CONFIG_MOUNT_CACHE_SIZE,
	SF_CONFIG_MOUNT_THREADS,
	SF_CONFIG_MOUNT_METADATA_SIZE,
	SF_CONFIG_GC_MAX_AGE,
	SF_CONFIG_GC_MAX_SIZE,
	SF_CONFIG_KEY_COUNT
} sf_config_key;

typedef enum sf_config_origin {
	SF_CONFIG_FROM_DEFAULT = 0,
	SF_CONFIG_FROM_FILE,
	SF_CONFIG_FROM_COMMAND_LINE
} sf_config_origin;

typedef enum sf_config_dictionary {
	SF_CONFIG_DICTIONARY_AUTO = 0,
	SF_CONFIG_DICTIONARY_ALWAYS,
	SF_CONFIG_DICTIONARY_NEVER
} sf_config_dictionary;

typedef struct sf_config_source {
	sf_config_origin origin;
	const char *file;            /* SF_CONFIG_FROM_FILE: owned by the config */
	unsigned long line, column;  /* SF_CONFIG_FROM_FILE: 1-based position */
} sf_config_source;

typedef struct sf_config {
	int pack_level;                       /* zstd level, -131072 to 22 */
	uint64_t pack_frame_bytes;            /* 4 KiB to 16 MiB */
	int pack_threads;                     /* 1 to 256; 0: one per online CPU */
	int pack_long_distance;               /* 0 or 1 */
	sf_config_dictionary pack_dictionary;
	uint64_t mount_cache_bytes;           /* 1 MiB to 1 TiB */
	int mount_threads;                    /* 1 to 1024 */
	uint64_t mount_metadata_bytes;        /* 1 MiB to 1 TiB: loaded indexes */
	uint64_t gc_max_age_seconds;          /* 0: no age limit */
	uint64_t gc_max_bytes;                /* 0: no size limit */
	sf_config_source source[SF_CONFIG_KEY_COUNT];
	char **files;                         /* names of the files loaded, in order */
	size_t file_count;
} sf_config;

/* Set every key to its built-in default, with no file loaded. */
void sf_config_init_defaults(sf_config *config);

/* Free what config holds. The values stay readable; sources that named
   a file are reset to "default" so that no pointer dangles. */
void sf_config_release(sf_config *config);

/*
 * Parse size bytes of YAML named `name` (used in messages and as the
 * origin of the values it sets) over config. Pure: no file system access.
 * At most SF_CONFIG_MAX_BYTES. An empty document sets nothing.
 */
sf_err sf_config_load_mem(sf_config *config, const void *data, size_t size,
			  const char *name, sf_error *err);

/* Read path (a regular file, at most SF_CONFIG_MAX_BYTES) and load it. */
sf_err sf_config_load_file(sf_config *config, const char *path, sf_error *err);

/*
 * Load explicit_path when not NULL (it must exist), else the first of
 * $XDG_CONFIG_HOME/stepfs/config.yaml (or ~/.config/...) and
 * /etc/stepfs/config.yaml that exists; none existing is not an error.
 * A file that exists but cannot be read or parsed is an error.
 */
sf_err sf_config_find_and_load(sf_config *config, const char *explicit_path,
			       sf_error *err);

/*
 * A command-line override: parse text as the value of key (its dotted
 * name, "pack.level", "gc.max_age", ...) and record origin "command line".
 * `option` names the option in messages ("--level"); NULL uses the key.
 * Errors are SF_ERR_INVALID: "--level: '99' is out of range, expected ...".
 */
sf_err sf_config_set(sf_config *config, const char *key, const char *text,
		     const char *option, sf_error *err);

/* Dotted name of a key ("pack.frame_size"); NULL for a bad key. */
const char *sf_config_key_name(sf_config_key key);

/* Where key's value came from: "default", "command line" or
   "FILE:LINE:COLUMN", written into buf. Returns buf. */
const char *sf_config_origin_text(const sf_config *config, sf_config_key key,
				  char *buf, size_t size);

/* The effective configuration as YAML that loads back to the same
   values: a comment naming the files read, then every section and key
   with its value and, in a comment, where it came from. */
void sf_config_print(const sf_config *config, FILE *out);

/* Copy the pack.* settings that sf_pack_options holds (level, frame size,
   threads unless 0, long-distance matching) into options. */
void sf_config_apply_pack(const sf_config *config, sf_pack_options *options);

/*
 * "256K", "64M", "50G", "1T", "4096" (bytes); a suffix may be followed by
 * "B" or "iB" ("64MiB"); suffixes are powers of 1024 and case-insensitive.
 * Returns 1 and sets *bytes, or 0 and points *problem (when not NULL) at a
 * static lower-case description of what is wrong.
 */
int sf_parse_size(const char *text, uint64_t *bytes, const char **problem);

/*
 * "90s", "15m", "12h", "30d", "2w", "3600" (seconds). As sf_parse_size.
 */
int sf_parse_duration(const char *text, uint64_t *seconds, const char **problem);

/* Format bytes as "256K", "64M", "50G" when exact, else a byte count. */
const char *sf_format_size(uint64_t bytes, char *buf, size_t size);

/* Format seconds as "30d", "2w", "90s"... with the largest exact unit. */
const char *sf_format_duration(uint64_t seconds, char *buf, size_t size);

#endif
