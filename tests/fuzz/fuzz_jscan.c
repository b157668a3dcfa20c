/*
 * fuzz_jscan.c - libFuzzer target for the streaming JSON scanner.
 *
 * The first input byte picks the options (bit 0 allow_nan, bit 1
 * reject_duplicate_keys, bit 2 a small max_depth); the rest is scanned
 * from memory three ways: token by token, with one top-level
 * sf_jscan_skip_value, and the packer's way (at_container_end loops and
 * skip_value for some values), and a fourth through a file descriptor with
 * a reused scanner (see by_reopen). All must agree on the outcome and on
 * the error message, and a small recursive validator written apart
 * from the scanner must agree on acceptance, error kind and byte offset.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "jscan_options.h"
#include "sf_jscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct outcome {
	sf_err code;
	uint64_t end;     /* offset of the EOF token on success */
	char message[SF_ERROR_MSG_MAX];
} outcome;

/* ---- an independent validator: plain recursive descent ---- */

typedef struct ref {
	const uint8_t *p;
	size_t len, pos;
	int allow_nan, reject_dup, max_depth;
	sf_err code;
	size_t error_at;
} ref;

static int ref_fail(ref *r, size_t at, sf_err code)
{
	if (r->code == SF_OK) {
		r->code = code;
		r->error_at = at;
	}
	return 0;
}

static int ref_byte(const ref *r, size_t at)
{
	return at < r->len ? r->p[at] : -1;
}

static void ref_ws(ref *r)
{
	while (r->pos < r->len && (r->p[r->pos] == ' ' || r->p[r->pos] == '\t' ||
				   r->p[r->pos] == '\n' || r->p[r->pos] == '\r'))
		r->pos++;
}

static int ref_word(ref *r, const char *word)
{
	for (size_t i = 0; word[i]; i++) {
		if (ref_byte(r, r->pos + i) != (unsigned char)word[i])
			return ref_fail(r, r->pos + i < r->len ? r->pos + i : r->len, SF_ERR_FORMAT);
	}
	r->pos += strlen(word);
	return 1;
}

static int is_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int ref_string(ref *r)
{
	r->pos++;
	for (;;) {
		int c = ref_byte(r, r->pos);

		if (c < 0)
			return ref_fail(r, r->len, SF_ERR_FORMAT);
		if (c == '"') {
			r->pos++;
			return 1;
		}
		if (c < 0x20)
			return ref_fail(r, r->pos, SF_ERR_FORMAT);
		if (c == '\\') {
			int e = ref_byte(r, r->pos + 1);

			if (e < 0)
				return ref_fail(r, r->len, SF_ERR_FORMAT);
			if (e == 'u') {
				for (size_t i = 2; i < 6; i++) {
					int h = ref_byte(r, r->pos + i);

					if (h < 0)
						return ref_fail(r, r->len, SF_ERR_FORMAT);
					if (!is_hex(h))
						return ref_fail(r, r->pos + i, SF_ERR_FORMAT);
				}
				r->pos += 6;
			} else if (strchr("\"\\/bfnrt", e) && e != 0) {
				r->pos += 2;
			} else {
				return ref_fail(r, r->pos + 1, SF_ERR_FORMAT);
			}
			continue;
		}
		if (c < 0x80) {
			r->pos++;
			continue;
		}
		/* Decode and judge by the code point: overlong forms, UTF-16
		   surrogates and values past U+10FFFF are known once the second
		   byte is in, so that byte takes the blame. C0, C1 and F5-FF
		   can start nothing valid. */
		if (c < 0xc2 || c > 0xf4)
			return ref_fail(r, r->pos, SF_ERR_FORMAT);
		{
			size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;

			for (size_t i = 1; i < n; i++) {
				int b = ref_byte(r, r->pos + i);

				if (b < 0)
					return ref_fail(r, r->len, SF_ERR_FORMAT);
				if ((b & 0xc0) != 0x80)
					return ref_fail(r, r->pos + i, SF_ERR_FORMAT);
				if (i == 1 && n == 3) {
					uint32_t top = ((uint32_t)c & 0x0f) << 12 | ((uint32_t)b & 0x3f) << 6;

					if (top < 0x800 || (top >= 0xd800 && top <= 0xdfff))
						return ref_fail(r, r->pos + 1, SF_ERR_FORMAT);
				}
				if (i == 1 && n == 4) {
					uint32_t top = ((uint32_t)c & 0x07) << 18 | ((uint32_t)b & 0x3f) << 12;

					if (top < 0x10000 || top > 0x10ffff)
						return ref_fail(r, r->pos + 1, SF_ERR_FORMAT);
				}
			}
			r->pos += n;
		}
	}
}

