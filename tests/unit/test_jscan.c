/* Unit tests of the streaming JSON scanner: tokens, offsets, errors, windows. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "sf_jscan.h"

#define WINDOW_SMALL 65536

typedef struct strbuf {
	char *data;
	size_t len, cap;
} strbuf;

static void sb_add(strbuf *sb, const void *data, size_t len)
{
	if (sb->len + len + 1 > sb->cap) {
		sb->cap = (sb->len + len + 1) * 2;
		sb->data = realloc(sb->data, sb->cap);
		if (!sb->data)
			abort();
	}
	memcpy(sb->data + sb->len, data, len);
	sb->len += len;
	sb->data[sb->len] = '\0';
}

static void sb_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(strbuf *sb, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	sb_add(sb, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void sb_addstr(strbuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

static const char *const type_names[] = {
	"{", "}", "[", "]", "K", "S", "N", "T", "F", "Z", "EOF"
};

static sf_jscan_options opts(int allow_nan, int reject_dup, int max_depth, size_t window)
{
	sf_jscan_options o;

	memset(&o, 0, sizeof(o));
	o.allow_nan = allow_nan;
	o.reject_duplicate_keys = reject_dup;
	o.max_depth = max_depth;
	o.window_bytes = window;
	return o;
}

/* Input in a temporary file, positioned at its start. */
static int temp_fd(const void *data, size_t len)
{
	char path[] = "/tmp/test_jscan.XXXXXX";
	const char *p = data;
	int fd = mkstemp(path);

	if (fd < 0)
		abort();
	unlink(path);
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n <= 0)
			abort();
		p += n;
		len -= (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	return fd;
}

/*
 * The whole token stream as text: "type@start-end/depth'text'" per token,
 * then "ERR code: message" on failure. Tokens with long texts show their
 * length only.
 */
static void render_tokens(sf_jscan *scan, strbuf *out)
{
	sf_error err;
	sf_jtok tok;

	for (;;) {
		if (sf_jscan_next(scan, &tok, &err) != SF_OK) {
			sb_printf(out, "ERR %d: %s", err.code, err.message);
			return;
		}
		sb_printf(out, "%s@%llu-%llu/%d", type_names[tok.type],
			  (unsigned long long)tok.start, (unsigned long long)tok.end, tok.depth);
		if (tok.text && tok.text_len <= 32) {
			sb_addstr(out, "'");
			sb_add(out, tok.text, tok.text_len);
			sb_addstr(out, "'");
		} else if (tok.type == SF_JTOK_KEY || tok.type == SF_JTOK_STRING ||
			   tok.type == SF_JTOK_NUMBER) {
			sb_printf(out, "#%zu%s", tok.text_len, tok.text_truncated ? "T" : "");
			if (tok.text && strlen(tok.text) != tok.text_len)
				sb_addstr(out, "!len");
		}
		sb_addstr(out, " ");
		if (tok.type == SF_JTOK_EOF)
			return;
	}
}

static char *tokens_mem(const char *doc, size_t len, const sf_jscan_options *o)
{
	strbuf out = { 0 };
	sf_jscan *scan = NULL;

	if (sf_jscan_open_mem(&scan, doc, len, "t", o, NULL) != SF_OK)
		abort();
	render_tokens(scan, &out);
	sf_jscan_free(scan);
	return out.data;
}

static char *tokens_fd(const char *doc, size_t len, const sf_jscan_options *o)
{
	strbuf out = { 0 };
	sf_jscan *scan = NULL;
	int fd = temp_fd(doc, len);

	if (sf_jscan_open_fd(&scan, fd, "t", o, NULL) != SF_OK)
		abort();
	render_tokens(scan, &out);
	sf_jscan_free(scan);
	close(fd);
	return out.data;
}

static void check_tokens(const char *doc, const char *expected, const char *what)
{
	sf_jscan_options o = opts(1, 1, 0, 0);
	char *got = tokens_mem(doc, strlen(doc), &o);

	if (!CHECK(strcmp(got, expected) == 0, what))
		printf("#   got      %s\n#   expected %s\n", got, expected);
	free(got);
}

/* Scan a whole document with skip_value; returns the code, err filled. */
static sf_err skip_whole(sf_jscan *scan, uint64_t *start, uint64_t *end, uint64_t *newlines,
			 sf_error *err)
{
	sf_jtok tok;
	sf_err rc = sf_jscan_skip_value(scan, start, end, newlines, err);

	if (rc == SF_OK)
		rc = sf_jscan_next(scan, &tok, err);
	if (rc == SF_OK && tok.type != SF_JTOK_EOF)
		abort();
	return rc;
}

/*
 * Both paths (tokens and skip_value) must fail on doc with code and a
 * message that starts with "'t': byte OFFSET: " and contains needle.
 */
static void check_error(const char *doc, size_t len, const sf_jscan_options *o, sf_err code,
			uint64_t offset, const char *needle, const char *what)
{
	char prefix[64], label[160];
	sf_jscan *scan = NULL;
	sf_error err, again;
	sf_jtok tok;
	sf_err rc = SF_OK;
	int ok;

	snprintf(prefix, sizeof(prefix), "'t': byte %llu: ", (unsigned long long)offset);
	for (int path = 0; path < 2; path++) {
		memset(&err, 0, sizeof(err));
		sf_jscan_open_mem(&scan, doc, len, "t", o, NULL);
		if (path == 0) {
			do
				rc = sf_jscan_next(scan, &tok, &err);
			while (rc == SF_OK && tok.type != SF_JTOK_EOF);
		} else {
			rc = skip_whole(scan, NULL, NULL, NULL, &err);
		}
		ok = rc == code && strncmp(err.message, prefix, strlen(prefix)) == 0 &&
		     strstr(err.message, needle) != NULL;
		snprintf(label, sizeof(label), "%s (%s)", what, path ? "skip" : "tokens");
		if (!CHECK(ok, label))
			printf("#   got %d '%s'\n#   expected %d '%s...%s'\n", rc, err.message,
			       code, prefix, needle);
		/* The error sticks. */
		if (rc != SF_OK) {
			sf_jscan_next(scan, &tok, &again);
			ok = again.code == err.code && strcmp(again.message, err.message) == 0 &&
			     sf_jscan_skip_value(scan, NULL, NULL, NULL, &again) == rc &&
			     !sf_jscan_at_container_end(scan);
			snprintf(label, sizeof(label), "%s: error sticks (%s)", what,
				 path ? "skip" : "tokens");
			CHECK(ok, label);
		}
		sf_jscan_free(scan);
	}
}

