#include "sf_jscan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sf_xxhash.h"

#define WINDOW_DEFAULT ((size_t)1 << 20)
#define WINDOW_MIN ((size_t)64 << 10)
#define KEYSET_INITIAL 16u
#define KEYSET_KEEP 256u       /* larger sets are freed, not kept, on close */
#define KEY_IN_MESSAGE 64      /* bytes of a duplicate key quoted in errors */

enum { KIND_ARRAY, KIND_OBJECT };

/* Where a container stands between tokens. */
enum {
	ST_BEGIN,        /* just opened: first member or the close comes next */
	ST_AFTER_VALUE,  /* a member ended: ',' or the close comes next */
	ST_AFTER_COMMA,  /* ',' consumed: a member must come next */
	ST_AFTER_KEY     /* object key read: ':' and a value come next */
};

/* Open-addressing set of key hashes; 0 marks an empty slot. */
typedef struct keyset {
	uint64_t *slots;
	uint32_t cap;
	uint32_t count;
} keyset;

typedef struct level {
	unsigned char kind;
	unsigned char state;
	keyset keys;
} level;

struct sf_jscan {
	const unsigned char *buf;  /* the window, or the caller's memory */
	size_t len;                /* valid bytes in buf */
	size_t pos;                /* next unread byte in buf */
	uint64_t base;             /* absolute offset of buf[0] */
	int eof;                   /* nothing more to read past buf[len] */
	uint64_t keep;             /* refills keep input from here (sf_jscan_keep_from) */
	int fd;
	unsigned char *window;     /* owned, NULL for memory input */
	size_t window_cap;
	char *name;

	int max_depth;
	int reject_duplicate_keys;
	int allow_nan;

	level *stack;              /* stack[0..depth-1] are the open containers */
	int stack_cap;
	int depth;
	int top_done;              /* the top-level value has been read */
	uint64_t newlines;         /* raw '\n' seen in whitespace so far */

	int failed;
	sf_error error;

	/* Sinks fed while a string or number is scanned. */
	size_t text_limit;         /* 0: keep no text */
	size_t text_len;           /* full raw length, even past the limit */
	int hashing;
	int hash_streaming;        /* the key crossed a refill */
	sf_xxh64_state hash_state;
	uint64_t key_hash;
	char text[SF_JSCAN_MAX_TEXT + 1];
};

/* ---- errors ---- */