static int ref_digits(ref *r)
{
	int c = ref_byte(r, r->pos);

	if (c < '0' || c > '9')
		return ref_fail(r, c < 0 ? r->len : r->pos, SF_ERR_FORMAT);
	while (r->pos < r->len && r->p[r->pos] >= '0' && r->p[r->pos] <= '9')
		r->pos++;
	return 1;
}

static int ref_number(ref *r)
{
	int c;

	if (r->p[r->pos] == '-') {
		r->pos++;
		if (r->allow_nan && ref_byte(r, r->pos) == 'I')
			return ref_word(r, "Infinity");
	}
	c = ref_byte(r, r->pos);
	if (c == '0') {
		r->pos++;
		c = ref_byte(r, r->pos);
		if (c >= '0' && c <= '9')
			return ref_fail(r, r->pos, SF_ERR_FORMAT);
	} else if (!ref_digits(r)) {
		return 0;
	}
	if (ref_byte(r, r->pos) == '.') {
		r->pos++;
		if (!ref_digits(r))
			return 0;
	}
	c = ref_byte(r, r->pos);
	if (c == 'e' || c == 'E') {
		r->pos++;
		c = ref_byte(r, r->pos);
		if (c == '+' || c == '-')
			r->pos++;
		if (!ref_digits(r))
			return 0;
	}
	return 1;
}

static int ref_value(ref *r, int depth);

static int ref_object(ref *r, int depth)
{
	size_t *keys = NULL, count = 0;   /* start and length of each key */
	int ok = 0;

	r->pos++;
	ref_ws(r);
	if (ref_byte(r, r->pos) == '}') {
		r->pos++;
		return 1;
	}
	keys = malloc(2 * sizeof(*keys) * (r->len + 1));
	if (!keys)
		abort();
	for (;;) {
		size_t key = r->pos;
		int c = ref_byte(r, r->pos);

		if (c != '"') {
			ref_fail(r, c < 0 ? r->len : r->pos, SF_ERR_FORMAT);
			goto out;
		}
		if (!ref_string(r))
			goto out;
		if (r->reject_dup) {
			size_t key_len = r->pos - key;

			for (size_t i = 0; i < count; i++) {
				if (keys[2 * i + 1] == key_len &&
				    memcmp(r->p + keys[2 * i], r->p + key, key_len) == 0) {
					ref_fail(r, key, SF_ERR_FORMAT);
					goto out;
				}
			}
			keys[2 * count] = key;
			keys[2 * count + 1] = key_len;
			count++;
		}
		ref_ws(r);
		c = ref_byte(r, r->pos);
		if (c != ':') {
			ref_fail(r, c < 0 ? r->len : r->pos, SF_ERR_FORMAT);
			goto out;
		}
		r->pos++;
		if (!ref_value(r, depth + 1))
			goto out;
		ref_ws(r);
		c = ref_byte(r, r->pos);
		if (c == '}') {
			r->pos++;
			break;
		}
		if (c != ',') {
			ref_fail(r, c < 0 ? r->len : r->pos, SF_ERR_FORMAT);
			goto out;
		}
		r->pos++;
		ref_ws(r);
	}
	ok = 1;
out:
	free(keys);
	return ok;
}

static int ref_array(ref *r, int depth)
{
	r->pos++;
	ref_ws(r);
	if (ref_byte(r, r->pos) == ']') {
		r->pos++;
		return 1;
	}
	for (;;) {
		int c;

		if (!ref_value(r, depth + 1))
			return 0;
		ref_ws(r);
		c = ref_byte(r, r->pos);
		if (c == ']') {
			r->pos++;
			return 1;
		}
		if (c != ',')
			return ref_fail(r, c < 0 ? r->len : r->pos, SF_ERR_FORMAT);
		r->pos++;
	}
}

/* depth: how many containers are open around this value. */
static int ref_value(ref *r, int depth)
{
	int c;

	ref_ws(r);
	c = ref_byte(r, r->pos);
	switch (c) {
	case '{':
	case '[':
		if (depth >= r->max_depth)
			return ref_fail(r, r->pos, SF_ERR_LIMIT);
		return c == '{' ? ref_object(r, depth) : ref_array(r, depth);
	case '"':
		return ref_string(r);
	case 't':
		return ref_word(r, "true");
	case 'f':
		return ref_word(r, "false");
	case 'n':
		return ref_word(r, "null");
	case 'N':
	case 'I':
		if (!r->allow_nan)
			return ref_fail(r, r->pos, SF_ERR_FORMAT);
		return ref_word(r, c == 'N' ? "NaN" : "Infinity");
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			return ref_number(r);
		return ref_fail(r, c < 0 ? r->len : r->pos, SF_ERR_FORMAT);
	}
}