static void check_bad(const char *doc, uint64_t offset, const char *needle, const char *what)
{
	sf_jscan_options o = opts(0, 1, 0, 0);

	check_error(doc, strlen(doc), &o, SF_ERR_FORMAT, offset, needle, what);
}

static void check_good(const char *doc, size_t len, const sf_jscan_options *o, const char *what)
{
	sf_jscan *scan = NULL;
	sf_error err;
	uint64_t start = 1, end = 0;
	char label[160];
	char *got = tokens_mem(doc, len, o);

	snprintf(label, sizeof(label), "%s (tokens)", what);
	if (!CHECK(strstr(got, "ERR") == NULL, label))
		printf("#   %s\n", got);
	free(got);
	sf_jscan_open_mem(&scan, doc, len, "t", o, NULL);
	snprintf(label, sizeof(label), "%s (skip)", what);
	if (!CHECK(skip_whole(scan, &start, &end, NULL, &err) == SF_OK && end > start, label))
		printf("#   %s\n", err.message);
	sf_jscan_free(scan);
}

static void check_good_str(const char *doc, const sf_jscan_options *o, const char *what)
{
	check_good(doc, strlen(doc), o, what);
}

static void test_tokens(void)
{
	check_tokens("{\"a\":1,\"bc\":[true,false,null,\"x\\n\"],\"d\":{}}",
		     "{@0-1/0 K@1-4/1'a' N@5-6/1'1' K@7-11/1'bc' [@12-13/1 T@13-17/2 "
		     "F@18-23/2 Z@24-28/2 S@29-34/2'x\\n' ]@34-35/1 K@36-39/1'd' {@40-41/1 "
		     "}@41-42/1 }@42-43/0 EOF@43-43/0 ",
		     "tokens of a small object with offsets and depths");
	check_tokens(" \n[ -1.5e+3 , 0 ,\"\" ] \r\n\t",
		     "[@2-3/0 N@4-11/1'-1.5e+3' N@14-15/1'0' S@17-19/1'' ]@20-21/0 "
		     "EOF@25-25/0 ",
		     "whitespace around tokens");
	check_tokens("42", "N@0-2/0'42' EOF@2-2/0 ", "a top-level number");
	check_tokens("\"caf\xc3\xa9 \\ud800\"", "S@0-14/0'caf\xc3\xa9 \\ud800' EOF@14-14/0 ",
		     "a top-level string with UTF-8 and a lone surrogate escape");
	check_tokens("[NaN,-Infinity,Infinity]",
		     "[@0-1/0 N@1-4/1'NaN' N@5-14/1'-Infinity' N@15-23/1'Infinity' "
		     "]@23-24/0 EOF@24-24/0 ",
		     "NaN and Infinity with allow_nan");
	check_tokens("[[[]]]", "[@0-1/0 [@1-2/1 [@2-3/2 ]@3-4/2 ]@4-5/1 ]@5-6/0 EOF@6-6/0 ",
		     "nested arrays");
	check_tokens("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uDC80\"",
		     "S@0-30/0'\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uDC80' EOF@30-30/0 ",
		     "every escape, raw");
}

static void test_text_limits(void)
{
	sf_jscan_options o = opts(0, 0, 0, 0);
	size_t n = SF_JSCAN_MAX_TEXT;
	char *doc = malloc(n + 8);
	sf_jscan *scan = NULL;
	sf_jtok tok;

	doc[0] = '"';
	memset(doc + 1, 'x', n);
	doc[n + 1] = '"';
	sf_jscan_open_mem(&scan, doc, n + 2, "t", &o, NULL);
	CHECK(sf_jscan_next(scan, &tok, NULL) == SF_OK && tok.text && tok.text_len == n &&
	      !tok.text_truncated && tok.text[n] == '\0', "text of SF_JSCAN_MAX_TEXT bytes is given");
	sf_jscan_free(scan);
	doc[n + 1] = 'x';
	doc[n + 2] = '"';
	sf_jscan_open_mem(&scan, doc, n + 3, "t", &o, NULL);
	CHECK(sf_jscan_next(scan, &tok, NULL) == SF_OK && !tok.text && tok.text_len == n + 1 &&
	      tok.text_truncated && tok.end == n + 3, "longer text is withheld, length kept");
	sf_jscan_free(scan);
	memset(doc, '7', n + 1);
	sf_jscan_open_mem(&scan, doc, n + 1, "t", &o, NULL);
	CHECK(sf_jscan_next(scan, &tok, NULL) == SF_OK && tok.type == SF_JTOK_NUMBER && !tok.text &&
	      tok.text_truncated && tok.end == n + 1, "a long number is withheld too");
	sf_jscan_free(scan);
	free(doc);
}

