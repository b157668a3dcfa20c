/*
 * sf_jscan.h - a streaming JSON scanner that reports byte offsets.
 *
 * It never builds a document: it reads its input through a fixed-size
 * window (default 1 MiB) and hands out one token at a time with the
 * absolute byte offsets of that token in the input, so a multi-gigabyte
 * file is scanned in constant memory. It validates everything RFC 8259
 * demands (structure, string escapes, UTF-8, number grammar) plus:
 *
 *  - nesting deeper than options.max_depth (default SF_JSCAN_DEFAULT_DEPTH)
 *    is an error (SF_ERR_LIMIT) at the first bracket past the limit; a
 *    top-level container is level 1, so "[[]]" needs max_depth >= 2;
 *  - duplicate keys in one object are an error when
 *    options.reject_duplicate_keys is set (keys compared by XXH64 of their
 *    raw bytes);
 *  - NaN, Infinity and -Infinity (written by Python's json module) are
 *    accepted as numbers when options.allow_nan is set;
 *  - escaped lone surrogates (\udc80) are accepted (Python writes them),
 *    raw bytes must be valid UTF-8 (no overlongs, no encoded surrogates);
 *  - after the top-level value only whitespace may follow.
 *
 * Errors are SF_ERR_FORMAT (or SF_ERR_LIMIT, SF_ERR_IO) with the message
 * "'NAME': byte N: expected ..." where N is the offset of the first byte
 * that does not fit.
 *
 * Ownership: a scanner borrows its fd (or memory buffer) until
 * sf_jscan_free(); token text pointers are borrowed and valid only until
 * the next call on the scanner.
 */
#ifndef SF_JSCAN_H
#define SF_JSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "sf_error.h"

#define SF_JSCAN_DEFAULT_DEPTH 1024
#define SF_JSCAN_MAX_TEXT 4096   /* longest key/string/number text handed out */

typedef enum sf_jtok_type {
	SF_JTOK_OBJECT_BEGIN,  /* '{' */
	SF_JTOK_OBJECT_END,    /* '}' */
	SF_JTOK_ARRAY_BEGIN,   /* '[' */
	SF_JTOK_ARRAY_END,     /* ']' */
	SF_JTOK_KEY,           /* an object key (string before ':') */
	SF_JTOK_STRING,
	SF_JTOK_NUMBER,        /* includes NaN / Infinity / -Infinity when allowed */
	SF_JTOK_TRUE,
	SF_JTOK_FALSE,
	SF_JTOK_NULL,
	SF_JTOK_EOF            /* end of input after a complete top-level value */
} sf_jtok_type;

typedef struct sf_jtok {
	sf_jtok_type type;
	uint64_t start;   /* offset of the token's first byte ('{', '"', digit) */
	uint64_t end;     /* offset just past its last byte ('}', closing '"') */
	int depth;        /* nesting depth: 0 for the top-level value; the
			     contents of a depth-d container have depth d+1,
			     its BEGIN and END tokens have depth d */
	/* KEY, STRING, NUMBER: the raw bytes (between the quotes for strings,
	   escapes not decoded), NUL-terminated; NULL when longer than
	   SF_JSCAN_MAX_TEXT (text_truncated is then 1). text_len is the
	   full raw length either way; other tokens have NULL and 0. */
	const char *text;
	size_t text_len;
	int text_truncated;
} sf_jtok;

typedef struct sf_jscan_options {
	int max_depth;              /* 0 means SF_JSCAN_DEFAULT_DEPTH */
	int reject_duplicate_keys;
	int allow_nan;
	size_t window_bytes;        /* 0 means 1 MiB; smaller values are
				       raised to the 64 KiB minimum */
} sf_jscan_options;

typedef struct sf_jscan sf_jscan;

/* Scan a file through fd (borrowed, read sequentially from its current
   position, which counts as offset 0). name is copied for messages. */
sf_err sf_jscan_open_fd(sf_jscan **out, int fd, const char *name,
			const sf_jscan_options *options, sf_error *err);

