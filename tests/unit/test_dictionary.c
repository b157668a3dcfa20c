/*
 * test_dictionary.c - shards compressed with a trained zstd dictionary:
 * round trips in each mode and thread count, the same frames as without
 * a dictionary, the auto decision on data that does and does not profit,
 * the zstd CLI with -D, and a missing, wrong or damaged dictionary.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "sf_seekable.h"

static char temp_dir[] = "/tmp/sf_dictionary_XXXXXX";

/* Rows as a distilabel step writes them: the same keys and boilerplate
   in every row, a few varying words and numbers. */
static void fill_rows(unsigned char *buf, size_t len, uint64_t seed)
{
	static const char *const words[] = {
		"alpha", "beta", "gamma", "delta", "quantum", "river", "mountain",
		"answer", "question", "model", "token", "sample", "physics",
	};
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 7;
	size_t i = 0;

	while (i < len) {
		char row[512];
		int n;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		n = snprintf(row, sizeof(row),
			     "{\"instruction\": \"Explain %s and %s in simple terms.\", "
			     "\"generation\": \"The %s of %s is %llu.\", "
			     "\"model_name\": \"meta-llama/Meta-Llama-3-8B-Instruct\", "
			     "\"distilabel_metadata\": {\"raw_output_text_generation_0\": "
			     "\"%s\"}, \"score\": %llu}\n",
			     words[(x >> 33) % 13], words[(x >> 40) % 13],
			     words[(x >> 45) % 13], words[(x >> 50) % 13],
			     (unsigned long long)(x >> 20) % 100000, words[(x >> 27) % 13],
			     (unsigned long long)(x >> 11) % 10);
		if ((size_t)n > len - i)
			n = (int)(len - i);
		memcpy(buf + i, row, (size_t)n);
		i += (size_t)n;
	}
}

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

/* Write data as a shard (ending a frame every `cut` bytes when cut > 0);
   keep the dictionary in dict_path when one is used. */