static sf_err scan_fail(sf_jscan *scan, sf_err code, uint64_t offset,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The first error sticks: later failures (often consequences) are dropped. */
static sf_err scan_fail(sf_jscan *scan, sf_err code, uint64_t offset,
			const char *fmt, ...)
{
	va_list ap;
	int used;

	if (scan->failed)
		return scan->error.code;
	scan->failed = 1;
	scan->error.code = code;
	scan->error.saved_errno = 0;
	used = snprintf(scan->error.message, sizeof(scan->error.message),
			"'%s': byte %" PRIu64 ": ", scan->name, offset);
	if (used < 0 || (size_t)used >= sizeof(scan->error.message))
		return code;
	va_start(ap, fmt);
	vsnprintf(scan->error.message + used,
		  sizeof(scan->error.message) - (size_t)used, fmt, ap);
	va_end(ap);
	return code;
}

static const char *describe_byte(int c, char *out, size_t size)
{
	if (c < 0)
		snprintf(out, size, "end of input");
	else if (c > 0x20 && c < 0x7f)
		snprintf(out, size, "'%c'", c);
	else
		snprintf(out, size, "byte 0x%02x", (unsigned)c);
	return out;
}

/*
 * "expected WHAT, found X" at buf[pos], or, when c < 0 (the input ended
 * there), "unexpected end of input, expected WHAT" at the input's length.
 */
static sf_err fail_expected(sf_jscan *scan, size_t pos, int c, const char *what)
{
	char found[24];

	if (c < 0)
		return scan_fail(scan, SF_ERR_FORMAT, scan->base + scan->len,
				 "unexpected end of input, expected %s", what);
	return scan_fail(scan, SF_ERR_FORMAT, scan->base + pos,
			 "expected %s, found %s", what,
			 describe_byte(c, found, sizeof(found)));
}

static sf_err copy_error(const sf_jscan *scan, sf_error *err)
{
	if (err)
		*err = scan->error;
	return scan->error.code;
}

/* ---- input window ---- */

/*
 * Drop the bytes before pos and read more after the ones kept. Callers
 * only refill with a handful of bytes left, so the move is tiny. A read
 * error is recorded and ends the input, so scanning loops stop there.
 */
static void refill(sf_jscan *scan)
{
	size_t drop = scan->pos;
	ssize_t got;

	if (scan->eof)
		return;
	/* keep what the caller has not taken yet, when that leaves at least
	   half the window for new input */
	if (scan->keep > scan->base && scan->keep - scan->base < drop &&
	    scan->pos - (scan->keep - scan->base) <= scan->window_cap / 2 &&
	    scan->len - (size_t)(scan->keep - scan->base) < scan->window_cap)
		drop = (size_t)(scan->keep - scan->base);
	if (drop > 0) {
		memmove(scan->window, scan->window + drop, scan->len - drop);
		scan->base += drop;
		scan->len -= drop;
		scan->pos -= drop;
	}
	for (;;) {
		got = read(scan->fd, scan->window + scan->len,
			   scan->window_cap - scan->len);
		if (got > 0) {
			scan->len += (size_t)got;
			return;
		}
		if (got == 0)
			break;
		if (errno == EINTR)
			continue;
		if (!scan->failed) {
			sf_error_io(&scan->error, errno, "'%s': byte %" PRIu64 ": read failed",
				    scan->name, scan->base + scan->len);
			scan->failed = 1;
		}
		break;
	}
	scan->eof = 1;
}

/* Make n bytes available from pos if the input has them; returns how many are. */
static size_t ensure(sf_jscan *scan, size_t n)
{
	while (scan->len - scan->pos < n && !scan->eof)
		refill(scan);
	return scan->len - scan->pos;
}

static int skip_ws_slow(sf_jscan *scan)
{
	for (;;) {
		const unsigned char *buf = scan->buf;
		size_t pos = scan->pos, len = scan->len;

		while (pos < len) {
			int c = buf[pos];

			if (c == ' ') {
				/* indentation: eight spaces at a time */
				uint64_t word;

				pos++;
				while (pos + 8 <= len) {
					memcpy(&word, buf + pos, 8);
					if (word != UINT64_C(0x2020202020202020))
						break;
					pos += 8;
				}
			} else if (c == '\t' || c == '\r') {
				pos++;
			} else if (c == '\n') {
				scan->newlines++;
				pos++;
			} else {
				scan->pos = pos;
				return c;
			}
		}
		scan->pos = pos;
		if (scan->eof)
			return -1;
		refill(scan);
	}
}

/* The next non-whitespace byte, left unread; -1 at the end of input. */
static inline int skip_ws(sf_jscan *scan)
{
	if (scan->pos < scan->len && scan->buf[scan->pos] > ' ')
		return scan->buf[scan->pos];
	return skip_ws_slow(scan);
}

/* ---- text and key-hash sinks ---- */

static void sink_reset(sf_jscan *scan, size_t text_limit, int hashing)
{
	scan->text_limit = text_limit;
	scan->text_len = 0;
	scan->hashing = hashing;
	scan->hash_streaming = 0;
}

/* Feed the scanned bytes [from, from+n) of the current token; final marks the last piece. */
static void sink_feed(sf_jscan *scan, const unsigned char *from, size_t n, int final)
{
	if (scan->text_limit && scan->text_len < scan->text_limit) {
		size_t room = scan->text_limit - scan->text_len;

		memcpy(scan->text + scan->text_len, from, n < room ? n : room);
	}
	scan->text_len += n;
	if (!scan->hashing)
		return;
	/* Most keys sit inside one window and take the one-shot hash; the
	   streaming state gives the same value for keys that cross a refill. */
	if (final && !scan->hash_streaming) {
		scan->key_hash = sf_xxh64(from, n, 0);
		return;
	}
	if (!scan->hash_streaming) {
		sf_xxh64_init(&scan->hash_state, 0);
		scan->hash_streaming = 1;
	}
	sf_xxh64_update(&scan->hash_state, from, n);
	if (final)
		scan->key_hash = sf_xxh64_digest(&scan->hash_state);
}

static void set_token_text(sf_jscan *scan, sf_jtok *tok)
{
	tok->text_len = scan->text_len;
	if (scan->text_len <= SF_JSCAN_MAX_TEXT) {
		scan->text[scan->text_len] = '\0';
		tok->text = scan->text;
		tok->text_truncated = 0;
	} else {
		tok->text = NULL;
		tok->text_truncated = 1;
	}
}

/* ---- strings ---- */

/* 1 for bytes a string holds as they are: 0x20-0x7f except '"' and '\\'. */
static const unsigned char plain_byte[256] = {
	[0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* 1 for the bytes of hexadecimal digits. */
static const unsigned char hex_value[256] = {
	['0'] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['A'] = 1, 1, 1, 1, 1, 1,
	['a'] = 1, 1, 1, 1, 1, 1,
};

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/*
 * Nonzero when any of the 8 bytes needs a closer look: '"', '\\', a
 * control byte or a non-ASCII byte. Exact when zero, which is all the
 * fast loop relies on.
 */
static inline uint64_t word_special(uint64_t w)
{
	uint64_t quote = w ^ (ONES * '"');
	uint64_t backslash = w ^ (ONES * '\\');

	return (((quote - ONES) & ~quote) | ((backslash - ONES) & ~backslash) |
		(w - ONES * 0x20) | w) & HIGHS;
}

/*
 * Index of the first special byte of a word from its nonzero mask. False
 * positives only sit above a true one, so the lowest flag is exact; on a
 * big-endian host the bytewise loop that follows finds it instead.
 */
static inline size_t first_special(uint64_t special)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (size_t)__builtin_ctzll(special) / 8;
#else
	(void)special;
	return 0;
#endif
}

/* Length of the well-formed escape at p (6 bytes readable), else 0. */
static inline size_t escape_fast(const unsigned char *p)
{
	switch (p[1]) {
	case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
		return 2;
	case 'u':
		return hex_value[p[2]] & hex_value[p[3]] & hex_value[p[4]] & hex_value[p[5]] ? 6 : 0;
	default:
		return 0;
	}
}

/* Length of the valid UTF-8 sequence at p (4 bytes readable), else 0. */
static inline size_t utf8_fast(const unsigned char *p)
{
	unsigned lead = p[0], second = p[1];

	if (lead < 0xc2)
		return 0;
	if (lead < 0xe0)
		return (second & 0xc0) == 0x80 ? 2 : 0;
	if ((p[2] & 0xc0) != 0x80)
		return 0;
	if (lead < 0xf0) {
		if (second < (lead == 0xe0 ? 0xa0u : 0x80u) || second > (lead == 0xed ? 0x9fu : 0xbfu))
			return 0;
		return 3;
	}
	if (lead > 0xf4 || (p[3] & 0xc0) != 0x80)
		return 0;
	if (second < (lead == 0xf0 ? 0x90u : 0x80u) || second > (lead == 0xf4 ? 0x8fu : 0xbfu))
		return 0;
	return 4;
}

/* Past the bytes a string holds as they are from pos on (at most len):
   eight at a time up to the first word that may hold another byte, then
   one by one (word_special is exact only when it finds nothing). */
static inline size_t plain_run(const unsigned char *buf, size_t pos, size_t len)
{
	while (len - pos >= 8) {
		uint64_t word, special;

		memcpy(&word, buf + pos, 8);
		special = word_special(word);
		if (special) {
			pos += first_special(special);
			break;
		}
		pos += 8;
	}
	while (pos < len && plain_byte[buf[pos]])
		pos++;
	return pos;
}

/* The byte at buf[pos] or -1 past the end. */
static inline int byte_at(const sf_jscan *scan, size_t pos)
{
	return pos < scan->len ? scan->buf[pos] : -1;
}

/* Validate the escape at buf[pos] ('\\'); returns its length or 0 on error. */
static size_t check_escape(sf_jscan *scan, size_t pos)
{
	int c = byte_at(scan, pos + 1);

	switch (c) {
	case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
		return 2;
	case 'u':
		/* Escaped surrogates pass unpaired: Python writes them. */
		for (size_t i = 2; i < 6; i++) {
			c = byte_at(scan, pos + i);
			if (c < 0 || !hex_value[c]) {
				fail_expected(scan, pos + i, c, "a hex digit in a \\u escape");
				return 0;
			}
		}
		return 6;
	default:
		fail_expected(scan, pos + 1, c,
			      "an escape character (\" \\ / b f n r t u) after '\\'");
		return 0;
	}
}

/* Validate the UTF-8 sequence at buf[pos] (a byte >= 0x80); returns its length or 0. */
static size_t check_utf8(sf_jscan *scan, size_t pos)
{
	int lead = scan->buf[pos], c;
	int low = 0x80, high = 0xbf;
	size_t n;
	char what[64];

	if (lead < 0xc2 || lead > 0xf4) {
		scan_fail(scan, SF_ERR_FORMAT, scan->base + pos,
			  "expected a UTF-8 lead byte, found byte 0x%02x", (unsigned)lead);
		return 0;
	}
	if (lead < 0xe0) {
		n = 2;
	} else if (lead < 0xf0) {
		n = 3;
		if (lead == 0xe0)
			low = 0xa0;     /* shorter forms are overlong */
		else if (lead == 0xed)
			high = 0x9f;    /* D800-DFFF are surrogates */
	} else {
		n = 4;
		if (lead == 0xf0)
			low = 0x90;
		else if (lead == 0xf4)
			high = 0x8f;    /* nothing above U+10FFFF */
	}
	for (size_t i = 1; i < n; i++) {
		c = byte_at(scan, pos + i);
		if (c < low || c > high) {
			snprintf(what, sizeof(what),
				 "a UTF-8 continuation byte (0x%02x..0x%02x)", low, high);
			fail_expected(scan, pos + i, c, what);
			return 0;
		}
		low = 0x80;
		high = 0xbf;
	}
	return n;
}

/*
 * Scan the string whose '"' is at pos, through its closing quote. The
 * body goes to the sinks set up by the caller, without the quotes.
 */
static sf_err scan_string(sf_jscan *scan)
{
	const unsigned char *buf = scan->buf;
	size_t pos = scan->pos + 1, len = scan->len, chunk = pos, n;
	int c;

	for (;;) {
		pos = plain_run(buf, pos, len);
		c = pos < len ? buf[pos] : -1;
		if (c == '"')
			break;
		/* Well-formed escapes and characters away from the window's end
		   take this short path; the checks below explain failures. */
		if (len - pos >= 6) {
			n = c == '\\' ? escape_fast(buf + pos) : utf8_fast(buf + pos);
			if (n) {
				pos += n;
				continue;
			}
		}
		/* Escapes and UTF-8 need up to 6 bytes at hand: refill first. */
		if (!scan->eof && (c < 0 || ((c == '\\' || c >= 0x80) && len - pos < 6))) {
			sink_feed(scan, buf + chunk, pos - chunk, 0);
			scan->pos = pos;
			refill(scan);
			buf = scan->buf;
			pos = chunk = scan->pos;
			len = scan->len;
			continue;
		}
		if (c == '\\') {
			n = check_escape(scan, pos);
		} else if (c >= 0x80) {
			n = check_utf8(scan, pos);
		} else {
			if (c < 0)
				fail_expected(scan, pos, c, "'\"' to close the string");
			else
				scan_fail(scan, SF_ERR_FORMAT, scan->base + pos,
					  "expected a string character, found control byte"
					  " 0x%02x (it must be escaped)", (unsigned)c);
			n = 0;
		}
		if (n == 0) {
			scan->pos = pos;
			return scan->error.code;
		}
		pos += n;
	}
	sink_feed(scan, buf + chunk, pos - chunk, 1);
	scan->pos = pos + 1;
	return SF_OK;
}

/* ---- numbers and literals ---- */

static inline int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/*
 * Past the digits from pos on (at most len): eight at a time, then one by
 * one. A byte's flag in the word is exact (no carry crosses bytes): its
 * XOR with '0' is 0 to 9 only for a digit, and adding 0x76 to the low
 * seven bits of that sets the high bit from 10 on.
 */
static inline size_t digit_run(const unsigned char *buf, size_t pos, size_t len)
{
	while (len - pos >= 8) {
		uint64_t word, x, flags;

		memcpy(&word, buf + pos, 8);
		x = word ^ (ONES * '0');
		flags = (((x & (ONES * 0x7f)) + ONES * 0x76) | x) & HIGHS;
		if (flags) {
			pos += first_special(flags);
			break;
		}
		pos += 8;
	}
	while (pos < len && is_digit(buf[pos]))
		pos++;
	return pos;
}

enum { N_SIGN, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_EXP_SIGN, N_EXP };

/*
 * Scan the number starting at pos ('-' or a digit) of any length. The
 * grammar runs as a state machine so a number may cross any refill.
 */
static sf_err scan_number(sf_jscan *scan)
{
	const unsigned char *buf = scan->buf;
	size_t pos = scan->pos, chunk = pos;
	int state, c;

	c = buf[pos++];
	state = c == '-' ? N_SIGN : c == '0' ? N_ZERO : N_INT;
	for (;;) {
		if (state == N_INT || state == N_FRAC || state == N_EXP)
			pos = digit_run(buf, pos, scan->len);
		if (pos == scan->len && !scan->eof) {
			sink_feed(scan, buf + chunk, pos - chunk, 0);
			scan->pos = pos;
			refill(scan);
			buf = scan->buf;
			pos = chunk = scan->pos;
			continue;
		}
		c = byte_at(scan, pos);
		switch (state) {
		case N_SIGN:
			if (!is_digit(c))
				goto fail_digit;
			state = c == '0' ? N_ZERO : N_INT;
			pos++;
			continue;
		case N_ZERO:
			if (is_digit(c)) {
				scan->pos = pos;
				return fail_expected(scan, pos, c,
						     "'.', 'e' or the end of the number after a leading '0'");
			}
			/* fall through */
		case N_INT:
			if (c == '.') {
				state = N_DOT;
				pos++;
				continue;
			}
			/* fall through */
		case N_FRAC:
			if (c == 'e' || c == 'E') {
				state = N_E;
				pos++;
				continue;
			}
			goto done;
		case N_DOT:
			if (!is_digit(c))
				goto fail_digit;
			state = N_FRAC;
			pos++;
			continue;
		case N_E:
			if (c == '+' || c == '-') {
				state = N_EXP_SIGN;
				pos++;
				continue;
			}
			/* fall through */
		case N_EXP_SIGN:
			if (!is_digit(c))
				goto fail_digit;
			state = N_EXP;
			pos++;
			continue;
		default:
			goto done;
		}
	}
done:
	sink_feed(scan, buf + chunk, pos - chunk, 1);
	scan->pos = pos;
	return SF_OK;
fail_digit:
	scan->pos = pos;
	return fail_expected(scan, pos, c,
			     state == N_SIGN ? "a digit after '-'" :
			     state == N_DOT ? "a digit after '.'" :
			     "a digit in the exponent");
}

/* Match the literal word at pos (its first byte already matches). */
static sf_err scan_literal(sf_jscan *scan, const char *word)
{
	size_t n = strlen(word), avail = ensure(scan, n);
	char what[24];

	for (size_t i = 1; i < n; i++) {
		int c = i < avail ? scan->buf[scan->pos + i] : -1;

		if (c != (unsigned char)word[i]) {
			snprintf(what, sizeof(what), "'%s'", word);
			return fail_expected(scan, scan->pos + i, c, what);
		}
	}
	if (scan->text_limit) {
		memcpy(scan->text, word, n);
		scan->text_len = n;
	}
	scan->pos += n;
	return SF_OK;
}

/* ---- containers ---- */

static void keyset_clear(keyset *keys)
{
	if (keys->cap > KEYSET_KEEP) {
		free(keys->slots);
		keys->slots = NULL;
		keys->cap = 0;
	} else if (keys->count) {
		memset(keys->slots, 0, keys->cap * sizeof(*keys->slots));
	}
	keys->count = 0;
}

static int keyset_grow(keyset *keys)
{
	uint32_t cap = keys->cap ? keys->cap * 2 : KEYSET_INITIAL;
	uint64_t *slots;

	if (cap < keys->cap)
		return 0;
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return 0;
	for (uint32_t i = 0; i < keys->cap; i++) {
		uint64_t hash = keys->slots[i];
		uint32_t at;

		if (!hash)
			continue;
		for (at = (uint32_t)hash & (cap - 1); slots[at]; at = (at + 1) & (cap - 1))
			;
		slots[at] = hash;
	}
	free(keys->slots);
	keys->slots = slots;
	keys->cap = cap;
	return 1;
}

/* 1 when added, 0 when already present, -1 when out of memory. */
static int keyset_add(keyset *keys, uint64_t hash)
{
	uint32_t at;

	if (!hash)
		hash = 1;
	if ((uint64_t)(keys->count + 1) * 4 > (uint64_t)keys->cap * 3 && !keyset_grow(keys))
		return -1;
	for (at = (uint32_t)hash & (keys->cap - 1); keys->slots[at];
	     at = (at + 1) & (keys->cap - 1))
		if (keys->slots[at] == hash)
			return 0;
	keys->slots[at] = hash;
	keys->count++;
	return 1;
}

/* Open a container whose bracket is at pos. */
static sf_err push_level(sf_jscan *scan, int kind)
{
	level *lv;

	if (scan->depth >= scan->max_depth)
		return scan_fail(scan, SF_ERR_LIMIT, scan->base + scan->pos,
				 "expected at most %d levels of nesting (max_depth)",
				 scan->max_depth);
	if (scan->depth == scan->stack_cap) {
		int cap = scan->stack_cap ? scan->stack_cap * 2 : 16;
		level *stack;

		if (cap > scan->max_depth || cap < scan->stack_cap)
			cap = scan->max_depth;
		stack = realloc(scan->stack, (size_t)cap * sizeof(*stack));
		if (!stack)
			return scan_fail(scan, SF_ERR_NOMEM, scan->base + scan->pos,
					 "out of memory for nesting depth %d", scan->depth + 1);
		memset(stack + scan->stack_cap, 0,
		       (size_t)(cap - scan->stack_cap) * sizeof(*stack));
		scan->stack = stack;
		scan->stack_cap = cap;
	}
	if (scan->depth > 0)
		scan->stack[scan->depth - 1].state = ST_AFTER_VALUE;
	lv = &scan->stack[scan->depth++];
	lv->kind = (unsigned char)kind;
	lv->state = ST_BEGIN;
	return SF_OK;
}

/* A scalar value or a whole container has ended. */
static inline void value_done(sf_jscan *scan)
{
	if (scan->depth > 0)
		scan->stack[scan->depth - 1].state = ST_AFTER_VALUE;
	else
		scan->top_done = 1;
}

static void token_start(const sf_jscan *scan, sf_jtok *tok, sf_jtok_type type)
{
	tok->type = type;
	tok->start = scan->base + scan->pos;
	tok->end = tok->start;
	tok->depth = scan->depth;
	tok->text = NULL;
	tok->text_len = 0;
	tok->text_truncated = 0;
}

static sf_err close_level(sf_jscan *scan, sf_jtok *tok)
{
	level *lv = &scan->stack[scan->depth - 1];

	if (lv->kind == KIND_OBJECT)
		keyset_clear(&lv->keys);
	scan->depth--;
	token_start(scan, tok, lv->kind == KIND_OBJECT ? SF_JTOK_OBJECT_END : SF_JTOK_ARRAY_END);
	scan->pos++;
	tok->end = tok->start + 1;
	value_done(scan);
	return SF_OK;
}

/* ---- tokens ---- */

/* Start a scalar token: its text (if wanted) goes to the sinks. */
static void scalar_start(sf_jscan *scan, sf_jtok *tok, sf_jtok_type type, size_t text_limit)
{
	token_start(scan, tok, type);
	sink_reset(scan, text_limit, 0);
}

/* Read the value whose first byte c sits at pos (c < 0: end of input). */
static sf_err read_value(sf_jscan *scan, int c, sf_jtok *tok, int want_text)
{
	size_t text_limit = want_text ? SF_JSCAN_MAX_TEXT : 0;
	sf_err rc;

	switch (c) {
	case '{':
	case '[':
		token_start(scan, tok, c == '{' ? SF_JTOK_OBJECT_BEGIN : SF_JTOK_ARRAY_BEGIN);
		rc = push_level(scan, c == '{' ? KIND_OBJECT : KIND_ARRAY);
		if (rc != SF_OK)
			return rc;
		scan->pos++;
		tok->end = tok->start + 1;
		return SF_OK;
	case '"':
		scalar_start(scan, tok, SF_JTOK_STRING, text_limit);
		rc = scan_string(scan);
		break;
	case '-':
		scalar_start(scan, tok, SF_JTOK_NUMBER, text_limit);
		if (scan->allow_nan && ensure(scan, 2) >= 2 && scan->buf[scan->pos + 1] == 'I')
			rc = scan_literal(scan, "-Infinity");
		else
			rc = scan_number(scan);
		break;
	case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		scalar_start(scan, tok, SF_JTOK_NUMBER, text_limit);
		rc = scan_number(scan);
		break;
	case 't':
		scalar_start(scan, tok, SF_JTOK_TRUE, 0);
		rc = scan_literal(scan, "true");
		break;
	case 'f':
		scalar_start(scan, tok, SF_JTOK_FALSE, 0);
		rc = scan_literal(scan, "false");
		break;
	case 'n':
		scalar_start(scan, tok, SF_JTOK_NULL, 0);
		rc = scan_literal(scan, "null");
		break;
	case 'N':
	case 'I':
		if (!scan->allow_nan)
			return scan_fail(scan, SF_ERR_FORMAT, scan->base + scan->pos,
					 "expected a JSON value, found '%c' (NaN and Infinity"
					 " are not allowed here)", c);
		scalar_start(scan, tok, SF_JTOK_NUMBER, text_limit);
		rc = scan_literal(scan, c == 'N' ? "NaN" : "Infinity");
		break;
	case 0xef:
		/* Python never writes a byte order mark: name it, it is a
		   common way for a hand-edited file to break. */
		if (ensure(scan, 3) >= 3 && scan->buf[scan->pos + 1] == 0xbb &&
		    scan->buf[scan->pos + 2] == 0xbf)
			return scan_fail(scan, SF_ERR_FORMAT, scan->base + scan->pos,
					 "expected a JSON value, found a byte order mark");
		return fail_expected(scan, scan->pos, c, "a JSON value");
	default:
		return fail_expected(scan, scan->pos, c, "a JSON value");
	}
	if (rc != SF_OK)
		return rc;
	tok->end = scan->base + scan->pos;
	if (scan->text_limit)
		set_token_text(scan, tok);
	value_done(scan);
	return SF_OK;
}

/* Read the key whose opening quote should be c at pos. */
static sf_err read_key(sf_jscan *scan, int c, sf_jtok *tok, int want_text)
{
	level *lv = &scan->stack[scan->depth - 1];
	int dup = scan->reject_duplicate_keys;
	sf_err rc;

	if (c != '"')
		return fail_expected(scan, scan->pos, c, "a key (a string in double quotes)");
	token_start(scan, tok, SF_JTOK_KEY);
	sink_reset(scan, want_text || dup ? SF_JSCAN_MAX_TEXT : 0, dup);
	rc = scan_string(scan);
	if (rc != SF_OK)
		return rc;
	tok->end = scan->base + scan->pos;
	if (dup) {
		int added = keyset_add(&lv->keys, scan->key_hash);

		if (added < 0)
			return scan_fail(scan, SF_ERR_NOMEM, tok->start,
					 "out of memory for the keys of an object");
		if (added == 0) {
			size_t shown = scan->text_len;
			const char *more = "";

			if (shown > KEY_IN_MESSAGE) {
				/* Cut on a character boundary. */
				shown = KEY_IN_MESSAGE;
				while (shown > 0 && ((unsigned char)scan->text[shown] & 0xc0) == 0x80)
					shown--;
				more = "...";
			}
			return scan_fail(scan, SF_ERR_FORMAT, tok->start,
					 "duplicate key \"%.*s%s\"", (int)shown, scan->text, more);
		}
	}
	if (want_text)
		set_token_text(scan, tok);
	lv->state = ST_AFTER_KEY;
	return SF_OK;
}

static const char *after_member(const level *lv)
{
	return lv->kind == KIND_OBJECT ? "',' or '}' after an object member" :
					 "',' or ']' after an array element";
}

static sf_err advance(sf_jscan *scan, sf_jtok *tok, int want_text)
{
	level *lv;
	int c, close;

	if (scan->depth == 0) {
		c = skip_ws(scan);
		if (!scan->top_done)
			return read_value(scan, c, tok, want_text);
		if (c >= 0)
			return fail_expected(scan, scan->pos, c,
					     "the end of input after the top-level value");
		token_start(scan, tok, SF_JTOK_EOF);
		return scan->failed ? scan->error.code : SF_OK;
	}
	lv = &scan->stack[scan->depth - 1];
	close = lv->kind == KIND_OBJECT ? '}' : ']';
	c = skip_ws(scan);
	switch (lv->state) {
	case ST_BEGIN:
		if (c == close)
			return close_level(scan, tok);
		break;
	case ST_AFTER_VALUE:
		if (c == close)
			return close_level(scan, tok);
		if (c != ',')
			return fail_expected(scan, scan->pos, c, after_member(lv));
		scan->pos++;
		lv->state = ST_AFTER_COMMA;
		c = skip_ws(scan);
		break;
	case ST_AFTER_KEY:
		if (c != ':')
			return fail_expected(scan, scan->pos, c, "':' after the key");
		scan->pos++;
		return read_value(scan, skip_ws(scan), tok, want_text);
	default:
		break;
	}
	if (lv->kind == KIND_OBJECT)
		return read_key(scan, c, tok, want_text);
	return read_value(scan, c, tok, want_text);
}

/* ---- public ---- */

static sf_err create(sf_jscan **out, const char *name, const sf_jscan_options *options,
		     sf_error *err)
{
	sf_jscan_options defaults;
	sf_jscan *scan;

	*out = NULL;
	if (!options) {
		memset(&defaults, 0, sizeof(defaults));
		options = &defaults;
	}
	if (!name)
		name = "input";
	if (options->max_depth < 0)
		return sf_error_set(err, SF_ERR_INVALID, "'%s': max_depth %d is negative",
				    name, options->max_depth);
	scan = calloc(1, sizeof(*scan));
	if (!scan)
		goto nomem;
	scan->name = strdup(name);
	if (!scan->name)
		goto nomem_free;
	scan->fd = -1;
	scan->max_depth = options->max_depth ? options->max_depth : SF_JSCAN_DEFAULT_DEPTH;
	scan->reject_duplicate_keys = options->reject_duplicate_keys;
	scan->allow_nan = options->allow_nan;
	scan->window_cap = options->window_bytes ? options->window_bytes : WINDOW_DEFAULT;
	if (scan->window_cap < WINDOW_MIN)
		scan->window_cap = WINDOW_MIN;
	*out = scan;
	return SF_OK;
nomem_free:
	free(scan);
nomem:
	return sf_error_set(err, SF_ERR_NOMEM, "'%s': out of memory", name);
}

sf_err sf_jscan_open_fd(sf_jscan **out, int fd, const char *name,
			const sf_jscan_options *options, sf_error *err)
{
	sf_jscan *scan;
	sf_err rc;

	*out = NULL;
	rc = create(&scan, name, options, err);
	if (rc != SF_OK)
		return rc;
	scan->window = malloc(scan->window_cap);
	if (!scan->window) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "'%s': out of memory for a %zu-byte window",
				  scan->name, scan->window_cap);
		sf_jscan_free(scan);
		return rc;
	}
	scan->fd = fd;
	scan->buf = scan->window;
	*out = scan;
	return SF_OK;
}