/* Start over on another file with a scanner made by sf_jscan_open_fd,
   keeping its window and nesting stack (a packer scans thousands of small
   files with one scanner). The options stay those it was opened with. */
sf_err sf_jscan_reopen_fd(sf_jscan *scan, int fd, const char *name, sf_error *err);

/* Scan len bytes of memory (borrowed). */
sf_err sf_jscan_open_mem(sf_jscan **out, const void *data, size_t len,
			 const char *name, const sf_jscan_options *options,
			 sf_error *err);

/* Next token. After SF_JTOK_EOF every call returns SF_JTOK_EOF again.
   After an error every later call returns the same error. A negative
   options.max_depth makes the open functions fail with SF_ERR_INVALID. */
sf_err sf_jscan_next(sf_jscan *scan, sf_jtok *tok, sf_error *err);

/*
 * Scan (and fully validate) the next complete value without producing its
 * inner tokens; *start and *end receive its byte range. Cheaper than a
 * loop over sf_jscan_next: the packer uses it for every row.
 * Must be called where a value is expected: the top-level value, after a
 * KEY (the ':' is consumed here), or inside an array at its first
 * element, after a ',' or after an element (the ',' is then consumed
 * here). Not where a key or a closing bracket comes next; that is an
 * SF_ERR_FORMAT "expected a JSON value". start, end and newlines may be
 * NULL. *newlines receives how many raw 0x0A bytes the value's range
 * holds (they can only be whitespace between tokens).
 */
sf_err sf_jscan_skip_value(sf_jscan *scan, uint64_t *start, uint64_t *end,
			   uint64_t *newlines, sf_error *err);

/*
 * Peek: 1 when the next token closes the current container, 0 otherwise.
 * Lets a caller loop `while (!sf_jscan_at_container_end(s)) skip_value(...)`
 * or `... sf_jscan_next(...)`. Precisely, after skipping whitespace:
 *  - right after ARRAY_BEGIN / OBJECT_BEGIN: 1 when ']' / '}' follows
 *    (an empty container), else 0; nothing is consumed;
 *  - after a member: 1 when the matching ']' / '}' follows (not
 *    consumed: the next sf_jscan_next returns the END token); when a ','
 *    follows it is consumed with the whitespace after it and 0 returned,
 *    so a ']' / '}' that comes next is then reported as a trailing comma
 *    by the next call;
 *  - anywhere else (after a KEY, after a consumed ',', at the top level,
 *    after an error, at any byte that does not fit): 0, consuming only
 *    whitespace; the next call reports a bad byte or truncated input.
 * It reports nothing itself: a read error met while peeking is returned
 * by the next sf_jscan_next or sf_jscan_skip_value.
 */
int sf_jscan_at_container_end(sf_jscan *scan);

/* 1 when the scanner has met the end of its input (a read returned 0, or
   the end of its memory) without a read error; *length then gets the
   input's length. A packer that scanned a file to its end needs no
   second look for bytes past it. */
int sf_jscan_input_end(const sf_jscan *scan, uint64_t *length);

/* Offset of the next unread byte (for progress reporting). */
uint64_t sf_jscan_offset(const sf_jscan *scan);

/*
 * Input the scanner has already read, for a caller that copies the bytes
 * it scans (the packer) without reading them a second time.
 * sf_jscan_keep_from: refills keep the input from `offset` on in the
 * window (as long as that leaves half the window for new input; beyond,
 * it is dropped as usual). sf_jscan_bytes: the input byte at `offset` and
 * how many follow it in the window (*avail), or NULL when the window does
 * not hold it. The pointer is valid until the next call on the scanner.
 */
void sf_jscan_keep_from(sf_jscan *scan, uint64_t offset);
const unsigned char *sf_jscan_bytes(const sf_jscan *scan, uint64_t offset, size_t *avail);

void sf_jscan_free(sf_jscan *scan);

#endif