static void test_skip(void)
{
	const char *doc = "{\"skip\": {\"x\": [1, {\"y\": \"}\"}]}, \"n\": 5 , \"a\":[ 1,2 , [3] ]}";
	sf_jscan_options o = opts(0, 1, 0, 0);
	sf_jscan *scan = NULL;
	uint64_t start = 0, end = 0, newlines = 9;
	sf_jtok tok;
	sf_err rc;
	int count = 0;

	sf_jscan_open_mem(&scan, doc, strlen(doc), "t", &o, NULL);
	sf_jscan_next(scan, &tok, NULL);
	sf_jscan_next(scan, &tok, NULL);
	rc = sf_jscan_skip_value(scan, &start, &end, &newlines, NULL);
	CHECK(rc == SF_OK && start == 9 && end == 31 && newlines == 0, "skip an object value after a key");
	CHECK(sf_jscan_next(scan, &tok, NULL) == SF_OK && tok.type == SF_JTOK_KEY &&
	      strcmp(tok.text, "n") == 0, "next key after a skipped value");
	rc = sf_jscan_skip_value(scan, &start, &end, NULL, NULL);
	CHECK(rc == SF_OK && start == 38 && end == 39, "skip a number");
	sf_jscan_next(scan, &tok, NULL);
	sf_jscan_next(scan, &tok, NULL);
	CHECK(tok.type == SF_JTOK_ARRAY_BEGIN && tok.start == 46, "array begins");
	while (!sf_jscan_at_container_end(scan)) {
		rc = sf_jscan_skip_value(scan, &start, &end, NULL, NULL);
		if (rc != SF_OK)
			break;
		count++;
	}
	CHECK(rc == SF_OK && count == 3 && start == 54 && end == 57, "skip every element of an array");
	CHECK(sf_jscan_next(scan, &tok, NULL) == SF_OK && tok.type == SF_JTOK_ARRAY_END &&
	      tok.start == 58, "array end after the loop");
	CHECK(sf_jscan_next(scan, &tok, NULL) == SF_OK && tok.type == SF_JTOK_OBJECT_END &&
	      tok.depth == 0, "object end");
	CHECK(sf_jscan_next(scan, &tok, NULL) == SF_OK && tok.type == SF_JTOK_EOF &&
	      tok.start == strlen(doc), "eof");
	CHECK(sf_jscan_next(scan, &tok, NULL) == SF_OK && tok.type == SF_JTOK_EOF, "eof again");
	CHECK_EQ_U64(sf_jscan_offset(scan), strlen(doc), "offset at the end");
	sf_jscan_free(scan);

	/* skip_value where a key or a close comes next is an error. */
	sf_jscan_open_mem(&scan, "{\"a\":1}", 7, "t", &o, NULL);
	sf_jscan_next(scan, &tok, NULL);
	CHECK(sf_jscan_skip_value(scan, NULL, NULL, NULL, NULL) == SF_ERR_FORMAT,
	      "skip_value where a key comes next fails");
	sf_jscan_free(scan);
	sf_jscan_open_mem(&scan, "[]", 2, "t", &o, NULL);
	sf_jscan_next(scan, &tok, NULL);
	CHECK(sf_jscan_at_container_end(scan) == 1 && sf_jscan_at_container_end(scan) == 1,
	      "empty array: at end, twice");
	CHECK(sf_jscan_skip_value(scan, NULL, NULL, NULL, NULL) == SF_ERR_FORMAT,
	      "skip_value at ']' fails");
	sf_jscan_free(scan);
	sf_jscan_open_mem(&scan, "{ }", 3, "t", &o, NULL);
	CHECK(sf_jscan_at_container_end(scan) == 0, "at_container_end at the top level is 0");
	sf_jscan_next(scan, &tok, NULL);
	CHECK(sf_jscan_at_container_end(scan) == 1, "empty object: at end");
	sf_jscan_free(scan);
	/* Trailing comma through at_container_end. */
	sf_jscan_open_mem(&scan, "[1,]", 4, "t", &o, NULL);
	sf_jscan_next(scan, &tok, NULL);
	sf_jscan_next(scan, &tok, NULL);
	CHECK(sf_jscan_at_container_end(scan) == 0 && sf_jscan_offset(scan) == 3,
	      "at_container_end consumes the comma");
	CHECK(sf_jscan_at_container_end(scan) == 0, "and then returns 0 at the ']'");
	CHECK(sf_jscan_next(scan, &tok, NULL) == SF_ERR_FORMAT, "the trailing comma is an error");
	sf_jscan_free(scan);
	/* A bad byte: 0, and the next call reports it. */
	sf_jscan_open_mem(&scan, "[1 x]", 5, "t", &o, NULL);
	sf_jscan_next(scan, &tok, NULL);
	sf_jscan_next(scan, &tok, NULL);
	CHECK(sf_jscan_at_container_end(scan) == 0, "at_container_end at a bad byte is 0");
	{
		sf_error err;

		CHECK(sf_jscan_skip_value(scan, NULL, NULL, NULL, &err) == SF_ERR_FORMAT &&
		      strstr(err.message, "byte 3: expected ',' or ']'"), "the next call reports it");
	}
	sf_jscan_free(scan);
	/* Skipping consecutive elements without at_container_end. */
	sf_jscan_open_mem(&scan, "[10,20]", 7, "t", &o, NULL);
	sf_jscan_next(scan, &tok, NULL);
	sf_jscan_skip_value(scan, NULL, NULL, NULL, NULL);
	CHECK(sf_jscan_skip_value(scan, &start, &end, NULL, NULL) == SF_OK && start == 4 && end == 6,
	      "skip_value after an element consumes the comma");
	sf_jscan_free(scan);
}

/* The packer's loop over {"seq_no":..,"data":[[row,row],[row]]}. */
static int batch_rows(sf_jscan *scan, uint64_t *ranges, uint64_t *newlines, int max, sf_error *err)
{
	sf_jtok tok;
	int n = 0;

	if (sf_jscan_next(scan, &tok, err) != SF_OK || tok.type != SF_JTOK_OBJECT_BEGIN)
		return -1;
	for (;;) {
		if (sf_jscan_next(scan, &tok, err) != SF_OK)
			return -1;
		if (tok.type == SF_JTOK_OBJECT_END)
			break;
		if (strcmp(tok.text, "data") != 0) {
			if (sf_jscan_skip_value(scan, NULL, NULL, NULL, err) != SF_OK)
				return -1;
			continue;
		}
		if (sf_jscan_next(scan, &tok, err) != SF_OK || tok.type != SF_JTOK_ARRAY_BEGIN)
			return -1;
		while (!sf_jscan_at_container_end(scan)) {
			if (sf_jscan_next(scan, &tok, err) != SF_OK || tok.type != SF_JTOK_ARRAY_BEGIN)
				return -1;
			while (!sf_jscan_at_container_end(scan)) {
				if (n >= max || sf_jscan_skip_value(scan, &ranges[2 * n],
								    &ranges[2 * n + 1],
								    &newlines[n], err) != SF_OK)
					return -1;
				n++;
			}
			if (sf_jscan_next(scan, &tok, err) != SF_OK || tok.type != SF_JTOK_ARRAY_END)
				return -1;
		}
		if (sf_jscan_next(scan, &tok, err) != SF_OK || tok.type != SF_JTOK_ARRAY_END)
			return -1;
	}
	if (sf_jscan_next(scan, &tok, err) != SF_OK || tok.type != SF_JTOK_EOF)
		return -1;
	return n;
}

