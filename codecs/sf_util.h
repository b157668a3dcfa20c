/*
 * sf_util.h - small string, path and I/O helpers shared by the library.
 *
 * Ownership: every returned char * is malloc'd and owned by the caller
 * (free() it); NULL means out of memory or, for decoders, bad input.
 */
#ifndef SF_UTIL_H
#define SF_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sf_error.h"

char *sf_strdup(const char *s);
char *sf_strndup(const char *s, size_t len);

/* "dir/name" (no doubled slash when dir ends with '/'). */
char *sf_path_join(const char *dir, const char *name);

/* Parse exactly 16 lower- or upper-case hex digits. 1 on success. */
int sf_parse_hex64(const char *text, uint64_t *out);

/* Lower-case hex of len bytes / decode it back (NUL-terminated result;
   NULL on odd length, a non-hex digit or an embedded NUL byte). */
char *sf_hex_encode(const void *data, size_t len);
char *sf_hex_decode(const char *hex);

/* 1 when the len bytes are valid UTF-8 (no overlongs, no surrogates). */
int sf_utf8_valid(const void *data, size_t len);

/* write() all len bytes, retrying on EINTR and short writes; -1 + errno. */
int sf_write_all(int fd, const void *data, size_t len);

/* pread() exactly len bytes unless end of file; returns bytes read or -1. */
ssize_t sf_pread_full(int fd, void *buf, size_t len, uint64_t offset);

/* Initialise a mutex: error-checking in debug (SF_DEBUG_MUTEX) builds. */
#include <pthread.h>
void sf_mutex_init(pthread_mutex_t *lock);

/* fsync a directory by path; -1 + errno on failure. */
int sf_fsync_dir(const char *path);

#endif