sf_err sf_jscan_reopen_fd(sf_jscan *scan, int fd, const char *name, sf_error *err)
{
	char *copy;

	if (!scan->window)
		return sf_error_set(err, SF_ERR_INVALID, "'%s': not a scanner of a file", scan->name);
	copy = strdup(name ? name : "input");
	if (!copy)
		return sf_error_set(err, SF_ERR_NOMEM, "'%s': out of memory", name ? name : "input");
	free(scan->name);
	scan->name = copy;
	for (int i = 0; i < scan->depth; i++)
		keyset_clear(&scan->stack[i].keys);
	scan->depth = 0;
	scan->fd = fd;
	scan->buf = scan->window;
	scan->len = scan->pos = 0;
	scan->base = scan->keep = 0;
	scan->eof = 0;
	scan->top_done = 0;
	scan->newlines = 0;
	scan->failed = 0;
	memset(&scan->error, 0, sizeof(scan->error));
	scan->text_limit = scan->text_len = 0;
	scan->hashing = scan->hash_streaming = 0;
	return SF_OK;
}

sf_err sf_jscan_open_mem(sf_jscan **out, const void *data, size_t len,
			 const char *name, const sf_jscan_options *options,
			 sf_error *err)
{
	sf_jscan *scan;
	sf_err rc;

	*out = NULL;
	rc = create(&scan, name, options, err);
	if (rc != SF_OK)
		return rc;
	scan->buf = data ? data : (const void *)"";
	scan->len = data ? len : 0;
	scan->eof = 1;
	*out = scan;
	return SF_OK;
}

