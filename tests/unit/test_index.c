/*
 * test_index.c - the one-frame zstd wrapper of stored indexes and 2.2
 * dictionaries: a round trip, the size limit (checked against the frame's
 * stated size before anything is allocated), and frames refused for
 * stating no size or for bytes after them. Then the encoder's integers
 * at their extremes, against what printf writes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "check.h"
#include "sf_arena.h"
#include "sf_index.h"

/* Entries whose times and segments take the integers' extremes: the
   text must hold each as "%lld" writes it. */
static void extreme_integers(void)
{
	static const int64_t secs[] = { 0, -1, 9, 10, -10, 1795893840, INT64_MAX / 1000000000,
					INT64_MIN / 1000000000 };
	sf_segment seg[2] = { { UINT64_C(9223372036854775806), 1, 7, 0 }, { 0, 0, 0, 0 } };
	sf_index_entry entries[8];
	char *text = NULL, want[64];
	size_t len = 0, i;
	int all = 1;

	memset(entries, 0, sizeof(entries));
	for (i = 0; i < 8; i++) {
		static const char *names[] = { "a", "b", "c", "d", "e", "f", "g", "h" };

		entries[i].path = names[i];
		entries[i].type = SF_NODE_FILE;
		entries[i].mtime_sec = secs[i];
		entries[i].mtime_nsec = i == 7 ? 999999999 : 0;
		entries[i].segments = i == 0 ? seg : NULL;
		entries[i].segment_count = i == 0 ? 2 : 0;
	}
	if (!CHECK(sf_index_encode_entries(entries, 8, 0, &text, &len, NULL) == SF_OK, "encode extreme integers"))
		return;
	/* shard 7: the first segment's offset difference, then the way back to 0 */
	snprintf(want, sizeof(want), "[7,%lld,1,0,0,%lld,0,0]", 9223372036854775806LL, -9223372036854775807LL);
	all = strstr(text, want) != NULL;
	CHECK(all, "offsets of 2^63 - 2 and back written in decimal");
	all = all && strstr(text, "[\"f\",\"b\",420,-1000000000,[]]") && strstr(text, "420,10000000000,") &&
	      strstr(text, "420,-20000000000,") && strstr(text, "420,1795893850000000000,") &&
	      strstr(text, "[9223372036,0]") && strstr(text, "[-9223372036,999999999]");
	CHECK(all, "time differences, negative and large, and times in [seconds, nanoseconds]");
	if (!all)
		printf("#   %s\n", text);
	free(text);
}

int main(void)
{
	size_t big_len = ((size_t)17 << 20), out_len = 0, text_len = 0;
	char *big = calloc(1, big_len + 1), *text = NULL;
	void *frame = NULL;
	unsigned char *stream, *padded;
	size_t stream_len;
	sf_arena scratch = { 0 };
	sf_error err = { 0 };
	sf_err rc;

	if (!big)
		return 1;
	memset(big, 'a', big_len);
	rc = sf_index_compress(big, big_len, &frame, &out_len, &err);
	CHECK(rc == SF_OK && out_len < big_len / 100, "17 MiB of text compress to one small frame");

	rc = sf_index_decompress(frame, out_len, (size_t)16 << 20, "x.dict.zst", NULL, &text, &text_len, &err);
	CHECK(rc == SF_ERR_LIMIT && text == NULL, "a frame stating 17 MiB is refused under a 16 MiB limit");
	CHECK(strstr(err.message, "'x.dict.zst'") && strstr(err.message, "17825792 bytes") &&
	      strstr(err.message, "limit of 16777216"),
	      "the message names the file, the stated size and the limit");

	rc = sf_index_decompress(frame, out_len, (size_t)32 << 20, "x.json.zst", &scratch, &text, &text_len, &err);
	CHECK(rc == SF_OK && text_len == big_len && text[big_len] == '\0' && memcmp(text, big, big_len) == 0,
	      "under a larger limit it decompresses whole, NUL-terminated, into the scratch arena");

	padded = malloc(out_len + 1);
	if (padded) {
		memcpy(padded, frame, out_len);
		padded[out_len] = 0;
		rc = sf_index_decompress(padded, out_len + 1, (size_t)32 << 20, "p", NULL, &text, &text_len, &err);
		CHECK(rc == SF_ERR_CORRUPT && strstr(err.message, "not one zstd frame"), "a byte after the frame is refused");
		free(padded);
	}

	/* a frame that does not state its content size */
	stream_len = ZSTD_compressBound(1000);
	stream = malloc(stream_len);
	if (stream) {
		ZSTD_CCtx *cctx = ZSTD_createCCtx();
		ZSTD_inBuffer in = { big, 1000, 0 };
		ZSTD_outBuffer out = { stream, stream_len, 0 };

		(void)ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
		(void)ZSTD_compressStream2(cctx, &out, &in, ZSTD_e_end);
		ZSTD_freeCCtx(cctx);
		rc = sf_index_decompress(stream, out.pos, (size_t)32 << 20, "s", NULL, &text, &text_len, &err);
		CHECK(rc == SF_ERR_CORRUPT && strstr(err.message, "content size"),
		      "a frame without a content size is refused");
		free(stream);
	}
	sf_arena_free(&scratch);
	free(frame);
	free(big);
	extreme_integers();
	return check_done();
}