static void test_batch(void)
{
	const char *compact = "{\"seq_no\":0,\"data\":[[{\"a\":1},{\"b\":\"\xc3\xa9\"}],[],[[2]]]}";
	const char *pretty =
		"{\n"
		"  \"seq_no\": 0,\n"
		"  \"data\": [\n"
		"    [\n"
		"      {\n"
		"        \"a\": 1,\n"
		"        \"l\": [\n"
		"          1,\n"
		"          2\n"
		"        ]\n"
		"      },\n"
		"      \"s\"\n"
		"    ]\n"
		"  ]\n"
		"}";
	sf_jscan_options o = opts(1, 1, 0, 0);
	uint64_t ranges[16], newlines[8];
	sf_jscan *scan = NULL;
	sf_error err;
	int n;

	sf_jscan_open_mem(&scan, compact, strlen(compact), "t", &o, NULL);
	n = batch_rows(scan, ranges, newlines, 8, &err);
	CHECK(n == 3, "three rows in a compact batch");
	CHECK(ranges[0] == 21 && ranges[1] == 28 && ranges[2] == 29 && ranges[3] == 39,
	      "compact rows: end and start one ',' apart");
	CHECK(ranges[4] == 45 && ranges[5] == 48, "row in a later list");
	CHECK(newlines[0] == 0 && newlines[1] == 0, "no newlines in compact rows");
	sf_jscan_free(scan);

	sf_jscan_open_mem(&scan, pretty, strlen(pretty), "t", &o, NULL);
	n = batch_rows(scan, ranges, newlines, 8, &err);
	CHECK(n == 2, "two rows in a pretty batch");
	CHECK(n == 2 && memcmp(pretty + ranges[0], "{\n        \"a\"", 13) == 0 &&
	      pretty[ranges[1] - 1] == '}' && newlines[0] == 6, "pretty row 1 with 6 newlines");
	CHECK(n == 2 && ranges[3] - ranges[2] == 3 && newlines[1] == 0, "pretty row 2");
	sf_jscan_free(scan);
}