sf_err sf_jscan_next(sf_jscan *scan, sf_jtok *tok, sf_error *err)
{
	if (!scan->failed)
		advance(scan, tok, 1);
	if (scan->failed)
		return copy_error(scan, err);
	return SF_OK;
}

/*
 * Move to the first byte of a value, consuming the ',' or ':' before it,
 * and return that byte; anything but a place for a value is an error.
 */
static int before_value(sf_jscan *scan)
{
	level *lv;
	int c = skip_ws(scan);

	if (scan->depth == 0) {
		if (scan->top_done) {
			if (c < 0)
				scan_fail(scan, SF_ERR_FORMAT, scan->base + scan->pos,
					  "expected a JSON value, found the end of input"
					  " after the top-level value");
			else
				fail_expected(scan, scan->pos, c,
					      "the end of input after the top-level value");
		}
		return c;
	}
	lv = &scan->stack[scan->depth - 1];
	switch (lv->state) {
	case ST_AFTER_KEY:
		if (c != ':') {
			fail_expected(scan, scan->pos, c, "':' after the key");
			return c;
		}
		scan->pos++;
		return skip_ws(scan);
	case ST_AFTER_VALUE:
		if (lv->kind == KIND_OBJECT || c != ',') {
			fail_expected(scan, scan->pos, c,
				      c == ']' || lv->kind == KIND_OBJECT ?
				      "a JSON value" : after_member(lv));
			return c;
		}
		scan->pos++;
		lv->state = ST_AFTER_COMMA;
		return skip_ws(scan);
	default:
		if (lv->kind == KIND_OBJECT)
			fail_expected(scan, scan->pos, c, "a JSON value");
		return c;
	}
}