static sf_err write_shard(const char *path, const char *dict_path, const unsigned char *data,
			  size_t len, size_t cut, const sf_seek_writer_options *options,
			  sf_seek_dict_info *info, uint32_t *frames)
{
	sf_seek_writer *writer = NULL;
	sf_error err = { 0 };
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	size_t done = 0;
	sf_err code;

	if (fd < 0)
		return SF_ERR_IO;
	code = sf_seek_writer_create(&writer, fd, path, options, &err);
	while (code == SF_OK && done < len) {
		size_t take = len - done < 1000 ? len - done : 1000;

		if (cut && (done / cut) != ((done + take) / cut))
			take = cut - done % cut;
		code = sf_seek_writer_write(writer, data + done, take, &err);
		done += take;
		if (code == SF_OK && sf_seek_writer_offset(writer) != done)
			code = SF_ERR_INVALID;
		if (code == SF_OK && cut && done % cut == 0)
			code = sf_seek_writer_end_frame(writer, &err);
	}
	if (code == SF_OK)
		code = sf_seek_writer_finish(writer, NULL, frames, &err);
	if (code == SF_OK) {
		const void *dict;
		size_t dict_len;

		sf_seek_writer_dictionary(writer, info, &dict, &dict_len);
		if (info->used && dict_path) {
			int dfd = open(dict_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

			if (dfd < 0 || write(dfd, dict, dict_len) != (ssize_t)dict_len)
				code = SF_ERR_IO;
			if (dfd >= 0)
				close(dfd);
		}
	}
	if (code != SF_OK)
		printf("# write_shard: %s\n", err.message);
	sf_seek_writer_free(writer);
	close(fd);
	return code;
}

static unsigned char *read_file(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf && read(fd, buf, (size_t)st.st_size) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* Read every frame back with dict_path's dictionary (NULL: none); 1 when
   all match data, 0 on the first failure (its message in *why). */
static int read_shard(const char *path, const char *dict_path, const unsigned char *data,
		      size_t len, sf_error *why)
{
	sf_seek_reader *reader = NULL;
	unsigned char *buf = malloc(SF_SEEK_MAX_FRAME_BYTES), *dict = NULL;
	int fd = open(path, O_RDONLY), ok = 0;
	size_t dict_len = 0;

	if (fd < 0 || !buf || sf_seek_reader_open(&reader, fd, path, why) != SF_OK)
		goto out;
	if (dict_path) {
		dict = read_file(dict_path, &dict_len);
		if (!dict || sf_seek_reader_set_dictionary(reader, dict, dict_len, dict_path, why) != SF_OK)
			goto out;
	}
	if (sf_seek_reader_content_size(reader) != len)
		goto out;
	for (uint32_t i = 0; i < sf_seek_reader_frame_count(reader); i++) {
		sf_seek_frame frame;

		sf_seek_reader_frame(reader, i, &frame);
		if (sf_seek_reader_read_frame(reader, i, buf, SF_SEEK_MAX_FRAME_BYTES, why) != SF_OK ||
		    memcmp(buf, data + frame.decompressed_offset, frame.decompressed_size) != 0)
			goto out;
	}
	ok = 1;
out:
	sf_seek_reader_free(reader);
	if (fd >= 0)
		close(fd);
	free(dict);
	free(buf);
	return ok;
}

static void test_round_trips(const unsigned char *rows, size_t len)
{
	for (int threads = 1; threads <= 3; threads += 2) {
		sf_seek_writer_options never = { .level = 3, .frame_bytes = 16384, .threads = threads };
		sf_seek_writer_options always = never;
		sf_seek_dict_info info;
		sf_error why = { 0 };
		uint32_t frames_never = 0, frames_always = 0;
		char what[128];

		always.dictionary = SF_SEEK_DICT_ALWAYS;
		CHECK(write_shard(temp_path("never.zst"), NULL, rows, len, 50000, &never, &info,
				  &frames_never) == SF_OK, "write without dictionary");
		CHECK(!info.used && info.dict_bytes == 0, "never: no dictionary");
		CHECK(write_shard(temp_path("always.zst"), temp_path("always.dict"), rows, len, 50000,
				  &always, &info, &frames_always) == SF_OK, "write with dictionary");
		snprintf(what, sizeof(what), "always, %d threads: dictionary used (%s)", threads,
			 info.reason);
		CHECK(info.used, what);
		CHECK(info.dict_bytes >= SF_SEEK_DICT_MIN_BYTES / 2 &&
		      info.dict_bytes <= SF_SEEK_DICT_MAX_BYTES, "dictionary size within bounds");
		CHECK(info.dict_id != 0, "dictionary has an ID");
		CHECK(info.held_bytes == SF_SEEK_DICT_SAMPLE_BYTES, "trained on a bounded sample");
		CHECK(info.probe_bytes > 0 && info.probe_bytes <= SF_SEEK_DICT_PROBE_BYTES + 16384,
		      "probe bounded");
		CHECK(info.probe_dict < info.probe_plain, "dictionary compresses small frames better");
		CHECK_EQ_U64(frames_always, frames_never, "same frames with and without a dictionary");
		CHECK(read_shard(temp_path("always.zst"), temp_path("always.dict"), rows, len, &why),
		      "round trip with the dictionary");
		CHECK(read_shard(temp_path("never.zst"), NULL, rows, len, &why), "round trip without");
	}
}

static void test_failures(const unsigned char *rows, size_t len)
{
	sf_seek_writer_options options = { .level = 3, .frame_bytes = 16384, .threads = 2,
					   .dictionary = SF_SEEK_DICT_ALWAYS };
	sf_seek_dict_info info;
	sf_error why = { 0 };
	size_t dict_len = 0;
	unsigned char *dict;
	char command[1024];

	CHECK(write_shard(temp_path("a.zst"), temp_path("a.dict"), rows, len, 0, &options, &info, NULL) ==
		      SF_OK, "write shard a");
	CHECK(write_shard(temp_path("b.zst"), temp_path("b.dict"), rows + 4096, len - 4096, 0, &options,
			  &info, NULL) == SF_OK, "write shard b");
	CHECK(!read_shard(temp_path("a.zst"), NULL, rows, len, &why) &&
	      strstr(why.message, "needs dictionary"), "no dictionary: frames refused");
	printf("# %s\n", why.message);
	CHECK(!read_shard(temp_path("a.zst"), temp_path("b.dict"), rows, len, &why) &&
	      strstr(why.message, "the shard's is"), "another shard's dictionary: refused");
	printf("# %s\n", why.message);

	dict = read_file(temp_path("a.dict"), &dict_len);
	if (dict) {
		int fd;

		dict[0] ^= 0xFF; /* the dictionary magic */
		fd = open(temp_path("bad.dict"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			CHECK(write(fd, dict, dict_len) == (ssize_t)dict_len, "write damaged dictionary");
			close(fd);
		}
		free(dict);
	}
	CHECK(!read_shard(temp_path("a.zst"), temp_path("bad.dict"), rows, len, &why) &&
	      strstr(why.message, "bad.dict") && strstr(why.message, "not a zstd dictionary"),
	      "damaged dictionary: refused, naming the file");
	printf("# %s\n", why.message);

	snprintf(command, sizeof(command), "command -v zstd >/dev/null || exit 0; "
		 "zstd -q -D '%s' -dc '%s' > '%s'",
		 temp_path("a.dict"), temp_path("a.zst"), temp_path("a.out"));
	CHECK(run(command) == 0, "zstd -D DICT -dc decompresses the shard");
	dict = read_file(temp_path("a.out"), &dict_len);
	CHECK(!dict || (dict_len == len && memcmp(dict, rows, len) == 0), "zstd -D output matches");
	free(dict);
}

static void test_auto(const unsigned char *rows, size_t len)
{
	sf_seek_writer_options options = { .level = 3, .frame_bytes = 4096, .threads = 2,
					   .dictionary = SF_SEEK_DICT_AUTO };
	unsigned char *noise = malloc(len);
	sf_seek_dict_info info;
	sf_error why = { 0 };

	CHECK(write_shard(temp_path("auto.zst"), temp_path("auto.dict"), rows, len, 0, &options, &info,
			  NULL) == SF_OK, "auto: write rows at 4 KiB frames");
	printf("# auto rows: %s, dict %zu bytes, probe %llu -> %llu / %llu\n", info.reason,
	       info.dict_bytes, (unsigned long long)info.probe_bytes,
	       (unsigned long long)info.probe_plain, (unsigned long long)info.probe_dict);
	CHECK(info.used, "auto: a dictionary pays on small frames of similar rows");
	CHECK(read_shard(temp_path("auto.zst"), info.used ? temp_path("auto.dict") : NULL, rows, len,
			 &why), "auto: round trip");

	if (!noise)
		return;
	fill_random(noise, len, 3);
	CHECK(write_shard(temp_path("noise.zst"), NULL, noise, len / 4, 0, &options, &info, NULL) ==
		      SF_OK, "auto: write random bytes");
	CHECK(!info.used, "auto: no dictionary for random bytes");
	CHECK(read_shard(temp_path("noise.zst"), NULL, noise, len / 4, &why), "auto: random round trip");

	CHECK(write_shard(temp_path("tiny.zst"), NULL, rows, 5000, 0, &options, &info, NULL) == SF_OK,
	      "auto: write a tiny shard");
	CHECK(!info.used && strstr(info.reason, "too little"), "auto: too little to train");
	CHECK(read_shard(temp_path("tiny.zst"), NULL, rows, 5000, &why), "tiny round trip");
	free(noise);
}

/* expected_bytes: auto weighs the saving over the shard's expected size,
   but only once the sample is full (more content then follows). */
static void test_expected(const unsigned char *rows, size_t len)
{
	sf_seek_writer_options options = { .level = 3, .frame_bytes = 64 * 1024, .threads = 2,
					   .dictionary = SF_SEEK_DICT_AUTO };
	sf_seek_dict_info info;
	sf_error why = { 0 };

	options.expected_bytes = (uint64_t)1 << 40;
	CHECK(write_shard(temp_path("exp.zst"), temp_path("exp.dict"), rows, len, 0, &options, &info,
			  NULL) == SF_OK, "expected: write a full sample");
	printf("# expected 1 TiB: %s, probe %llu -> %llu\n", info.reason,
	       (unsigned long long)info.probe_plain, (unsigned long long)info.probe_dict);
	CHECK(strstr(info.reason, "expected size") != NULL, "expected: a full sample is weighed over the expected size");
	/* on these rows at 64 KiB frames the saving is small: below the margin
	   on the 8 MiB sample (checked below), far above it over 1 TiB */
	CHECK(info.used && info.probe_dict < info.probe_plain,
	      "expected: over 1 TiB a small saving beats the dictionary's size");
	CHECK(read_shard(temp_path("exp.zst"), info.used ? temp_path("exp.dict") : NULL, rows, len, &why),
	      "expected: round trip");

	options.expected_bytes = 0;
	CHECK(write_shard(temp_path("exp0.zst"), NULL, rows, len, 0, &options, &info, NULL) == SF_OK,
	      "expected unknown: write");
	printf("# expected unknown: %s\n", info.reason);
	CHECK(!info.used && strstr(info.reason, "sample") != NULL && strstr(info.reason, "expected") == NULL,
	      "expected unknown: weighed over the sample, the same saving does not pay");

	options.expected_bytes = (uint64_t)1 << 40;
	CHECK(write_shard(temp_path("exp2.zst"), NULL, rows, 2 * 1024 * 1024, 0, &options, &info, NULL) ==
		      SF_OK, "expected, sample not full: write");
	CHECK(strstr(info.reason, "expected") == NULL,
	      "expected, sample not full: the shard is all there, weighed as it is");
}

/* 1 when the two files hold the same bytes. */
static int same_file(const char *a, const char *b)
{
	size_t len_a = 0, len_b = 0;
	unsigned char *x = read_file(a, &len_a), *y = read_file(b, &len_b);
	int same = x && y && len_a == len_b && memcmp(x, y, len_a) == 0;

	free(x);
	free(y);
	return same;
}

/* A writer with workers compresses frames on several threads, after its
   dictionary was decided on the first 8 MiB: the shard and the dictionary
   must be byte for byte those of a writer without workers, on twice the
   sample and more. */
static void test_workers_same_bytes(void)
{
	size_t len = 2 * SF_SEEK_DICT_SAMPLE_BYTES + 3 * 1024 * 1024 + 555;
	unsigned char *rows = malloc(len);
	sf_seek_writer_options one = { .level = 3, .frame_bytes = 16384, .threads = 1,
				       .dictionary = SF_SEEK_DICT_ALWAYS };
	sf_seek_writer_options two = one;
	sf_seek_dict_info info_one, info_two;
	sf_error why = { 0 };
	uint32_t frames_one = 0, frames_two = 0;

	if (!CHECK(rows != NULL, "19 MiB of rows"))
		return;
	fill_rows(rows, len, 7);
	two.threads = 2;
	CHECK(write_shard(temp_path("one.zst"), temp_path("one.dict"), rows, len, 40000, &one, &info_one,
			  &frames_one) == SF_OK, "19 MiB shard, one thread");
	CHECK(write_shard(temp_path("two.zst"), temp_path("two.dict"), rows, len, 40000, &two, &info_two,
			  &frames_two) == SF_OK, "19 MiB shard, two workers");
	CHECK(info_one.used && info_two.used && info_one.dict_id == info_two.dict_id &&
	      info_one.held_bytes == SF_SEEK_DICT_SAMPLE_BYTES && info_two.held_bytes == SF_SEEK_DICT_SAMPLE_BYTES,
	      "the same dictionary, trained on the first 8 MiB either way");
	CHECK_EQ_U64(frames_two, frames_one, "the same frames");
	CHECK(same_file(temp_path("one.zst"), temp_path("two.zst")), "the same shard, byte for byte");
	CHECK(same_file(temp_path("one.dict"), temp_path("two.dict")), "the same dictionary, byte for byte");
	CHECK(read_shard(temp_path("two.zst"), temp_path("two.dict"), rows, len, &why),
	      "round trip of the shard written by two workers");
	free(rows);
}

int main(void)
{
	size_t len = SF_SEEK_DICT_SAMPLE_BYTES + 3 * 1024 * 1024 + 777;
	unsigned char *rows = malloc(len);
	char command[256];

	if (!rows || !mkdtemp(temp_dir)) {
		perror("setup");
		return 1;
	}
	fill_rows(rows, len, 1);
	test_round_trips(rows, len);
	test_failures(rows, len);
	test_auto(rows, len);
	test_expected(rows, len);
	test_workers_same_bytes();
	snprintf(command, sizeof(command), "rm -rf '%s'", temp_dir);
	if (!getenv("KEEP"))
		run(command);
	free(rows);
	return check_done();
}