static void test_errors(void)
{
	sf_jscan_options o = opts(0, 1, 0, 0);
	sf_jscan_options nan = opts(1, 0, 0, 0);
	char *deep;

	check_bad("", 0, "unexpected end of input, expected a JSON value", "empty input");
	check_bad("  \n ", 4, "unexpected end of input, expected a JSON value", "only whitespace");
	check_bad("\xef\xbb\xbf{}", 0, "expected a JSON value, found a byte order mark", "BOM");
	check_bad("{} x", 3, "expected the end of input after the top-level value, found 'x'",
		  "trailing garbage");
	check_bad("{}{}", 2, "expected the end of input", "two top-level values");
	check_bad("[1,]", 3, "expected a JSON value, found ']'", "trailing comma in an array");
	check_bad("{\"a\":1,}", 7, "expected a key", "trailing comma in an object");
	check_bad("[,1]", 1, "expected a JSON value, found ','", "leading comma");
	check_bad("[1 2]", 3, "expected ',' or ']' after an array element, found '2'", "missing comma");
	check_bad("{\"a\" 1}", 5, "expected ':' after the key, found '1'", "missing colon");
	check_bad("{1:2}", 1, "expected a key", "number as key");
	check_bad("[1}", 2, "expected ',' or ']'", "mismatched close");
	check_bad("{\"a\":1]", 6, "expected ',' or '}'", "mismatched close in an object");
	check_bad("01", 1, "after a leading '0', found '1'", "leading zero");
	check_bad("[-01]", 3, "leading '0'", "leading zero after minus");
	check_bad("-", 1, "unexpected end of input, expected a digit after '-'", "lone minus");
	check_bad("[-]", 2, "expected a digit after '-', found ']'", "minus then close");
	check_bad("1.", 2, "unexpected end of input, expected a digit after '.'", "1.");
	check_bad("[1.e5]", 3, "expected a digit after '.', found 'e'", "1.e5");
	check_bad("1e", 2, "unexpected end of input, expected a digit in the exponent", "1e");
	check_bad("[1e+]", 4, "expected a digit in the exponent, found ']'", "1e+");
	check_bad("[.5]", 1, "expected a JSON value, found '.'", ".5");
	check_bad("[+1]", 1, "expected a JSON value, found '+'", "+1");
	check_bad("[0x10]", 2, "expected ',' or ']'", "hex number");
	/* (", 123456789]": see test_good_values) */
	check_bad("[123456789012345678x, 123456789]", 19, "expected ',' or ']' after an array element, found 'x'",
		  "a letter after 18 digits");
	check_bad("[12345678/, 123456789]", 9, "found '/'", "'/' (just below '0') after 8 digits");
	check_bad("[1.1234567:, 123456789]", 10, "found ':'", "':' (just above '9') after 7 fraction digits");
	check_bad("[1234567\xb5, 123456789]", 8, "found byte 0xb5", "a high byte whose low bits are a digit");
	check_error("[1e1234567\x00, 123456789]", 23, &o, SF_ERR_FORMAT, 10, "found byte 0x00", "NUL after exponent digits");
	check_bad("[tru]", 4, "expected 'true', found ']'", "tru");
	check_bad("[nul", 4, "unexpected end of input, expected 'null'", "truncated literal");
	check_bad("[True]", 1, "expected a JSON value, found 'T'", "True");
	check_bad("[truex]", 5, "expected ',' or ']'", "literal then letter");
	check_bad("[NaN]", 1, "NaN and Infinity are not allowed", "NaN without allow_nan");
	check_bad("Infinity", 0, "NaN and Infinity are not allowed", "Infinity without allow_nan");
	check_bad("[-Infinity]", 2, "expected a digit after '-', found 'I'",
		  "-Infinity without allow_nan");
	check_error("[nan]", 5, &nan, SF_ERR_FORMAT, 2, "expected 'null', found 'a'",
		    "lower-case nan");
	check_error("[-Inf]", 6, &nan, SF_ERR_FORMAT, 5, "expected '-Infinity', found ']'",
		    "-Inf with allow_nan");
	check_error("[NaN", 4, &nan, SF_ERR_FORMAT, 4, "expected ',' or ']'", "NaN then eof");
	check_bad("\"abc", 4, "unexpected end of input, expected '\"' to close the string",
		  "unterminated string");
	check_bad("[\"a\x01\"]", 3, "found control byte 0x01", "control byte in a string");
	check_bad("[\"a\nb\"]", 3, "found control byte 0x0a", "raw newline in a string");
	check_bad("[\"\t\"]", 2, "control byte 0x09", "raw tab in a string");
	check_bad("[\"\\x\"]", 3, "expected an escape character", "bad escape \\x");
	check_bad("[\"\\U0041\"]", 3, "expected an escape character", "upper-case \\U");
	check_bad("[\"\\u12G4\"]", 6, "expected a hex digit in a \\u escape, found 'G'", "bad hex digit");
	check_bad("[\"\\u12", 6, "unexpected end of input, expected a hex digit", "truncated \\u");
	check_bad("[\"\\", 3, "unexpected end of input, expected an escape character", "truncated escape");
	check_bad("[\"\xc0\xaf\"]", 2, "expected a UTF-8 lead byte, found byte 0xc0", "overlong C0");
	check_bad("[\"\xc1\xbf\"]", 2, "found byte 0xc1", "overlong C1");
	check_bad("[\"\xe0\x80\xaf\"]", 3, "continuation byte (0xa0..0xbf), found byte 0x80",
		  "overlong 3-byte");
	check_bad("[\"\xf0\x8f\xbf\xbf\"]", 3, "(0x90..0xbf)", "overlong 4-byte");
	check_bad("[\"\xed\xa0\x80\"]", 3, "(0x80..0x9f), found byte 0xa0", "encoded surrogate");
	check_bad("[\"\xf4\x90\x80\x80\"]", 3, "(0x80..0x8f), found byte 0x90", "above U+10FFFF");
	check_bad("[\"\xf5\x80\x80\x80\"]", 2, "found byte 0xf5", "F5 lead");
	check_bad("[\"\xff\"]", 2, "found byte 0xff", "FF");
	check_bad("[\"\x80\"]", 2, "lead byte, found byte 0x80", "stray continuation byte");
	check_bad("[\"\xe6\x97\xa5\xe6\x9c\xac\x80 and more text\", 123456789]", 8, "lead byte, found byte 0x80",
		  "a stray continuation byte right after a run of characters");
	check_bad("[\"\xd0\x9c\xd0\x9c\xed\xa0\x80 and more text\", 123456789]", 7, "(0x80..0x9f), found byte 0xa0",
		  "an encoded surrogate inside a run of characters");
	check_bad("[\"\xe6\x9d\"]", 4, "continuation byte (0x80..0xbf), found '\"'",
		  "truncated 3-byte sequence");
	check_bad("\"\xe6\x9d", 3, "unexpected end of input, expected a UTF-8 continuation",
		  "sequence cut by the end of input");
	check_bad("[\xc3\xa9]", 1, "expected a JSON value, found byte 0xc3", "UTF-8 outside a string");
	check_error("[1,\x00]", 5, &o, SF_ERR_FORMAT, 3, "found byte 0x00", "NUL byte");
	check_bad("[1\x0c]", 2, "found byte 0x0c", "form feed is not whitespace");
	check_bad("[1\xc2\xa0]", 2, "found byte 0xc2", "no-break space is not whitespace");
	check_bad("{\"a\":1,\"b\":2,\"a\":3}", 13, "duplicate key \"a\"", "duplicate key");
	check_bad("[{\"a\":{\"a\":1}},{\"a\":1,\"b\":{\"x\":1,\"x\":2}}]", 33,
		  "duplicate key \"x\"", "duplicate key in a nested object");
	{
		/* A long duplicate key is shortened in the message. */
		char doc[512];
		char key[201];

		memset(key, 'k', 200);
		key[200] = '\0';
		snprintf(doc, sizeof(doc), "{\"%s\":1,\"%s\":2}", key, key);
		check_bad(doc, 206, "duplicate key \"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...\"",
			  "long duplicate key shortened");
	}
	{
		sf_jscan_options keep = opts(0, 0, 0, 0);

		check_good_str("{\"a\":1,\"a\":2}", &keep, "duplicate keys pass without the option");
		check_good_str("{\"a\":1,\"\\u0061\":2,\"b\":{\"a\":1}}", &o,
			   "keys differ in raw bytes; same key in another object");
	}
	/* Depth: 100,000 brackets, rejected at the first one past the limit. */
	deep = malloc(200001);
	memset(deep, '[', 100000);
	memset(deep + 100000, ']', 100000);
	deep[200000] = '\0';
	check_error(deep, 200000, &o, SF_ERR_LIMIT, 1024, "at most 1024 levels", "depth 100,000 rejected");
	{
		sf_jscan_options small = opts(0, 0, 3, 0);
		sf_jscan_options big = opts(0, 0, 100000, 0);

		check_error("[[[[]]]]", 8, &small, SF_ERR_LIMIT, 3, "at most 3 levels", "max_depth 3");
		check_good_str("[[[]]]", &small, "depth 3 within max_depth 3");
		check_good(deep, 200000, &big, "depth 100,000 accepted with max_depth 100000");
		memset(deep, '{', 1);
		check_error(deep, 200000, &big, SF_ERR_FORMAT, 1, "expected a key", "deep after an object");
	}
	free(deep);
}

static void test_good_values(void)
{
	sf_jscan_options o = opts(0, 1, 0, 0);
	sf_jscan_options nan = opts(1, 1, 0, 0);
	char *num = malloc(10003);

	num[0] = '-';
	num[1] = '1';
	memset(num + 2, '9', 9999);
	num[10001] = '\0';
	check_good(num, 10001, &o, "a 10,000-digit number");
	num[5000] = '.';
	check_good(num, 10001, &o, "a long fraction");
	num[8000] = 'E';
	num[8001] = '-';
	check_good(num, 10001, &o, "a long exponent");
	free(num);
	check_good_str("[0,-0,0.0,1e5,1E+5,1e-5,-0.5e0,123456789012345678901234567890]", &o, "numbers");
	check_good_str("[\"\\udc80\",\"\\ud800\\ud800\",\"\\uDFFF\"]", &o, "lone surrogate escapes");
	check_good_str("\"\xf0\x9f\x98\x80 \xe6\x9d\xb1 \xf4\x8f\xbf\xbf \xef\xbf\xbf \x7f\"", &o,
		   "valid UTF-8 edge cases and DEL");
	check_good_str("[NaN, Infinity, -Infinity, -0, 1.5]", &nan, "NaN family with allow_nan");
	check_good_str("{\"NaN\":NaN}", &nan, "NaN as key and value");
	check_good_str("\t\r\n true \t\r\n", &o, "literal in whitespace");
	check_good_str("{\"\":{\"\":[]}}", &o, "empty keys");
	/* digit runs read eight bytes at a time: runs of 7 to 17 digits,
	   ending at every place of a word. These and the cases below end
	   with ", 123456789]": the one-pass skip leaves a value that ends
	   within 6 bytes of its input to the token path, and these are for
	   the one-pass skip. */
	check_good_str("[1234567,12345678,123456789,1234567890123456,12345678901234567, 123456789]", &o,
		   "integer digit runs across 8-byte words");
	check_good_str("[0.1234567,-0.12345678,9.123456789012345678,1e12345678,1E-1234567890123456, 123456789]", &o,
		   "fraction and exponent digit runs across 8-byte words");
	check_good_str("[1 ,2 , 3,  4,\n5 , 123456789]", &o, "single and several spaces around commas");
	check_good_str("[\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xd0\x9c\xf0\x9f\x9a\x80\",\"a\xc3\xa9\xc3\xa9\", 123456789]", &o,
		   "runs of multi-byte characters up to the closing quote");
	check_good_str("{\"a\" : 1, \"b\":2 ,\"c\"  :  3, \"padding\": 123456789}", &o, "spaces around colons");
}