/* ---- skipping a value inside the window ----
 *
 * The packer skips every row of every batch file. A row almost always
 * lies whole inside the window, and then one tight pass over its bytes
 * checks what the token path checks, without tokens: structure, strings
 * (escapes, UTF-8), the number grammar, literals, nesting depth and
 * duplicate keys (the same XXH64 of the raw key bytes). It gives up,
 * changing nothing, at the window's end, at NaN or Infinity, past
 * FAST_LEVELS levels or FAST_KEYS keys open at once, and at anything
 * wrong; the token path then reads the value from its start and names
 * the fault as before. */
#define FAST_LEVELS 32
#define FAST_KEYS 128

static inline size_t fast_space(const unsigned char *buf, size_t pos, size_t len, uint64_t *newlines)
{
	/* most often no white space, or the one space of ", " and ": "
	   (every white space byte is at most ' ') */
	if (pos < len && buf[pos] > ' ')
		return pos;
	if (len - pos >= 2 && buf[pos] == ' ' && buf[pos + 1] > ' ')
		return pos + 1;
	while (pos < len) {
		unsigned char c = buf[pos];

		if (c == '\n')
			(*newlines)++;
		else if (c != ' ' && c != '\t' && c != '\r')
			break;
		pos++;
	}
	return pos;
}

