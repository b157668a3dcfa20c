/*
 * sf_error.h - the one error type of the stepfs library.
 *
 * Every library function that can fail returns an sf_err (SF_OK == 0) and,
 * when given a non-NULL sf_error *, fills it with a human-readable message
 * that names the file, the byte offset or frame, and what was expected.
 * Callers at the edges (the stepstore CLI, the FUSE driver) turn these into
 * exit codes or -errno; nothing else does.
 *
 * Ownership: sf_error is caller-owned plain memory; no release is needed.
 */
#ifndef SF_ERROR_H
#define SF_ERROR_H

#include <stddef.h>

typedef enum sf_err {
	SF_OK = 0,
	SF_ERR_IO,          /* read/write/open failed (errno saved in sf_error) */
	SF_ERR_NOMEM,       /* allocation failed */
	SF_ERR_FORMAT,      /* input does not follow its format (bad JSON, bad store) */
	SF_ERR_CORRUPT,     /* a checksum or size check failed: data is damaged */
	SF_ERR_VERSION,     /* store written by an unsupported format version */
	SF_ERR_NOTFOUND,    /* a path or referenced file does not exist */
	SF_ERR_EXISTS,      /* the target already exists */
	SF_ERR_INVALID,     /* bad argument or option value */
	SF_ERR_LIMIT,       /* an input exceeds a documented limit */
	SF_ERR_UNSUPPORTED, /* a file type or feature stepfs does not handle */
	SF_ERR__COUNT
} sf_err;

#define SF_ERROR_MSG_MAX 1024

typedef struct sf_error {
	sf_err code;
	int saved_errno;                 /* errno at failure for SF_ERR_IO, else 0 */
	char message[SF_ERROR_MSG_MAX];  /* "'path': byte N: what was expected" */
} sf_error;

/* Short static description of an error code ("data is damaged"). */
const char *sf_strerror(sf_err code);

/*
 * Record an error in err (which may be NULL) and return code, so that
 * failure paths read `return sf_error_set(err, SF_ERR_FORMAT, "...", ...);`.
 * The message is printf-formatted and truncated to SF_ERROR_MSG_MAX.
 */
sf_err sf_error_set(sf_error *err, sf_err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* As sf_error_set, with code SF_ERR_IO and errno_value appended as ": strerror". */
sf_err sf_error_io(sf_error *err, int errno_value, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Map an error code to a negative errno for the FUSE edge (-EIO, -ENOMEM, ...). */
int sf_err_to_errno(sf_err code);

#endif