static void ref_check(ref *r)
{
	if (!ref_value(r, 0))
		return;
	ref_ws(r);
	if (r->pos < r->len)
		ref_fail(r, r->pos, SF_ERR_FORMAT);
}

/* ---- the scanner, three ways ---- */

static void finish(outcome *out, sf_err rc, const sf_error *err, uint64_t end)
{
	out->code = rc;
	out->end = end;
	if (rc != SF_OK)
		snprintf(out->message, sizeof(out->message), "%s", err->message);
	else
		out->message[0] = '\0';
}

static void by_tokens(const uint8_t *data, size_t size, const sf_jscan_options *o, outcome *out)
{
	sf_jscan *scan = NULL;
	sf_error err;
	sf_jtok tok;
	sf_err rc;
	int depth = 0;

	if (sf_jscan_open_mem(&scan, data, size, "fuzz", o, &err) != SF_OK)
		abort();
	for (;;) {
		rc = sf_jscan_next(scan, &tok, &err);
		if (rc != SF_OK || tok.type == SF_JTOK_EOF)
			break;
		/* Token invariants: ordered offsets inside the input, depth as
		   the header defines it, text that matches the input. */
		if (tok.start > tok.end || tok.end > size || tok.end > sf_jscan_offset(scan))
			abort();
		if (tok.type == SF_JTOK_OBJECT_END || tok.type == SF_JTOK_ARRAY_END)
			depth--;
		if (tok.depth != depth)
			abort();
		if (tok.type == SF_JTOK_OBJECT_BEGIN || tok.type == SF_JTOK_ARRAY_BEGIN)
			depth++;
		/* text longer than SF_JSCAN_MAX_TEXT is not handed out, only its length */
		if (tok.type == SF_JTOK_KEY || tok.type == SF_JTOK_STRING) {
			if (tok.text_len != tok.end - tok.start - 2 ||
			    (tok.text_truncated ? tok.text != NULL || tok.text_len <= SF_JSCAN_MAX_TEXT
						: !tok.text || memcmp(tok.text, data + tok.start + 1, tok.text_len) != 0))
				abort();
		} else if (tok.type == SF_JTOK_NUMBER) {
			if (tok.text_len != tok.end - tok.start ||
			    (tok.text_truncated ? tok.text != NULL || tok.text_len <= SF_JSCAN_MAX_TEXT
						: !tok.text || memcmp(tok.text, data + tok.start, tok.text_len) != 0))
				abort();
		}
	}
	if (rc == SF_OK && (depth != 0 || tok.start != size))
		abort();
	finish(out, rc, &err, rc == SF_OK ? tok.start : 0);
	sf_jscan_free(scan);
}