/* Every proper prefix of a container document fails at offset == length. */
static void test_truncation(void)
{
	const char *docs[] = {
		"{\"seq_no\":0,\"data\":[[{\"a\":1,\"t\":\"caf\xc3\xa9 \\u00e9\\n\"},{\"b\":-1.5e+10,"
		"\"c\":[true,false,null]}]]}",
		"{\n  \"x\": [\n    1,\n    \"\xf0\x9f\x98\x80\"\n  ],\n  \"y\": {}\n}",
		"[NaN,-Infinity,Infinity,0.5]",
	};
	sf_jscan_options o = opts(1, 1, 0, 0);
	int bad = 0, total = 0;

	for (size_t d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
		size_t len = strlen(docs[d]);

		check_good(docs[d], len, &o, "full document for truncation");
		for (size_t cut = 0; cut < len; cut++) {
			char prefix[96];

			for (int path = 0; path < 2; path++) {
				sf_jscan *scan = NULL;
				sf_error err;
				sf_jtok tok;
				sf_err rc;

				sf_jscan_open_mem(&scan, docs[d], cut, "t", &o, NULL);
				if (path == 0) {
					do
						rc = sf_jscan_next(scan, &tok, &err);
					while (rc == SF_OK && tok.type != SF_JTOK_EOF);
				} else {
					rc = skip_whole(scan, NULL, NULL, NULL, &err);
				}
				snprintf(prefix, sizeof(prefix), "'t': byte %zu: unexpected end of input, expected ", cut);
				total++;
				if (rc != SF_ERR_FORMAT || strncmp(err.message, prefix, strlen(prefix)) != 0) {
					bad++;
					printf("#   doc %zu cut %zu path %d: %s\n", d, cut, path,
					       rc == SF_OK ? "accepted" : err.message);
				}
				sf_jscan_free(scan);
			}
		}
	}
	CHECK(bad == 0 && total > 100, "every prefix fails at its length with 'unexpected end of input'");
}

/* ---- the fd path against the memory path ---- */

static void compare_paths(const char *doc, size_t len, const sf_jscan_options *o_in, const char *what)
{
	sf_jscan_options o = *o_in;
	char *mem_tokens, *fd_tokens;
	char label[160];

	o.window_bytes = WINDOW_SMALL;
	mem_tokens = tokens_mem(doc, len, &o);
	fd_tokens = tokens_fd(doc, len, &o);
	snprintf(label, sizeof(label), "%s: fd and memory tokens agree", what);
	if (!CHECK(strcmp(mem_tokens, fd_tokens) == 0, label))
		printf("#   mem %.300s\n#   fd  %.300s\n", mem_tokens, fd_tokens);
	free(mem_tokens);
	free(fd_tokens);
	/* skip_value of the whole document. */
	{
		uint64_t range[2][3] = { { 0 } };
		sf_err rc[2];
		sf_error err[2];
		int fd = temp_fd(doc, len);

		for (int path = 0; path < 2; path++) {
			sf_jscan *scan = NULL;

			if (path == 0)
				sf_jscan_open_mem(&scan, doc, len, "t", &o, NULL);
			else
				sf_jscan_open_fd(&scan, fd, "t", &o, NULL);
			memset(&err[path], 0, sizeof(err[path]));
			rc[path] = skip_whole(scan, &range[path][0], &range[path][1], &range[path][2],
					      &err[path]);
			sf_jscan_free(scan);
		}
		close(fd);
		snprintf(label, sizeof(label), "%s: fd and memory skip_value agree", what);
		if (!CHECK(rc[0] == rc[1] && memcmp(range[0], range[1], sizeof(range[0])) == 0 &&
			   strcmp(err[0].message, err[1].message) == 0, label))
			printf("#   mem %d %s\n#   fd  %d %s\n", rc[0], err[0].message, rc[1], err[1].message);
	}
}

static char *make_rows(size_t target, int pretty, size_t *len_out)
{
	strbuf sb = { 0 };
	int i = 0;

	sb_addstr(&sb, pretty ? "{\n  \"seq_no\": 7,\n  \"data\": [\n    [\n" : "{\"seq_no\":7,\"data\":[[");
	while (sb.len < target) {
		if (i > 0)
			sb_addstr(&sb, pretty ? ",\n" : ",");
		if (pretty)
			sb_printf(&sb, "      {\n        \"instruction\": \"row %d \\u00e9\xc3\xa9 \xf0\x9f\x98\x80"
				  " lorem ipsum dolor sit amet\",\n        \"n\": %d.%de-%d,\n"
				  "        \"l\": [true, null, false]\n      }", i, i, i % 10, i % 7);
		else
			sb_printf(&sb, "{\"instruction\":\"row %d \\\"q\\\" \xc3\xa9\xe6\x9d\xb1 lorem ipsum"
				  " dolor sit amet\",\"n\":%d,\"x\":[%d.5,{\"k\":null}]}", i, i, -i);
		i++;
	}
	sb_addstr(&sb, pretty ? "\n    ]\n  ]\n}\n" : "]]}");
	*len_out = sb.len;
	return sb.data;
}

/*
 * Duplicate keys whose bytes cross a window edge are hashed in pieces;
 * the result must equal the one-shot hash of the same key elsewhere.
 */
