/*
 * fuzz_seektable.c - libFuzzer target for the seek table parser and the
 * shard reader. The input is taken as a whole shard: its tail goes to
 * sf_seek_table_parse() under several claimed shard sizes, then the
 * bytes go into a memory file that sf_seek_reader_open() opens and whose
 * every frame is decompressed. Nothing here may crash or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sf_seekable.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_as_tail(const uint8_t *data, size_t len, uint64_t shard_size)
{
	sf_seek_frame *frames = NULL;
	uint32_t count = 0;
	sf_error err;

	if (sf_seek_table_parse(data, len, shard_size, "fuzz", &frames, &count,
				&err) == SF_OK) {
		/* Touch every entry so a short array would be caught. */
		uint64_t sum = 0;

		for (uint32_t i = 0; i < count; i++)
			sum += frames[i].compressed_size + frames[i].decompressed_offset;
		if (count > 0 && sum == 0)
			abort();
	}
	free(frames);
}

static void read_as_shard(const uint8_t *data, size_t size)
{
	sf_seek_reader *reader = NULL;
	unsigned char *buf = NULL;
	size_t capacity = 0;
	sf_error err;
	int fd = memfd_create("shard", MFD_CLOEXEC);

	if (fd < 0)
		return;
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		goto out;
	if (sf_seek_reader_open(&reader, fd, "fuzz", &err) != SF_OK)
		goto out;
	for (uint32_t i = 0; i < sf_seek_reader_frame_count(reader); i++) {
		sf_seek_frame frame;

		sf_seek_reader_frame(reader, i, &frame);
		if (frame.decompressed_size > capacity) {
			free(buf);
			capacity = frame.decompressed_size;
			buf = malloc(capacity);
			if (!buf)
				goto out;
		}
		sf_seek_reader_read_frame(reader, i, buf, capacity, &err);
		if (sf_seek_reader_frame_at(reader, frame.decompressed_offset) != i)
			abort();
	}
out:
	free(buf);
	sf_seek_reader_free(reader);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t extra = 0;

	/* The input as a whole shard, then as the tail of a larger one whose
	   hidden prefix length comes from the input's first bytes. */
	parse_as_tail(data, size, size);
	if (size >= 2)
		extra = (uint64_t)data[0] | (uint64_t)data[1] << 8;
	parse_as_tail(data, size, size + extra);
	parse_as_tail(data, size, UINT64_MAX - (extra & 0xFF));
	if (size > 16)
		parse_as_tail(data + size / 2, size - size / 2, size);
	read_as_shard(data, size);
	return 0;
}