/* Past the string whose '"' is at pos; 0 to give up. */
static inline size_t fast_string(const unsigned char *buf, size_t pos, size_t len)
{
	pos++;
	for (;;) {
		size_t n;
		int c;

		pos = plain_run(buf, pos, len);
		if (len - pos < 6)
			return 0;
		c = buf[pos];
		if (c == '"')
			return pos + 1;
		if (c == '\\') {
			n = escape_fast(buf + pos);
			if (n == 0)
				return 0;
			pos += n;
			continue;
		}
		if (c < 0x80)
			return 0;
		/* a run of multi-byte characters (text in most scripts but
		   Latin) without going back to the word loop between them */
		do {
			n = utf8_fast(buf + pos);
			if (n == 0)
				return 0;
			pos += n;
			if (len - pos < 6)
				return 0;
		} while (buf[pos] >= 0x80);
	}
}

/* Past the number at pos ('-' or a digit); 0 to give up. */
static inline size_t fast_number(const unsigned char *buf, size_t pos, size_t len)
{
	if (buf[pos] == '-')
		pos++;
	if (pos >= len || !is_digit(buf[pos]))
		return 0;
	if (buf[pos] == '0') {
		pos++;
		if (pos < len && is_digit(buf[pos]))
			return 0;  /* a leading zero: the token path names it here */
	} else {
		pos = digit_run(buf, pos, len);
	}
	if (pos < len && buf[pos] == '.') {
		pos++;
		if (pos >= len || !is_digit(buf[pos]))
			return 0;
		pos = digit_run(buf, pos, len);
	}
	if (pos < len && (buf[pos] == 'e' || buf[pos] == 'E')) {
		pos++;
		if (pos < len && (buf[pos] == '+' || buf[pos] == '-'))
			pos++;
		if (pos >= len || !is_digit(buf[pos]))
			return 0;
		pos = digit_run(buf, pos, len);
	}
	/* a number may go on past the window */
	return pos < len ? pos : 0;
}