static void test_window_keys(void)
{
	sf_jscan_options o = opts(0, 1, 0, 0);
	size_t key_len = 100 * 1024, len;
	char *doc = malloc(3 * key_len + 256);
	char *got;

	/* Two 100 KB keys, both crossing edges. */
	len = 0;
	for (int i = 0; i < 2; i++) {
		memcpy(doc + len, i ? ",\"" : "{\"", 2);
		len += 2;
		for (size_t k = 0; k < key_len; k++)
			doc[len + k] = (char)('a' + k % 23);
		len += key_len;
		memcpy(doc + len, "\":1", 3);
		len += 3;
	}
	doc[len++] = '}';
	compare_paths(doc, len, &o, "two long equal keys");
	o.window_bytes = WINDOW_SMALL;
	got = tokens_fd(doc, len, &o);
	CHECK(strstr(got, "byte 102406: duplicate key \"abcdefghijklmnopqrstuvwabcdefghijklmnopqrstuvwabcdefghijklmnopqr...\"") != NULL,
	      "long duplicate key across windows found");
	free(got);
	doc[len - 6] = 'Z';
	compare_paths(doc, len, &o, "two long keys that differ at the end");
	got = tokens_fd(doc, len, &o);
	CHECK(strstr(got, "ERR") == NULL, "long keys that differ at the end pass");
	free(got);

	/* A short key inside the first window, then the same key straddling
	   the edge at every split. */
	for (size_t split = 0; split <= 6; split++) {
		size_t pad = 65536 - 12 - split;
		char label[64];

		len = 0;
		memcpy(doc, "{\"key01\":1,\"", 12);
		len = 12;
		memcpy(doc + len, "p\":\"", 4);
		len += 4;
		memset(doc + len, 'x', pad - 8);
		len += pad - 8;
		memcpy(doc + len, "\",\"key01\":2}", 12);
		len += 12;
		snprintf(label, sizeof(label), "short duplicate key split %zu", split);
		compare_paths(doc, len, &o, label);
		got = tokens_fd(doc, len, &o);
		CHECK(strstr(got, "duplicate key \"key01\"") != NULL, label);
		free(got);
	}
	free(doc);
}

/* A read error is an SF_ERR_IO that names the file and the offset. */
static void test_read_error(void)
{
	sf_jscan *scan = NULL;
	sf_error err;
	sf_jtok tok;
	int fd = open("/", O_RDONLY | O_DIRECTORY);

	sf_jscan_open_fd(&scan, fd, "dir", NULL, NULL);
	CHECK(sf_jscan_next(scan, &tok, &err) == SF_ERR_IO && err.saved_errno != 0 &&
	      strncmp(err.message, "'dir': byte 0: read failed: ", 28) == 0, "read error reported");
	CHECK(sf_jscan_skip_value(scan, NULL, NULL, NULL, &err) == SF_ERR_IO, "read error sticks");
	sf_jscan_free(scan);
	close(fd);
}

/* sf_jscan_input_end: the end of a file's input once a read met it, the
   end of memory at once, never after a read error. */
static void test_input_end(void)
{
	char path[] = "/tmp/sf_jscan_end_XXXXXX";
	int fd = mkstemp(path), dir = open("/", O_RDONLY | O_DIRECTORY);
	sf_jscan *scan = NULL;
	uint64_t length = 0;
	sf_jtok tok;

	if (!CHECK(fd >= 0 && write(fd, "[1, 2] ", 7) == 7 && lseek(fd, 0, SEEK_SET) == 0, "a 7-byte file"))
		return;
	sf_jscan_open_fd(&scan, fd, "t", NULL, NULL);
	CHECK(!sf_jscan_input_end(scan, &length), "no end before anything is read");
	while (sf_jscan_next(scan, &tok, NULL) == SF_OK && tok.type != SF_JTOK_EOF)
		;
	CHECK(sf_jscan_input_end(scan, &length) && length == 7, "the file's end once scanned to it, at byte 7");
	sf_jscan_free(scan);
	scan = NULL;
	sf_jscan_open_mem(&scan, "[]", 2, "m", NULL, NULL);
	CHECK(sf_jscan_input_end(scan, &length) && length == 2, "memory: its end at once");
	sf_jscan_free(scan);
	scan = NULL;
	sf_jscan_open_fd(&scan, dir, "dir", NULL, NULL);
	sf_jscan_next(scan, &tok, NULL);
	CHECK(!sf_jscan_input_end(scan, &length), "no end after a read error");
	sf_jscan_free(scan);
	close(dir);
	close(fd);
	unlink(path);
}

