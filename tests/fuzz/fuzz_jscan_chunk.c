/*
 * fuzz_jscan_chunk.c - libFuzzer target for the streaming JSON scanner
 * reading a file whose reads return a few bytes at a time.
 *
 * fuzz_jscan scans from memory, where a value always lies whole in the
 * scanner's buffer. Here the scanner reads through a file descriptor, and
 * read() (replaced for sf_jscan.c alone, which this file includes) hands
 * it 1 to 9 bytes at a time, now and then 64 KiB, so its window ends
 * anywhere inside a value: the one-pass skip must give up there and the
 * token path carry on. The packer's pattern (skip_value at every array
 * element and at every key's value, or one skip of the whole input) must
 * give the same ranges, newline counts and outcome as the same scan from
 * memory.
 *
 * data[0]: the options of jscan_options.h (as fuzz_jscan reads them),
 * and bit 3 about 64 KiB of spaces before the input (so values
 * straddle the first full window). data[1]: seeds the read sizes. The
 * rest is the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

static ssize_t chunked_read(int fd, void *buf, size_t n);
#define read chunked_read
#include "../../codecs/sf_jscan.c"
#undef read

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan_options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
	const unsigned char *input;
	size_t len, pad, pos;
	uint32_t rng;
} source;

static ssize_t chunked_read(int fd, void *buf, size_t n)
{
	size_t total = source.pad + source.len, want, i;

	(void)fd;
	if (source.pos >= total || n == 0)
		return 0;
	source.rng = source.rng * 1103515245u + 12345u;
	want = 1 + (source.rng >> 16) % 9;
	if (((source.rng >> 8) & 7) == 0)
		want = 65536;
	if (want > n)
		want = n;
	if (want > total - source.pos)
		want = total - source.pos;
	for (i = 0; i < want; i++, source.pos++)
		((unsigned char *)buf)[i] = source.pos < source.pad ? ' ' : source.input[source.pos - source.pad];
	return (ssize_t)want;
}

#define MAX_SKIPS 4096

typedef struct run {
	sf_err code;
	char message[SF_ERROR_MSG_MAX];
	uint64_t eof_at;
	size_t skips;
	uint64_t start[MAX_SKIPS], end[MAX_SKIPS], newlines[MAX_SKIPS];
} run;

static run from_memory, from_fd;

static void record(run *r, uint64_t start, uint64_t end, uint64_t newlines)
{
	if (r->skips < MAX_SKIPS) {
		r->start[r->skips] = start;
		r->end[r->skips] = end;
		r->newlines[r->skips] = newlines;
	}
	r->skips++;
}

/* As the packer reads a batch file: tokens down to the lists and keys,
   skip_value for each element and each key's value. */
static void packer_way(sf_jscan *scan, run *r, int whole)
{
	uint64_t start, end, newlines;
	sf_error err;
	sf_jtok tok;
	sf_err rc = SF_OK;

	memset(&tok, 0, sizeof(tok));
	memset(&err, 0, sizeof(err));
	if (whole) {
		rc = sf_jscan_skip_value(scan, &start, &end, &newlines, &err);
		if (rc == SF_OK)
			record(r, start, end, newlines);
	}
	while (rc == SF_OK) {
		rc = sf_jscan_next(scan, &tok, &err);
		if (rc != SF_OK || tok.type == SF_JTOK_EOF)
			break;
		if (tok.type == SF_JTOK_ARRAY_BEGIN) {
			while (rc == SF_OK && !sf_jscan_at_container_end(scan)) {
				rc = sf_jscan_skip_value(scan, &start, &end, &newlines, &err);
				if (rc == SF_OK)
					record(r, start, end, newlines);
			}
		} else if (tok.type == SF_JTOK_KEY) {
			rc = sf_jscan_skip_value(scan, &start, &end, &newlines, &err);
			if (rc == SF_OK)
				record(r, start, end, newlines);
		}
	}
	r->code = rc;
	r->eof_at = rc == SF_OK ? tok.start : 0;
	snprintf(r->message, sizeof(r->message), "%s", rc == SF_OK ? "" : err.message);
}

static void compare(const char *how)
{
	size_t i, n = from_memory.skips < MAX_SKIPS ? from_memory.skips : MAX_SKIPS;

	if (from_memory.code != from_fd.code || strcmp(from_memory.message, from_fd.message) != 0 ||
	    from_memory.eof_at != from_fd.eof_at || from_memory.skips != from_fd.skips) {
		fprintf(stderr, "%s: memory %d '%s' end %llu skips %zu; fd %d '%s' end %llu skips %zu\n", how,
			from_memory.code, from_memory.message, (unsigned long long)from_memory.eof_at,
			from_memory.skips, from_fd.code, from_fd.message, (unsigned long long)from_fd.eof_at,
			from_fd.skips);
		abort();
	}
	for (i = 0; i < n; i++)
		if (from_memory.start[i] != from_fd.start[i] || from_memory.end[i] != from_fd.end[i] ||
		    from_memory.newlines[i] != from_fd.newlines[i]) {
			fprintf(stderr, "%s: value %zu: memory [%llu, %llu) %llu newlines; fd [%llu, %llu) %llu newlines\n",
				how, i, (unsigned long long)from_memory.start[i],
				(unsigned long long)from_memory.end[i], (unsigned long long)from_memory.newlines[i],
				(unsigned long long)from_fd.start[i], (unsigned long long)from_fd.end[i],
				(unsigned long long)from_fd.newlines[i]);
			abort();
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char *padded;
	static size_t padded_cap;
	sf_jscan_options o;
	sf_jscan *scan;
	sf_error err;
	uint32_t seed;
	int whole;

	if (size < 2)
		return 0;
	o = fuzz_jscan_options(data[0]);
	o.window_bytes = 1; /* raised to the 64 KiB minimum */
	seed = data[1] * 2654435761u;
	source.pad = data[0] & 8 ? 65536 - 1 - data[1] % 48 : 0;
	data += 2;
	size -= 2;
	if (!padded || source.pad + size > padded_cap) {
		free(padded);
		padded_cap = source.pad + size;
		padded = malloc(padded_cap ? padded_cap : 1);
		if (!padded)
			abort();
	}
	memset(padded, ' ', source.pad);
	memcpy(padded + source.pad, data, size);
	for (whole = 0; whole < 2; whole++) {
		memset(&from_memory, 0, sizeof(from_memory));
		memset(&from_fd, 0, sizeof(from_fd));
		if (sf_jscan_open_mem(&scan, padded, source.pad + size, "x", &o, &err) != SF_OK)
			abort();
		packer_way(scan, &from_memory, whole);
		sf_jscan_free(scan);
		source.input = data;
		source.len = size;
		source.pos = 0;
		source.rng = seed;
		if (sf_jscan_open_fd(&scan, 0, "x", &o, &err) != SF_OK)
			abort();
		packer_way(scan, &from_fd, whole);
		sf_jscan_free(scan);
		compare(whole ? "one skip of the whole input" : "the packer's way");
	}
	return 0;
}