/* The value at scan->pos, skipped: 1 with the window position past it
   and the newlines of its white space; 0 when the token path must read
   it (nothing changed). */
static int skip_fast(const sf_jscan *scan, size_t *end_pos, uint64_t *newlines_out)
{
	const unsigned char *buf = scan->buf;
	size_t pos = scan->pos, len = scan->len;
	unsigned char kind[FAST_LEVELS];
	unsigned key_base[FAST_LEVELS];
	uint64_t keys[FAST_KEYS];
	uint64_t newlines = 0;
	unsigned key_count = 0;
	int depth = 0;

	for (;;) {
		/* a value starts at pos */
		if (pos >= len)
			return 0;
		switch (buf[pos]) {
		case '{':
		case '[':
			if (depth == FAST_LEVELS || scan->depth + depth >= scan->max_depth)
				return 0;
			kind[depth] = buf[pos] == '{' ? KIND_OBJECT : KIND_ARRAY;
			key_base[depth] = key_count;
			depth++;
			pos = fast_space(buf, pos + 1, len, &newlines);
			if (pos >= len)
				return 0;
			if (buf[pos] == (kind[depth - 1] == KIND_OBJECT ? '}' : ']')) {
				pos++;
				depth--;
				break;  /* an empty container: a value ended */
			}
			if (kind[depth - 1] == KIND_OBJECT)
				goto key;
			continue;
		case '"':
			pos = fast_string(buf, pos, len);
			break;
		case '-': case '0': case '1': case '2': case '3': case '4':
		case '5': case '6': case '7': case '8': case '9':
			pos = fast_number(buf, pos, len);
			break;
		case 't':
			pos = len - pos > 4 && memcmp(buf + pos, "true", 4) == 0 ? pos + 4 : 0;
			break;
		case 'f':
			pos = len - pos > 5 && memcmp(buf + pos, "false", 5) == 0 ? pos + 5 : 0;
			break;
		case 'n':
			pos = len - pos > 4 && memcmp(buf + pos, "null", 4) == 0 ? pos + 4 : 0;
			break;
		default:
			return 0;
		}
		if (pos == 0)
			return 0;
		/* a value ended: close what it ends, then the next member */
		for (;;) {
			int close;

			if (depth == 0) {
				*end_pos = pos;
				*newlines_out = newlines;
				return 1;
			}
			pos = fast_space(buf, pos, len, &newlines);
			if (pos >= len)
				return 0;
			close = kind[depth - 1] == KIND_OBJECT ? '}' : ']';
			if (buf[pos] == close) {
				pos++;
				depth--;
				key_count = key_base[depth];
				continue;
			}
			if (buf[pos] != ',')
				return 0;
			pos = fast_space(buf, pos + 1, len, &newlines);
			if (kind[depth - 1] == KIND_ARRAY)
				break;
			goto key;
		}
		continue;
key:
		/* an object member starts at pos: "key" : value */
		{
			size_t key_start = pos + 1, key_end;

			if (pos >= len || buf[pos] != '"')
				return 0;
			pos = fast_string(buf, pos, len);
			if (pos == 0)
				return 0;
			key_end = pos - 1;
			if (scan->reject_duplicate_keys) {
				uint64_t hash = sf_xxh64(buf + key_start, key_end - key_start, 0);
				unsigned k;

				if (!hash)
					hash = 1;  /* as keyset_add has it */
				for (k = key_base[depth - 1]; k < key_count; k++)
					if (keys[k] == hash)
						return 0;
				if (key_count == FAST_KEYS)
					return 0;
				keys[key_count++] = hash;
			}
			pos = fast_space(buf, pos, len, &newlines);
			if (pos >= len || buf[pos] != ':')
				return 0;
			pos = fast_space(buf, pos + 1, len, &newlines);
		}
	}
}