static void test_windows(void)
{
	sf_jscan_options o = opts(1, 1, 0, 0);
	size_t len, big = 200 * 1024;
	char *doc = malloc(big + 64);
	char *rows;

	/* A 200 KB string straddling several 64 KiB windows, with escapes and
	   multi-byte characters placed around the window edges. */
	memcpy(doc, "[\"", 2);
	for (size_t i = 2; i < big; i++)
		doc[i] = (char)('a' + i % 26);
	for (size_t edge = 65536; edge < big; edge += 65536) {
		memcpy(doc + edge - 3, "\\u00e9\xf0\x9f\x98\x80\\n", 12);
		memcpy(doc + edge + 1000, "\xe6\x9d\xb1\\\\", 5);
	}
	memcpy(doc + big, "\",12345678]", 11);
	compare_paths(doc, big + 11, &o, "200 KB string");
	/* The same with every shift across the edge of the first window. */
	{
		int bad = 0;

		for (int shift = 0; shift < 12; shift++) {
			char *tok_mem, *tok_fd;
			size_t n = big + 11 - (size_t)shift - 1;

			memmove(doc, doc + 1, n);
			doc[0] = '[';
			doc[1] = '"';
			tok_mem = tokens_mem(doc, n, &o);
			tok_fd = tokens_fd(doc, n, &o);
			if (strcmp(tok_mem, tok_fd) != 0)
				bad++;
			free(tok_mem);
			free(tok_fd);
		}
		CHECK(bad == 0, "escapes and UTF-8 at every shift across a window edge");
	}
	/* An error just past a window edge is reported at its absolute offset. */
	memcpy(doc, "[\"", 2);
	for (size_t i = 2; i < big; i++)
		doc[i] = 'z';
	doc[65536 * 2 + 1] = (char)0xc0;
	memcpy(doc + big, "\"]", 2);
	{
		sf_jscan_options e = opts(0, 0, 0, WINDOW_SMALL);
		char *got = tokens_fd(doc, big + 2, &e);

		CHECK(strstr(got, "ERR 3: 't': byte 131073: expected a UTF-8 lead byte") != NULL,
		      "error offset past a window edge");
		free(got);
	}
	compare_paths(doc, big + 2, &o, "invalid byte after two windows");
	/* A 10,000-digit number across an edge. */
	memset(doc, ' ', 65530);
	memset(doc + 65530, '7', 10000);
	compare_paths(doc, 65530 + 10000, &o, "number across an edge");
	free(doc);

	test_window_keys();
	rows = make_rows(300 * 1024, 0, &len);
	compare_paths(rows, len, &o, "300 KB compact rows");
	for (size_t cut = 65530; cut < 65545; cut++)
		compare_paths(rows, cut, &o, "compact rows cut near the first edge");
	{
		/* Row ranges through fd and memory. */
		uint64_t *ranges[2], *newlines[2];
		int n[2];
		int fd = temp_fd(rows, len);
		sf_error err;

		for (int path = 0; path < 2; path++) {
			sf_jscan *scan = NULL;
			sf_jscan_options w = o;

			w.window_bytes = WINDOW_SMALL;
			ranges[path] = malloc(2 * 4000 * sizeof(uint64_t));
			newlines[path] = malloc(4000 * sizeof(uint64_t));
			if (path == 0)
				sf_jscan_open_mem(&scan, rows, len, "t", &w, NULL);
			else
				sf_jscan_open_fd(&scan, fd, "t", &w, NULL);
			n[path] = batch_rows(scan, ranges[path], newlines[path], 4000, &err);
			sf_jscan_free(scan);
		}
		close(fd);
		CHECK(n[0] > 1000 && n[0] == n[1] &&
		      memcmp(ranges[0], ranges[1], 2 * (size_t)n[0] * sizeof(uint64_t)) == 0,
		      "300 KB of rows: same ranges through fd and memory");
		{
			int separated = 1;

			for (int i = 1; i < n[0]; i++)
				if (ranges[0][2 * i] != ranges[0][2 * i - 1] + 1 ||
				    rows[ranges[0][2 * i - 1]] != ',' || rows[ranges[0][2 * i]] != '{' ||
				    rows[ranges[0][2 * i] - 2] != '}')
					separated = 0;
			CHECK(separated, "compact rows are exactly one ',' apart");
		}
		for (int path = 0; path < 2; path++) {
			free(ranges[path]);
			free(newlines[path]);
		}
	}
	free(rows);
	rows = make_rows(300 * 1024, 1, &len);
	compare_paths(rows, len, &o, "300 KB pretty rows");
	{
		uint64_t *ranges = malloc(2 * 8000 * sizeof(uint64_t));
		uint64_t *newlines = malloc(8000 * sizeof(uint64_t));
		sf_jscan *scan = NULL;
		sf_error err;
		int n, ok = 1;

		sf_jscan_open_mem(&scan, rows, len, "t", &o, NULL);
		n = batch_rows(scan, ranges, newlines, 8000, &err);
		for (int i = 0; i < n; i++)
			if (newlines[i] != 4)
				ok = 0;
		CHECK(n > 100 && ok, "pretty rows hold 4 newlines each");
		sf_jscan_free(scan);
		free(ranges);
		free(newlines);
	}
	free(rows);
}

/* A 100 MB string through a pipe, in bounded memory. */
static void test_huge_string(void)
{
	const size_t total = 100u << 20;
	int pipefd[2];
	pid_t child;
	struct rusage before, after;
	sf_jscan_options o = opts(0, 0, 0, 0);
	sf_jscan *scan = NULL;
	sf_jtok tok;
	sf_err rc;
	int status;

	if (pipe(pipefd) != 0)
		abort();
	child = fork();
	if (child == 0) {
		static char chunk[65536];
		size_t sent = 0;

		close(pipefd[0]);
		memset(chunk, 'a', sizeof(chunk));
		for (size_t i = 0; i < sizeof(chunk); i += 64)
			memcpy(chunk + i, "\xc3\xa9\\n", 4);
		if (write(pipefd[1], "[\"", 2) != 2)
			_exit(1);
		while (sent < total) {
			ssize_t n = write(pipefd[1], chunk, sizeof(chunk));

			if (n <= 0)
				_exit(1);
			sent += (size_t)n;
		}
		if (write(pipefd[1], "\",1]", 4) != 4)
			_exit(1);
		_exit(0);
	}
	close(pipefd[1]);
	getrusage(RUSAGE_SELF, &before);
	sf_jscan_open_fd(&scan, pipefd[0], "pipe", &o, NULL);
	sf_jscan_next(scan, &tok, NULL);
	rc = sf_jscan_next(scan, &tok, NULL);
	CHECK(rc == SF_OK && tok.type == SF_JTOK_STRING && tok.text == NULL && tok.text_truncated &&
	      tok.end == total + 3 && tok.text_len == total, "100 MB string through a pipe");
	rc = sf_jscan_skip_value(scan, NULL, NULL, NULL, NULL);
	CHECK(rc == SF_OK && sf_jscan_next(scan, &tok, NULL) == SF_OK &&
	      sf_jscan_next(scan, &tok, NULL) == SF_OK && tok.type == SF_JTOK_EOF &&
	      tok.start == total + 6, "the rest of the document after it");
	getrusage(RUSAGE_SELF, &after);
	CHECK(after.ru_maxrss - before.ru_maxrss < 16 * 1024, "memory stays bounded (< 16 MB growth)");
	sf_jscan_free(scan);
	close(pipefd[0]);
	waitpid(child, &status, 0);
}

static void test_options(void)
{
	sf_jscan_options o = opts(0, 0, -1, 0);
	sf_jscan *scan = (sf_jscan *)1;
	sf_error err;

	CHECK(sf_jscan_open_mem(&scan, "1", 1, "t", &o, &err) == SF_ERR_INVALID && scan == NULL,
	      "negative max_depth is invalid");
	CHECK(sf_jscan_open_mem(&scan, "1", 1, NULL, NULL, &err) == SF_OK, "NULL options and name");
	sf_jscan_free(scan);
	sf_jscan_free(NULL);
}

int main(void)
{
	test_tokens();
	test_text_limits();
	test_skip();
	test_batch();
	test_errors();
	test_good_values();
	test_truncation();
	test_windows();
	test_huge_string();
	test_read_error();
	test_input_end();
	test_options();
	return check_done();
}
