/*
 * test_index.c - the one-frame zstd wrapper of stored indexes and 2.2
 * dictionaries: a round trip, the size limit (checked against the frame's
 * stated size before anything is allocated), and frames refused for
 * stating no size or for bytes after them.
 */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "check.h"
#include "sf_arena.h"
#include "sf_index.h"

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
	return check_done();
}
