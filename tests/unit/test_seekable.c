/*
 * test_seekable.c - the zstd seekable writer and reader: round trips at
 * several frame sizes and thread counts, explicit frame ends, stored
 * (raw-block) frames, the zstd CLI on written shards, frame lookup,
 * damaged frames and seek tables, and the empty shard.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "check.h"
#include "sf_seekable.h"
#include "sf_xxhash.h"

static char temp_dir[] = "/tmp/sf_seekable_XXXXXX";

/* ---- data, paths and shard round trips ----------------------------- */

static void fill_random(unsigned char *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)(x >> 24);
	}
}

/* Log-like text: compresses well but is not one repeated byte. */
static void fill_text(unsigned char *buf, size_t len, uint64_t seed)
{
	static const char *const words[] = {
		"step", "loss", "epoch", "batch", "cache", "shard", "frame",
		"0.125", "grad", "norm", "lr", "=", "\n", "  ",
	};
	uint64_t x = seed + 12345;
	size_t i = 0;

	while (i < len) {
		const char *word;
		size_t n;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		word = words[(x >> 33) % (sizeof(words) / sizeof(words[0]))];
		n = strlen(word);
		if (n > len - i)
			n = len - i;
		memcpy(buf + i, word, n);
		i += n;
		if (i < len)
			buf[i++] = ' ';
	}
}

/* Paths in the test directory; a few stay valid at once. */
static char *temp_path(const char *name)
{
	static char paths[4][256];
	static unsigned next;
	char *path = paths[next++ % 4];

	snprintf(path, sizeof(paths[0]), "%s/%s", temp_dir, name);
	return path;
}