sf_err sf_jscan_skip_value(sf_jscan *scan, uint64_t *start, uint64_t *end,
			   uint64_t *newlines, sf_error *err)
{
	uint64_t newlines_before;
	sf_jtok tok;
	int floor, c;

	if (scan->failed)
		return copy_error(scan, err);
	c = before_value(scan);
	if (scan->failed)
		return copy_error(scan, err);
	newlines_before = scan->newlines;
	floor = scan->depth;
	if (c >= 0) {
		size_t end_pos;
		uint64_t value_newlines;

		if (skip_fast(scan, &end_pos, &value_newlines)) {
			if (start)
				*start = scan->base + scan->pos;
			if (end)
				*end = scan->base + end_pos;
			if (newlines)
				*newlines = value_newlines;
			scan->pos = end_pos;
			scan->newlines += value_newlines;
			value_done(scan);
			return SF_OK;
		}
	}
	if (read_value(scan, c, &tok, 0) != SF_OK)
		return copy_error(scan, err);
	if (start)
		*start = tok.start;
	/* No recursion: nesting lives on the scanner's stack. */
	while (scan->depth > floor)
		if (advance(scan, &tok, 0) != SF_OK)
			return copy_error(scan, err);
	if (scan->failed)
		return copy_error(scan, err);   /* a read error after the value */
	if (end)
		*end = tok.end;
	if (newlines)
		*newlines = scan->newlines - newlines_before;
	return SF_OK;
}

int sf_jscan_at_container_end(sf_jscan *scan)
{
	level *lv;
	int c, close;

	if (scan->failed || scan->depth == 0)
		return 0;
	lv = &scan->stack[scan->depth - 1];
	close = lv->kind == KIND_OBJECT ? '}' : ']';
	c = skip_ws(scan);
	switch (lv->state) {
	case ST_BEGIN:
		return c == close;
	case ST_AFTER_VALUE:
		if (c == close)
			return 1;
		if (c == ',') {
			scan->pos++;
			lv->state = ST_AFTER_COMMA;
			skip_ws(scan);
		}
		return 0;
	default:
		return 0;
	}
}

int sf_jscan_input_end(const sf_jscan *scan, uint64_t *length)
{
	if (!scan->eof || scan->failed)
		return 0;
	*length = scan->base + scan->len;
	return 1;
}

uint64_t sf_jscan_offset(const sf_jscan *scan)
{
	return scan->base + scan->pos;
}

void sf_jscan_keep_from(sf_jscan *scan, uint64_t offset)
{
	scan->keep = offset;
}

const unsigned char *sf_jscan_bytes(const sf_jscan *scan, uint64_t offset, size_t *avail)
{
	if (offset < scan->base || offset >= scan->base + scan->len) {
		*avail = 0;
		return NULL;
	}
	*avail = (size_t)(scan->base + scan->len - offset);
	return scan->buf + (offset - scan->base);
}

void sf_jscan_free(sf_jscan *scan)
{
	if (!scan)
		return;
	for (int i = 0; i < scan->stack_cap; i++)
		free(scan->stack[i].keys.slots);
	free(scan->stack);
	free(scan->window);
	free(scan->name);
	free(scan);
}