/* A file in memory for the fd-reading scanner; -1 when none can be made. */
static int memory_file(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if ((size && write(fd, data, size) != (ssize_t)size) || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The packer's way of reading files: one scanner started over per file
 * (sf_jscan_reopen_fd) through the smallest window, after a first scan of
 * the input's first half that may stop anywhere (in a string, deep in
 * objects with keys recorded). Tokens are held with sf_jscan_keep_from and
 * read back with sf_jscan_bytes, which must give the input's bytes.
 */
static void by_reopen(const uint8_t *data, size_t size, const sf_jscan_options *o, outcome *out)
{
	sf_jscan_options so = *o;
	sf_jscan *scan = NULL;
	sf_error err;
	sf_jtok tok;
	sf_err rc = SF_OK;
	int first = memory_file(data, size / 2), whole = memory_file(data, size);

	memset(&tok, 0, sizeof(tok));
	so.window_bytes = 1; /* raised to the minimum window */
	if (first < 0 || whole < 0 || sf_jscan_open_fd(&scan, first, "first", &so, &err) != SF_OK)
		abort();
	for (int i = 0; i < 100000; i++)
		if (sf_jscan_next(scan, &tok, &err) != SF_OK || tok.type == SF_JTOK_EOF)
			break;
	if (sf_jscan_reopen_fd(scan, whole, "fuzz", &err) != SF_OK)
		abort();
	for (;;) {
		const unsigned char *bytes;
		size_t avail = 0;

		rc = sf_jscan_next(scan, &tok, &err);
		if (rc != SF_OK || tok.type == SF_JTOK_EOF)
			break;
		sf_jscan_keep_from(scan, tok.start);
		bytes = sf_jscan_bytes(scan, tok.start, &avail);
		if (bytes && memcmp(bytes, data + tok.start,
				    avail < tok.end - tok.start ? avail : tok.end - tok.start) != 0)
			abort();
	}
	finish(out, rc, &err, rc == SF_OK ? tok.start : 0);
	sf_jscan_free(scan);
	close(first);
	close(whole);
}

static void by_skip(const uint8_t *data, size_t size, const sf_jscan_options *o, outcome *out)
{
	sf_jscan *scan = NULL;
	uint64_t start = 0, end = 0, newlines = 0, count = 0;
	sf_error err;
	sf_jtok tok;
	sf_err rc;

	if (sf_jscan_open_mem(&scan, data, size, "fuzz", o, &err) != SF_OK)
		abort();
	rc = sf_jscan_skip_value(scan, &start, &end, &newlines, &err);
	if (rc == SF_OK) {
		if (start >= end || end > size)
			abort();
		for (uint64_t i = start; i < end; i++)
			count += data[i] == '\n';
		if (count != newlines)
			abort();
		rc = sf_jscan_next(scan, &tok, &err);
		if (rc == SF_OK && tok.type != SF_JTOK_EOF)
			abort();
	}
	finish(out, rc, &err, rc == SF_OK ? tok.start : 0);
	sf_jscan_free(scan);
}

/*
 * Tokens, but the elements of some arrays go through at_container_end and
 * skip_value, and so do the values of some keys (chosen by offset).
 */
static void by_mixed(const uint8_t *data, size_t size, const sf_jscan_options *o, outcome *out)
{
	sf_jscan *scan = NULL;
	sf_error err;
	sf_jtok tok;
	sf_err rc;

	if (sf_jscan_open_mem(&scan, data, size, "fuzz", o, &err) != SF_OK)
		abort();
	for (;;) {
		rc = sf_jscan_next(scan, &tok, &err);
		if (rc != SF_OK || tok.type == SF_JTOK_EOF)
			break;
		if (tok.type == SF_JTOK_ARRAY_BEGIN && tok.start % 2 == 0) {
			while (rc == SF_OK && !sf_jscan_at_container_end(scan)) {
				uint64_t start, end, newlines;

				rc = sf_jscan_skip_value(scan, &start, &end, &newlines, &err);
				if (rc == SF_OK && (start >= end || end > size ||
						    (data[start] == ']' || data[end - 1] == ',')))
					abort();
			}
			if (rc == SF_OK) {
				rc = sf_jscan_next(scan, &tok, &err);
				if (rc == SF_OK && tok.type != SF_JTOK_ARRAY_END)
					abort();
			}
		} else if (tok.type == SF_JTOK_KEY && tok.start % 3 == 1) {
			rc = sf_jscan_skip_value(scan, NULL, NULL, NULL, &err);
		}
		if (rc != SF_OK)
			break;
	}
	finish(out, rc, &err, rc == SF_OK ? tok.start : 0);
	sf_jscan_free(scan);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sf_jscan_options o;
	outcome tokens, skip, mixed, reopened;
	ref r;
	uint64_t offset;

	if (size < 1)
		return 0;
	o = fuzz_jscan_options(data[0]);
	data++;
	size--;

	by_tokens(data, size, &o, &tokens);
	by_skip(data, size, &o, &skip);
	by_mixed(data, size, &o, &mixed);
	by_reopen(data, size, &o, &reopened);
	if (tokens.code != reopened.code || strcmp(tokens.message, reopened.message) != 0 ||
	    tokens.end != reopened.end) {
		fprintf(stderr, "tokens:   %d %s\nreopened: %d %s\n", tokens.code, tokens.message,
			reopened.code, reopened.message);
		abort();
	}
	if (tokens.code != skip.code || strcmp(tokens.message, skip.message) != 0 ||
	    tokens.code != mixed.code || strcmp(tokens.message, mixed.message) != 0 ||
	    tokens.end != skip.end || tokens.end != mixed.end) {
		fprintf(stderr, "tokens: %d %s\nskip:   %d %s\nmixed:  %d %s\n", tokens.code,
			tokens.message, skip.code, skip.message, mixed.code, mixed.message);
		abort();
	}

	memset(&r, 0, sizeof(r));
	r.p = data;
	r.len = size;
	r.allow_nan = o.allow_nan;
	r.reject_dup = o.reject_duplicate_keys;
	r.max_depth = o.max_depth;
	ref_check(&r);
	if (r.code != tokens.code) {
		fprintf(stderr, "reference: %d at %zu\nscanner:   %d %s\n", r.code, r.error_at,
			tokens.code, tokens.message);
		abort();
	}
	if (tokens.code != SF_OK) {
		if (sscanf(tokens.message, "'fuzz': byte %" SCNu64 ":", &offset) != 1 ||
		    offset != r.error_at) {
			fprintf(stderr, "reference: error at %zu\nscanner:   %s\n", r.error_at,
				tokens.message);
			abort();
		}
	}
	return 0;
}