static int run(const char *command)
{
	int rc = system(command);

	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

/*
 * Write len bytes as a shard in writes of varying size; ends[] lists
 * content offsets after which sf_seek_writer_end_frame() is called.
 */
static sf_err write_shard(const char *path, const unsigned char *data, size_t len,
			  const sf_seek_writer_options *options,
			  const size_t *ends, size_t end_count,
			  uint64_t *compressed, uint32_t *frames, sf_error *err)
{
	sf_seek_writer *writer = NULL;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	size_t done = 0, step = 1, next_end = 0;
	sf_err code;

	if (fd < 0)
		return SF_ERR_IO;
	code = sf_seek_writer_create(&writer, fd, path, options, err);
	while (code == SF_OK && done < len) {
		size_t take = len - done < step ? len - done : step;

		if (next_end < end_count && ends[next_end] - done < take)
			take = ends[next_end] - done;
		code = sf_seek_writer_write(writer, data + done, take, err);
		done += take;
		step = (step * 7 + 3) % 300001;
		if (code == SF_OK && sf_seek_writer_offset(writer) != done)
			code = SF_ERR_INVALID;
		while (code == SF_OK && next_end < end_count && ends[next_end] == done) {
			code = sf_seek_writer_end_frame(writer, err);
			next_end++;
		}
	}
	if (code == SF_OK)
		code = sf_seek_writer_finish(writer, compressed, frames, err);
	sf_seek_writer_free(writer);
	close(fd);
	return code;
}

/* Read every frame back and compare; checks frame_at on each boundary. */
static int verify_shard(const char *path, const unsigned char *data, size_t len,
			sf_seek_reader **keep, int *keep_fd)
{
	sf_seek_reader *reader = NULL;
	sf_error err = {0};
	unsigned char *buf = malloc(SF_SEEK_MAX_FRAME_BYTES);
	int fd = open(path, O_RDONLY);
	uint64_t expected_offset = 0, compressed_offset = 0;
	int ok = 0;

	if (fd < 0 || !buf)
		goto out;
	if (sf_seek_reader_open(&reader, fd, path, &err) != SF_OK) {
		printf("#   %s\n", err.message);
		goto out;
	}
	if (sf_seek_reader_content_size(reader) != len)
		goto out;
	for (uint32_t i = 0; i < sf_seek_reader_frame_count(reader); i++) {
		sf_seek_frame frame;

		sf_seek_reader_frame(reader, i, &frame);
		if (frame.decompressed_offset != expected_offset ||
		    frame.compressed_offset != compressed_offset)
			goto out;
		if (sf_seek_reader_frame_at(reader, frame.decompressed_offset) != i ||
		    sf_seek_reader_frame_at(reader, frame.decompressed_offset +
							    frame.decompressed_size - 1) != i ||
		    sf_seek_reader_frame_at(reader, frame.decompressed_offset +
							    frame.decompressed_size / 2) != i)
			goto out;
		if (sf_seek_reader_read_frame(reader, i, buf, frame.decompressed_size,
					      &err) != SF_OK) {
			printf("#   %s\n", err.message);
			goto out;
		}
		if (memcmp(buf, data + frame.decompressed_offset,
			   frame.decompressed_size) != 0)
			goto out;
		expected_offset += frame.decompressed_size;
		compressed_offset += frame.compressed_size;
	}
	if (sf_seek_reader_frame_at(reader, len) != sf_seek_reader_frame_count(reader))
		goto out;
	ok = expected_offset == len;
out:
	if (keep && ok) {
		*keep = reader;
		*keep_fd = fd;
	} else {
		sf_seek_reader_free(reader);
		if (fd >= 0)
			close(fd);
	}
	free(buf);
	return ok;
}

static int zstd_cli_accepts(const char *path, const unsigned char *data, size_t len)
{
	char command[1024];
	char *copy = temp_path("expected.bin");
	FILE *file = fopen(copy, "wb");
	int ok;

	if (!file)
		return 0;
	ok = fwrite(data, 1, len, file) == len;
	fclose(file);
	snprintf(command, sizeof(command), "zstd -q -t '%s'", path);
	ok = ok && run(command) == 0;
	snprintf(command, sizeof(command), "zstd -q -dc '%s' | cmp -s - '%s'", path, copy);
	ok = ok && run(command) == 0;
	unlink(copy);
	return ok;
}

/* ---- round trips --------------------------------------------------- */

static void test_round_trips(void)
{
	size_t frame_sizes[] = {4096, 65536 + 100, 1024 * 1024};
	int thread_counts[] = {1, 2, 4};
	size_t len = 3 * 1024 * 1024 + 1234;
	unsigned char *data = malloc(len);
	char what[256];

	for (int kind = 0; kind < 2; kind++) {
		if (kind == 0)
			fill_random(data, len, 1);
		else
			fill_text(data, len, 2);
		for (size_t f = 0; f < 3; f++) {
			for (size_t t = 0; t < 3; t++) {
				sf_seek_writer_options options = {
					.level = 3, .frame_bytes = frame_sizes[f],
					.threads = thread_counts[t], .long_distance = 0,
				};
				/* Small frames make many frames; keep them fast. */
				size_t this_len = frame_sizes[f] == 4096 ? len / 8 : len;
				char *path = temp_path("round.zst");
				uint64_t compressed = 0;
				uint32_t frames = 0;
				sf_error err = {0};
				sf_err code;

				snprintf(what, sizeof(what),
					 "%s data, %zu-byte frames, %d threads: ",
					 kind == 0 ? "random" : "text", frame_sizes[f],
					 thread_counts[t]);
				code = write_shard(path, data, this_len, &options, NULL, 0,
						   &compressed, &frames, &err);
				if (!CHECK(code == SF_OK, what))
					printf("#   %s\n", err.message);
				CHECK_EQ_U64(frames, (this_len + frame_sizes[f] - 1) / frame_sizes[f],
					     "frame count is content / frame size, rounded up");
				CHECK_EQ_U64(compressed, (uint64_t)file_size(path),
					     "finish reports the shard's size");
				if (kind == 1)
					CHECK(compressed < this_len / 2, "text compresses");
				else
					CHECK(compressed < this_len + frames * 64 + 64,
					      "random data is stored with little overhead");
				CHECK(verify_shard(path, data, this_len, NULL, NULL),
				      "every frame reads back and frame_at finds it");
				if (thread_counts[t] != 2)
					CHECK(zstd_cli_accepts(path, data, this_len),
					      "zstd -t accepts it and zstd -dc restores it");
			}
		}
	}

	/* High level with long-distance matching. */
	{
		sf_seek_writer_options options = {
			.level = 19, .frame_bytes = 256 * 1024, .threads = 2,
			.long_distance = 1,
		};
		char *path = temp_path("long.zst");
		sf_error err = {0};
		size_t small = 700 * 1024;

		fill_text(data, small, 9);
		CHECK(write_shard(path, data, small, &options, NULL, 0, NULL, NULL,
				  &err) == SF_OK, "level 19 with long-distance matching");
		CHECK(verify_shard(path, data, small, NULL, NULL), "long-distance shard reads back");
		CHECK(zstd_cli_accepts(path, data, small), "zstd CLI reads the long-distance shard");
	}
	free(data);
}

/* Many small frames under 4 workers: frames must land in order. */
static void test_ordering(void)
{
	size_t len = 4096 * 300 + 5;
	unsigned char *data = malloc(len);
	sf_seek_writer_options options = {
		.level = 1, .frame_bytes = 4096, .threads = 4, .long_distance = 0,
	};
	char *path = temp_path("order.zst");
	sf_error err = {0};
	uint32_t frames = 0;

	/* Alternate stored and compressed frames so their times differ. */
	for (size_t i = 0; i < len; i += 4096) {
		size_t n = len - i < 4096 ? len - i : 4096;

		if ((i / 4096) % 3 == 0)
			fill_random(data + i, n, i);
		else
			fill_text(data + i, n, i);
	}
	CHECK(write_shard(path, data, len, &options, NULL, 0, NULL, &frames, &err) == SF_OK,
	      "301 frames with 4 threads");
	CHECK_EQ_U64(frames, 301, "301 frames written");
	CHECK(verify_shard(path, data, len, NULL, NULL), "frames are written in order");
	free(data);
}

/* ---- explicit frame ends ------------------------------------------- */

static void test_end_frame(void)
{
	/* Content offsets after which the frame is ended; repeated and
	   zero-length ends must not create empty frames. */
	size_t ends[] = {1, 5001, 5001, 9097, 9098, 20000, 20000, 24096};
	size_t len = 30000;
	unsigned char *data = malloc(len);
	uint32_t expected[32];
	uint32_t expected_count = 0;
	size_t start = 0;
	char *path = temp_path("ends.zst");
	sf_seek_reader *reader = NULL;
	int reader_fd = -1;
	int matches = 1;

	fill_text(data, len, 3);
	for (size_t i = 0; i <= sizeof(ends) / sizeof(ends[0]); i++) {
		size_t stop = i < sizeof(ends) / sizeof(ends[0]) ? ends[i] : len;

		while (start < stop) {
			size_t n = stop - start < 4096 ? stop - start : 4096;

			expected[expected_count++] = (uint32_t)n;
			start += n;
		}
	}
	for (int threads = 1; threads <= 4; threads *= 2) {
		sf_seek_writer_options options = {
			.level = 3, .frame_bytes = 4096, .threads = threads,
		};
		sf_error err = {0};
		uint32_t frames = 0;

		CHECK(write_shard(path, data, len, &options, ends,
				  sizeof(ends) / sizeof(ends[0]), NULL, &frames,
				  &err) == SF_OK, "shard with explicit frame ends");
		CHECK_EQ_U64(frames, expected_count, "frame count with explicit ends");
		if (!CHECK(verify_shard(path, data, len, &reader, &reader_fd), "explicit-end shard reads back"))
			continue;
		for (uint32_t i = 0; i < expected_count && i < frames; i++) {
			sf_seek_frame frame;

			sf_seek_reader_frame(reader, i, &frame);
			if (frame.decompressed_size != expected[i])
				matches = 0;
		}
		CHECK(matches, "frames end exactly where end_frame was called");
		sf_seek_reader_free(reader);
		close(reader_fd);
		reader = NULL;
	}
	free(data);
}

/* ---- stored frames ------------------------------------------------- */

static void test_raw_frames(void)
{
	/* Last frames of 300, 100 and 1 byte exercise the 2- and 1-byte
	   content size fields of hand-built frame headers. */
	size_t lengths[] = {4 * 262144 + 300, 262144 + 100, 1, 200000};
	unsigned char *data = malloc(4 * 262144 + 300);
	unsigned char *frame_bytes = malloc(300000);
	unsigned char *restored = malloc(262144);
	char what[128];

	for (size_t k = 0; k < sizeof(lengths) / sizeof(lengths[0]); k++) {
		sf_seek_writer_options options = {
			.level = 19, .frame_bytes = 262144, .threads = 1 + (int)(k % 2),
		};
		char *path = temp_path("raw.zst");
		sf_seek_reader *reader = NULL;
		int reader_fd = -1;
		sf_error err = {0};
		int tight = 1, decoded = 1;

		fill_random(data, lengths[k], 100 + k);
		snprintf(what, sizeof(what), "random %zu bytes written", lengths[k]);
		CHECK(write_shard(path, data, lengths[k], &options, NULL, 0, NULL, NULL,
				  &err) == SF_OK, what);
		if (!CHECK(verify_shard(path, data, lengths[k], &reader, &reader_fd), "stored frames read back"))
			continue;
		for (uint32_t i = 0; i < sf_seek_reader_frame_count(reader); i++) {
			sf_seek_frame frame;
			int fd = open(path, O_RDONLY);
			size_t blocks;
			size_t size;

			sf_seek_reader_frame(reader, i, &frame);
			blocks = (frame.decompressed_size + 131071) / 131072;
			/* magic + descriptor + size field + block headers + checksum */
			if (frame.compressed_size > frame.decompressed_size + 4 + 1 + 4 +
							    3 * blocks + 4)
				tight = 0;
			if (fd < 0 || pread(fd, frame_bytes, frame.compressed_size,
					    (off_t)frame.compressed_offset) !=
					      (ssize_t)frame.compressed_size)
				decoded = 0;
			size = ZSTD_decompress(restored, 262144, frame_bytes,
					       frame.compressed_size);
			if (ZSTD_isError(size) || size != frame.decompressed_size ||
			    memcmp(restored, data + frame.decompressed_offset, size) != 0)
				decoded = 0;
			if (fd >= 0)
				close(fd);
		}
		CHECK(tight, "stored frames cost only header, block headers and checksum");
		CHECK(decoded, "ZSTD_decompress accepts each stored frame");
		CHECK(zstd_cli_accepts(path, data, lengths[k]), "zstd -t / zstd -dc accept stored frames");
		sf_seek_reader_free(reader);
		close(reader_fd);
	}
	free(restored);
	free(frame_bytes);
	free(data);
}

/* ---- empty shard --------------------------------------------------- */

static void test_empty(void)
{
	sf_seek_writer_options options = {.level = 3, .frame_bytes = 65536, .threads = 2};
	char *path = temp_path("empty.zst");
	char command[512];
	sf_seek_reader *reader = NULL;
	sf_error err = {0};
	uint64_t compressed = 1;
	uint32_t frames = 1;
	int fd;

	CHECK(write_shard(path, NULL, 0, &options, NULL, 0, &compressed, &frames, &err) == SF_OK,
	      "empty shard written");
	CHECK_EQ_U64(frames, 0, "empty shard has no frames");
	CHECK_EQ_U64(compressed, 17, "empty shard is just the 17-byte seek table");
	CHECK_EQ_U64(file_size(path), 17, "empty shard file size");
	fd = open(path, O_RDONLY);
	CHECK(sf_seek_reader_open(&reader, fd, path, &err) == SF_OK, "empty shard opens");
	if (reader) {
		CHECK_EQ_U64(sf_seek_reader_frame_count(reader), 0, "no frames");
		CHECK_EQ_U64(sf_seek_reader_content_size(reader), 0, "no content");
		CHECK_EQ_U64(sf_seek_reader_frame_at(reader, 0), 0, "frame_at past the end");
		CHECK(sf_seek_reader_read_frame(reader, 0, command, sizeof(command), &err) ==
		      SF_ERR_INVALID, "reading frame 0 of an empty shard is refused");
	}
	sf_seek_reader_free(reader);
	close(fd);
	snprintf(command, sizeof(command), "zstd -q -t '%s' 2>/dev/null", path);
	CHECK(run(command) == 0, "zstd -t accepts a shard holding only the seek table");
	snprintf(command, sizeof(command), "test \"$(zstd -q -dc '%s' | wc -c)\" -eq 0", path);
	CHECK(run(command) == 0, "zstd -dc of the empty shard prints nothing");
}

/* ---- damage -------------------------------------------------------- */

static int patch(const char *path, off_t offset, const void *bytes, size_t len)
{
	int fd = open(path, O_WRONLY);
	int ok = fd >= 0 && pwrite(fd, bytes, len, offset) == (ssize_t)len;

	if (fd >= 0)
		close(fd);
	return ok;
}

static int flip(const char *path, off_t offset, unsigned char mask)
{
	int fd = open(path, O_RDWR);
	unsigned char byte;
	int ok = fd >= 0 && pread(fd, &byte, 1, offset) == 1;

	byte ^= mask;
	ok = ok && pwrite(fd, &byte, 1, offset) == 1;
	if (fd >= 0)
		close(fd);
	return ok;
}

static int copy_file(const char *from, const char *to)
{
	char command[1024];

	snprintf(command, sizeof(command), "cp '%s' '%s'", from, to);
	return run(command) == 0;
}

/* Open must fail cleanly with `expected` and a message naming the path. */
static void expect_open_error(const char *path, sf_err expected, const char *what)
{
	sf_seek_reader *reader = NULL;
	sf_error err = {0};
	int fd = open(path, O_RDONLY);
	sf_err code = sf_seek_reader_open(&reader, fd, path, &err);

	CHECK(code == expected && reader == NULL && strstr(err.message, path), what);
	printf("#   code %d: %s\n", (int)code, err.message);
	sf_seek_reader_free(reader);
	close(fd);
}

/* Read frame `index`; expect SF_ERR_CORRUPT naming the frame and byte. */
static void expect_frame_error(const char *path, uint32_t index, const char *needle,
			       const char *what)
{
	sf_seek_reader *reader = NULL;
	sf_error err = {0};
	int fd = open(path, O_RDONLY);
	unsigned char *buf = malloc(65536);
	char where[128];
	sf_seek_frame frame;
	sf_err code = SF_ERR_INVALID;
	int others_ok = 1;

	if (sf_seek_reader_open(&reader, fd, path, &err) == SF_OK) {
		sf_seek_reader_frame(reader, index, &frame);
		snprintf(where, sizeof(where), "frame %u (byte %llu)", index,
			 (unsigned long long)frame.compressed_offset);
		code = sf_seek_reader_read_frame(reader, index, buf, 65536, &err);
		CHECK(code == SF_ERR_CORRUPT && strstr(err.message, path) &&
			      strstr(err.message, where) &&
			      (!needle || strstr(err.message, needle)), what);
		printf("#   code %d: %s\n", (int)code, err.message);
		for (uint32_t i = 0; i < sf_seek_reader_frame_count(reader); i++)
			if (i != index &&
			    sf_seek_reader_read_frame(reader, i, buf, 65536, &err) != SF_OK)
				others_ok = 0;
		CHECK(others_ok, "the other frames still read");
	} else {
		CHECK(0, what);
		printf("#   %s\n", err.message);
	}
	sf_seek_reader_free(reader);
	close(fd);
	free(buf);
}

static void test_damage(void)
{
	size_t len = 10 * 8192 + 77;
	unsigned char *data = malloc(len);
	sf_seek_writer_options options = {.level = 3, .frame_bytes = 8192, .threads = 2};
	char good[256], bad[256];
	sf_seek_reader *reader = NULL;
	sf_seek_frame frame3, frame5;
	sf_error err = {0};
	off_t size, table;
	uint32_t count;
	unsigned char bytes[16];
	int fd;

	snprintf(good, sizeof(good), "%s", temp_path("good.zst"));
	snprintf(bad, sizeof(bad), "%s", temp_path("bad.zst"));
	fill_text(data, len, 5);
	fill_random(data + 5 * 8192, 8192, 55); /* frame 5 is stored raw */
	CHECK(write_shard(good, data, len, &options, NULL, 0, NULL, &count, &err) == SF_OK,
	      "shard to damage written");
	fd = open(good, O_RDONLY);
	if (!CHECK(sf_seek_reader_open(&reader, fd, good, &err) == SF_OK, "shard opens")) {
		close(fd);
		free(data);
		return;
	}
	sf_seek_reader_frame(reader, 3, &frame3);
	sf_seek_reader_frame(reader, 5, &frame5);
	sf_seek_reader_free(reader);
	close(fd);
	size = file_size(good);
	table = size - (off_t)(8 + 12 * count + 9);

	/* Damaged frames: the reader names the frame and its byte offset. */
	copy_file(good, bad);
	flip(bad, (off_t)(frame3.compressed_offset + frame3.compressed_size / 2), 0x10);
	expect_frame_error(bad, 3, NULL, "byte flipped inside compressed frame 3");
	copy_file(good, bad);
	flip(bad, (off_t)(frame5.compressed_offset + frame5.compressed_size / 2), 0x01);
	expect_frame_error(bad, 5, NULL, "byte flipped inside stored frame 5");
	copy_file(good, bad);
	flip(bad, (off_t)(frame3.compressed_offset + frame3.compressed_size - 1), 0x80);
	expect_frame_error(bad, 3, NULL, "zstd content checksum of frame 3 damaged");
	copy_file(good, bad);
	flip(bad, table + 8 + 12 * 3 + 8, 0x04);
	expect_frame_error(bad, 3, "checksum mismatch, expected 0x",
			   "seek table checksum of frame 3 damaged");
	copy_file(good, bad);
	flip(bad, (off_t)frame3.compressed_offset, 0xFF);
	expect_frame_error(bad, 3, "zstd frame header expected", "magic of frame 3 damaged");
	copy_file(good, bad);
	flip(bad, (off_t)frame3.compressed_offset + 4, 0x04);
	expect_frame_error(bad, 3, "without content checksum",
			   "content checksum flag of frame 3 cleared");

	/* Damaged seek tables: open fails cleanly. */
	copy_file(good, bad);
	flip(bad, size - 1, 0x01);
	expect_open_error(bad, SF_ERR_CORRUPT, "bad seekable magic");
	copy_file(good, bad);
	flip(bad, size - 5, 0x04);
	expect_open_error(bad, SF_ERR_CORRUPT, "reserved descriptor bit set");
	copy_file(good, bad);
	flip(bad, size - 5, 0x80);
	expect_open_error(bad, SF_ERR_UNSUPPORTED, "checksum flag cleared");
	copy_file(good, bad);
	flip(bad, size - 5, 0x01);
	{
		sf_seek_reader *lenient = NULL;
		int lfd = open(bad, O_RDONLY);

		CHECK(sf_seek_reader_open(&lenient, lfd, bad, &err) == SF_OK,
		      "unused descriptor bits are ignored");
		sf_seek_reader_free(lenient);
		close(lfd);
	}
	copy_file(good, bad);
	flip(bad, size - 9, 0x01);
	expect_open_error(bad, SF_ERR_CORRUPT, "frame count off by one");
	copy_file(good, bad);
	bytes[0] = 0xFF;
	bytes[1] = 0xFF;
	bytes[2] = 0xFF;
	bytes[3] = 0xFF;
	patch(bad, size - 9, bytes, 4);
	expect_open_error(bad, SF_ERR_LIMIT, "frame count of 2^32-1");
	copy_file(good, bad);
	flip(bad, table, 0x01);
	expect_open_error(bad, SF_ERR_CORRUPT, "bad skippable magic");
	copy_file(good, bad);
	flip(bad, table + 4, 0x01);
	expect_open_error(bad, SF_ERR_CORRUPT, "bad skippable frame size");
	copy_file(good, bad);
	flip(bad, table + 8 + 12 * 2, 0x01);
	expect_open_error(bad, SF_ERR_CORRUPT, "compressed size of frame 2 off by one");
	copy_file(good, bad);
	memset(bytes, 0, 4);
	patch(bad, table + 8 + 12 * 2 + 4, bytes, 4);
	expect_open_error(bad, SF_ERR_CORRUPT, "decompressed size of frame 2 is zero");
	copy_file(good, bad);
	bytes[0] = 0x01;
	bytes[1] = 0x00;
	bytes[2] = 0x00;
	bytes[3] = 0x01;
	patch(bad, table + 8 + 12 * 2 + 4, bytes, 4);
	expect_open_error(bad, SF_ERR_LIMIT, "decompressed size of frame 2 over 16 MiB");
	copy_file(good, bad);
	CHECK(truncate(bad, size - 1) == 0, "truncate");
	expect_open_error(bad, SF_ERR_CORRUPT, "last byte cut off");
	copy_file(good, bad);
	CHECK(truncate(bad, size - 20) == 0, "truncate");
	expect_open_error(bad, SF_ERR_CORRUPT, "seek table cut short");
	CHECK(truncate(bad, 5) == 0, "truncate");
	expect_open_error(bad, SF_ERR_CORRUPT, "5-byte file");
	CHECK(truncate(bad, 0) == 0, "truncate");
	expect_open_error(bad, SF_ERR_CORRUPT, "empty file");
	{
		/* Frames shifted by one byte: sizes no longer add up. */
		char command[1024];

		snprintf(command, sizeof(command), "(printf x; cat '%s') > '%s'", good, bad);
		run(command);
		expect_open_error(bad, SF_ERR_CORRUPT, "one extra byte before the frames");
	}
	free(data);
}

/* ---- sf_seek_table_parse directly ---------------------------------- */

static void test_table_parse(void)
{
	unsigned char tail[8 + 24 + 9 + 5];
	unsigned char *table = tail + 5;
	sf_seek_frame *frames = NULL;
	uint32_t count = 9;
	sf_error err = {0};

	memset(tail, 0xAB, 5);
	/* Two frames of 100 and 50 compressed bytes. */
	table[0] = 0x5E; table[1] = 0x2A; table[2] = 0x4D; table[3] = 0x18;
	table[4] = 24 + 9; table[5] = 0; table[6] = 0; table[7] = 0;
	memset(table + 8, 0, 24);
	table[8] = 100; table[12] = 200; table[16] = 1;
	table[20] = 50; table[24] = 60; table[28] = 2;
	table[32] = 2; table[33] = 0; table[34] = 0; table[35] = 0;
	table[36] = 0x80;
	table[37] = 0xB1; table[38] = 0xEA; table[39] = 0x92; table[40] = 0x8F;

	CHECK(sf_seek_table_parse(tail, sizeof(tail), 150 + 41, "t", &frames, &count, &err) ==
	      SF_OK, "table parses with extra bytes before it");
	CHECK(count == 2 && frames && frames[1].compressed_offset == 100 &&
	      frames[1].decompressed_offset == 200 && frames[1].checksum == 2,
	      "parsed frames have cumulative offsets");
	free(frames);
	CHECK(sf_seek_table_parse(table, 41, 150 + 41, "t", &frames, &count, &err) == SF_OK,
	      "exact table parses");
	free(frames);
	CHECK(sf_seek_table_parse(table + 1, 40, 150 + 41, "t", &frames, &count, &err) ==
	      SF_ERR_CORRUPT && frames == NULL && count == 0, "table missing its first byte");
	CHECK(sf_seek_table_parse(table, 41, 150 + 40, "t", &frames, &count, &err) ==
	      SF_ERR_CORRUPT, "shard one byte too small");
	CHECK(sf_seek_table_parse(table, 41, 40, "t", &frames, &count, &err) ==
	      SF_ERR_INVALID, "tail longer than shard");
	CHECK(sf_seek_table_parse(table, 0, 0, "t", &frames, &count, &err) ==
	      SF_ERR_CORRUPT, "nothing at all");
	CHECK(strstr(err.message, "'t'") != NULL, "message names the shard");
}

/* ---- writer errors ------------------------------------------------- */

static void test_writer_errors(void)
{
	sf_seek_writer_options options = {.level = 3, .frame_bytes = 4096, .threads = 2};
	sf_seek_writer *writer = NULL;
	sf_error err = {0};
	unsigned char data[10000];
	char *path = temp_path("readonly.zst");
	int fd;
	sf_err code;

	options.frame_bytes = 100;
	CHECK(sf_seek_writer_create(&writer, 1, "x", &options, &err) == SF_ERR_INVALID &&
	      !writer, "frame size below 4 KiB refused");
	options.frame_bytes = SF_SEEK_MAX_FRAME_BYTES + 1;
	CHECK(sf_seek_writer_create(&writer, 1, "x", &options, &err) == SF_ERR_INVALID,
	      "frame size above 16 MiB refused");
	options.frame_bytes = 4096;
	options.threads = 0;
	CHECK(sf_seek_writer_create(&writer, 1, "x", &options, &err) == SF_ERR_INVALID,
	      "zero threads refused");
	options.threads = 2;
	options.level = 99;
	CHECK(sf_seek_writer_create(&writer, 1, "x", &options, &err) == SF_ERR_INVALID,
	      "level 99 refused");
	options.level = 3;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	close(fd);
	fd = open(path, O_RDONLY);
	fill_random(data, sizeof(data), 8);
	code = sf_seek_writer_create(&writer, fd, path, &options, &err);
	if (code == SF_OK)
		code = sf_seek_writer_write(writer, data, sizeof(data), &err);
	if (code == SF_OK)
		code = sf_seek_writer_finish(writer, NULL, NULL, &err);
	CHECK(code == SF_ERR_IO && strstr(err.message, path) && strstr(err.message, "byte 0"),
	      "write error names the path and byte offset");
	printf("# %s\n", err.message);
	CHECK(sf_seek_writer_write(writer, data, 1, &err) == SF_ERR_IO,
	      "a failed writer keeps failing");
	sf_seek_writer_free(writer);
	close(fd);

	/* Free with frames still queued: no hang, no leak. */
	fd = open(temp_path("abandoned.zst"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	options.threads = 4;
	writer = NULL;
	if (sf_seek_writer_create(&writer, fd, "abandoned", &options, &err) == SF_OK)
		for (int i = 0; i < 20; i++)
			sf_seek_writer_write(writer, data, sizeof(data), &err);
	sf_seek_writer_free(writer);
	sf_seek_writer_free(NULL);
	sf_seek_reader_free(NULL);
	close(fd);
	CHECK(1, "unfinished writer freed");
}

/* ---- concurrent reads ---------------------------------------------- */

struct reader_job {
	const sf_seek_reader *reader;
	const unsigned char *data;
	int ok;
};

static void *read_all_frames(void *arg)
{
	struct reader_job *job = arg;
	unsigned char *buf = malloc(65536);
	sf_error err;

	job->ok = buf != NULL;
	for (int round = 0; round < 5 && job->ok; round++) {
		for (uint32_t i = 0; i < sf_seek_reader_frame_count(job->reader); i++) {
			uint32_t index = (i * 7 + (uint32_t)round) %
					 sf_seek_reader_frame_count(job->reader);
			sf_seek_frame frame;

			sf_seek_reader_frame(job->reader, index, &frame);
			if (sf_seek_reader_read_frame(job->reader, index, buf, 65536, &err) !=
				    SF_OK ||
			    memcmp(buf, job->data + frame.decompressed_offset,
				   frame.decompressed_size) != 0)
				job->ok = 0;
		}
	}
	free(buf);
	return NULL;
}

static void test_concurrent_reads(void)
{
	size_t len = 64 * 65536 - 3;
	unsigned char *data = malloc(len);
	sf_seek_writer_options options = {.level = 1, .frame_bytes = 65536, .threads = 4};
	char *path = temp_path("threads.zst");
	sf_seek_reader *reader = NULL;
	struct reader_job jobs[4];
	pthread_t threads[4];
	sf_error err = {0};
	int fd, all_ok = 1;

	fill_text(data, len / 2, 11);
	fill_random(data + len / 2, len - len / 2, 12);
	write_shard(path, data, len, &options, NULL, 0, NULL, NULL, &err);
	fd = open(path, O_RDONLY);
	if (!CHECK(sf_seek_reader_open(&reader, fd, path, &err) == SF_OK, "shard opens")) {
		close(fd);
		free(data);
		return;
	}
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct reader_job){reader, data, 0};
		pthread_create(&threads[i], NULL, read_all_frames, &jobs[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		all_ok &= jobs[i].ok;
	}
	CHECK(all_ok, "4 threads read every frame concurrently");
	sf_seek_reader_free(reader);
	close(fd);
	free(data);
}

int main(void)
{
	char command[256];

	if (!mkdtemp(temp_dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_round_trips();
	test_ordering();
	test_end_frame();
	test_raw_frames();
	test_empty();
	test_damage();
	test_table_parse();
	test_writer_errors();
	test_concurrent_reads();
	snprintf(command, sizeof(command), "rm -rf '%s'", temp_dir);
	run(command);
	return check_done();
}
