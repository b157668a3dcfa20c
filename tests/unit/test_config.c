/*
 * test_config.c - the configuration: defaults, files, command-line
 * overrides, the search path, sizes and durations, and every error, each
 * of which must name the file, the line and the column.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "sf_config.h"

static int contains(const char *haystack, const char *needle)
{
	return strstr(haystack, needle) != NULL;
}

/* Load text as "cfg.yaml" over defaults; returns the code, message in err. */
static sf_err load_text(sf_config *config, const char *text, sf_error *err)
{
	memset(err, 0, sizeof(*err));
	return sf_config_load_mem(config, text, strlen(text), "cfg.yaml", err);
}

/* One failing document: code, and the message holds every fragment. */
static void expect_error(const char *what, const char *text, sf_err code, const char *position,
			 const char *detail)
{
	sf_config config;
	sf_error err;
	char name[256];
	sf_err rc;

	sf_config_init_defaults(&config);
	rc = load_text(&config, text, &err);
	snprintf(name, sizeof(name), "%s: fails with the right code", what);
	if (!CHECK(rc == code, name))
		printf("#   got code %d (%s), expected %d\n", (int)rc, err.message, (int)code);
	snprintf(name, sizeof(name), "%s: message names the file and %s", what, position);
	if (!CHECK(contains(err.message, "'cfg.yaml': ") && contains(err.message, position), name))
		printf("#   message: %s\n", err.message);
	snprintf(name, sizeof(name), "%s: message says '%s'", what, detail);
	if (!CHECK(contains(err.message, detail), name))
		printf("#   message: %s\n", err.message);
	snprintf(name, sizeof(name), "%s: a failed load changes nothing", what);
	CHECK(config.pack_level == 3 && config.source[SF_CONFIG_PACK_LEVEL].origin == SF_CONFIG_FROM_DEFAULT &&
		      config.file_count == 0, name);
	sf_config_release(&config);
}

static void test_sizes_and_durations(void)
{
	uint64_t v = 0;
	const char *problem = NULL;

	CHECK(sf_parse_size("256K", &v, NULL) && v == 256 * 1024, "size 256K");
	CHECK(sf_parse_size("64M", &v, NULL) && v == 64ull << 20, "size 64M");
	CHECK(sf_parse_size("50G", &v, NULL) && v == 50ull << 30, "size 50G");
	CHECK(sf_parse_size("2T", &v, NULL) && v == 2ull << 40, "size 2T");
	CHECK(sf_parse_size("64MiB", &v, NULL) && v == 64ull << 20, "size 64MiB");
	CHECK(sf_parse_size("64mb", &v, NULL) && v == 64ull << 20, "size 64mb");
	CHECK(sf_parse_size("4096", &v, NULL) && v == 4096, "size without a suffix is bytes");
	CHECK(!sf_parse_size("12X", &v, &problem) && contains(problem, "unknown suffix"), "size 12X: unknown suffix");
	CHECK(!sf_parse_size("", &v, &problem) && contains(problem, "empty"), "empty size");
	CHECK(!sf_parse_size("-1K", &v, &problem) && contains(problem, "not a number"), "negative size");
	CHECK(!sf_parse_size("1.5G", &v, &problem), "fractional size refused");
	CHECK(!sf_parse_size("99999999999999999999", &v, &problem) && contains(problem, "too large"),
	      "size overflowing 64 bits");
	CHECK(!sf_parse_size("17179869184G", &v, &problem) && contains(problem, "too large"),
	      "size overflowing with its suffix");
	CHECK(sf_parse_duration("30d", &v, NULL) && v == 30 * 86400, "duration 30d");
	CHECK(sf_parse_duration("2w", &v, NULL) && v == 14 * 86400, "duration 2w");
	CHECK(sf_parse_duration("12h", &v, NULL) && v == 12 * 3600, "duration 12h");
	CHECK(sf_parse_duration("15m", &v, NULL) && v == 900, "duration 15m");
	CHECK(sf_parse_duration("90s", &v, NULL) && v == 90, "duration 90s");
	CHECK(sf_parse_duration("3600", &v, NULL) && v == 3600, "duration without a suffix is seconds");
	CHECK(!sf_parse_duration("3y", &v, &problem) && contains(problem, "unknown suffix"), "duration 3y: unknown suffix");
	CHECK(!sf_parse_duration("d", &v, &problem) && contains(problem, "not a number"), "duration without digits");
	{
		char buf[32];

		CHECK(strcmp(sf_format_size(256 * 1024, buf, sizeof(buf)), "256K") == 0, "format 256K");
		CHECK(strcmp(sf_format_size(1000, buf, sizeof(buf)), "1000") == 0, "format 1000 bytes");
		CHECK(strcmp(sf_format_duration(30 * 86400, buf, sizeof(buf)), "30d") == 0, "format 30d");
		CHECK(strcmp(sf_format_duration(14 * 86400, buf, sizeof(buf)), "2w") == 0, "format 2w");
		CHECK(strcmp(sf_format_duration(61, buf, sizeof(buf)), "61s") == 0, "format 61s");
	}
}

static void test_defaults_and_precedence(void)
{
	sf_config config;
	sf_error err;
	char origin[256];

	sf_config_init_defaults(&config);
	CHECK(config.pack_level == 3, "default level 3");
	CHECK_EQ_U64(config.pack_frame_bytes, 256 * 1024, "default frame size 256K");
	CHECK(config.pack_threads == 0, "default threads auto");
	CHECK(config.pack_long_distance == 0, "default long_distance false");
	CHECK(config.pack_dictionary == SF_CONFIG_DICTIONARY_AUTO, "default dictionary auto");
	CHECK_EQ_U64(config.mount_cache_bytes, 64ull << 20, "default cache 64M");
	CHECK(config.mount_threads == 10, "default mount threads 10");
	CHECK_EQ_U64(config.mount_metadata_bytes, 16ull << 20, "default metadata budget 16M");
	CHECK(config.gc_max_age_seconds == 0 && config.gc_max_bytes == 0, "default gc limits off");
	CHECK(strcmp(sf_config_origin_text(&config, SF_CONFIG_PACK_LEVEL, origin, sizeof(origin)), "default") == 0,
	      "default origin");

	CHECK(load_text(&config,
			"# comment\n"
			"pack:\n"
			"  level: 9\n"
			"  frame_size: 1M\n"
			"  threads: 4\n"
			"  long_distance: yes\n"
			"  dictionary: never\n"
			"mount: {cache_size: 128M, threads: 4, metadata_size: 3M}\n"
			"gc:\n"
			"  max_age: 2w\n"
			"  max_size: \"50G\"\n",
			&err) == SF_OK,
	      "a full file loads");
	if (err.code)
		printf("#   %s\n", err.message);
	CHECK(config.pack_level == 9, "file sets level");
	CHECK_EQ_U64(config.pack_frame_bytes, 1 << 20, "file sets frame size");
	CHECK(config.pack_threads == 4, "file sets threads");
	CHECK(config.pack_long_distance == 1, "file sets long_distance (yes)");
	CHECK(config.pack_dictionary == SF_CONFIG_DICTIONARY_NEVER, "file sets dictionary");
	CHECK_EQ_U64(config.mount_cache_bytes, 128ull << 20, "file sets cache size (flow mapping)");
	CHECK(config.mount_threads == 4, "file sets mount threads");
	CHECK_EQ_U64(config.mount_metadata_bytes, 3ull << 20, "file sets the metadata budget");
	CHECK_EQ_U64(config.gc_max_age_seconds, 14 * 86400, "file sets max_age");
	CHECK_EQ_U64(config.gc_max_bytes, 50ull << 30, "file sets max_size (quoted size)");
	CHECK(strcmp(sf_config_origin_text(&config, SF_CONFIG_PACK_LEVEL, origin, sizeof(origin)),
		     "cfg.yaml:3:10") == 0,
	      "file origin names file, line and column");
	CHECK(strcmp(sf_config_origin_text(&config, SF_CONFIG_MOUNT_THREADS, origin, sizeof(origin)),
		     "cfg.yaml:8:36") == 0,
	      "file origin in a flow mapping");

	CHECK(sf_config_set(&config, "pack.level", "12", "--level", &err) == SF_OK, "command line sets level");
	CHECK(config.pack_level == 12, "command line wins over the file");
	CHECK(strcmp(sf_config_origin_text(&config, SF_CONFIG_PACK_LEVEL, origin, sizeof(origin)),
		     "command line") == 0,
	      "command-line origin");
	CHECK(config.source[SF_CONFIG_PACK_FRAME_SIZE].origin == SF_CONFIG_FROM_FILE,
	      "other keys keep the file origin");
	CHECK(sf_config_set(&config, "gc.max_age", "off", "--max-age", &err) == SF_OK &&
		      config.gc_max_age_seconds == 0,
	      "command line turns a limit off");
	CHECK(sf_config_set(&config, "pack.threads", "auto", NULL, &err) == SF_OK && config.pack_threads == 0,
	      "threads auto");
	CHECK(sf_config_set(&config, "pack.level", "99", "--level", &err) == SF_ERR_INVALID &&
		      contains(err.message, "--level: '99' is out of range, expected an integer from -131072 to 22"),
	      "command-line range error names the option");
	CHECK(config.pack_level == 12, "a refused override changes nothing");
	CHECK(sf_config_set(&config, "gc.max_size", "5Q", "--max-size", &err) == SF_ERR_INVALID &&
		      contains(err.message, "--max-size: '5Q' has an unknown suffix"),
	      "command-line size suffix error");
	CHECK(sf_config_set(&config, "pack.nope", "1", NULL, &err) == SF_ERR_INVALID &&
		      contains(err.message, "unknown configuration key 'pack.nope'"),
	      "command-line unknown key");

	{
		char *printed = NULL;
		size_t printed_size = 0;
		FILE *out = open_memstream(&printed, &printed_size);
		sf_config reloaded;

		sf_config_print(&config, out);
		fclose(out);
		CHECK(contains(printed, "# configuration file: cfg.yaml"), "print names the file");
		CHECK(contains(printed, "  level: 12") && contains(printed, "# command line"),
		      "print shows value and command-line origin");
		CHECK(contains(printed, "  frame_size: 1M") && contains(printed, "# cfg.yaml:4:15"),
		      "print shows value and file origin");
		CHECK(contains(printed, "  max_age: off"), "print shows off");
		sf_config_init_defaults(&reloaded);
		CHECK(sf_config_load_mem(&reloaded, printed, printed_size, "printed", &err) == SF_OK,
		      "printed configuration loads back");
		CHECK(reloaded.pack_level == 12 && reloaded.pack_frame_bytes == (1u << 20) &&
			      reloaded.mount_cache_bytes == (128ull << 20) && reloaded.gc_max_age_seconds == 0 &&
			      reloaded.gc_max_bytes == (50ull << 30) && reloaded.pack_threads == 0,
		      "printed configuration has the same values");
		sf_config_release(&reloaded);
		free(printed);
	}
	sf_config_release(&config);
	CHECK(config.source[SF_CONFIG_PACK_FRAME_SIZE].origin == SF_CONFIG_FROM_DEFAULT &&
		      config.files == NULL,
	      "release drops file origins");

	{
		sf_pack_options options;

		sf_config_init_defaults(&config);
		CHECK(load_text(&config, "pack: {level: 7, frame_size: 64K, threads: 2, long_distance: on}\n",
				&err) == SF_OK,
		      "pack settings load");
		sf_pack_options_init(&options);
		sf_config_apply_pack(&config, &options);
		CHECK(options.level == 7 && options.frame_bytes == 64 * 1024 && options.threads == 2 &&
			      options.long_distance == 1,
		      "apply_pack copies level, frame size, threads, long distance");
		sf_config_release(&config);
	}
}

static void test_empty_documents(void)
{
	static const char *const texts[] = { "", "\n# only a comment\n", "---\n", "~\n", "pack:\n",
					     "pack: {}\nmount:\ngc: ~\n" };
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		sf_config config;
		sf_error err;
		char name[64];

		sf_config_init_defaults(&config);
		snprintf(name, sizeof(name), "empty document %zu loads and sets nothing", i);
		CHECK(load_text(&config, texts[i], &err) == SF_OK && config.pack_level == 3 &&
			      config.source[SF_CONFIG_PACK_LEVEL].origin == SF_CONFIG_FROM_DEFAULT,
		      name);
		sf_config_release(&config);
	}
}

static void test_errors(void)
{
	expect_error("unknown key", "pack:\n  levle: 3\n", SF_ERR_INVALID, "line 2, column 3",
		     "unknown key 'pack.levle', expected level, frame_size, threads, long_distance or dictionary");
	expect_error("unknown section", "packing:\n  level: 3\n", SF_ERR_INVALID, "line 1, column 1",
		     "unknown section 'packing', expected pack, mount or gc");
	expect_error("duplicate key", "pack:\n  level: 3\n  level: 4\n", SF_ERR_INVALID, "line 3, column 3",
		     "duplicate key 'pack.level' (first given on line 2)");
	expect_error("duplicate section", "pack: {}\npack: {}\n", SF_ERR_INVALID, "line 2, column 1",
		     "duplicate section 'pack'");
	expect_error("wrong type: string for integer", "pack:\n  level: fast\n", SF_ERR_INVALID,
		     "line 2, column 10", "pack.level: 'fast' is not an integer, expected an integer from -131072 to 22");
	expect_error("wrong type: quoted integer", "pack:\n  level: \"3\"\n", SF_ERR_INVALID, "line 2, column 10",
		     "'3' is a quoted string");
	expect_error("wrong type: mapping for integer", "mount:\n  threads: {a: 1}\n", SF_ERR_INVALID,
		     "line 2, column 12", "mount.threads: found a mapping, expected an integer from 1 to 1024");
	expect_error("wrong type: sequence for size", "mount:\n  cache_size: [1, 2]\n", SF_ERR_INVALID,
		     "line 2, column 15", "mount.cache_size: found a sequence");
	expect_error("wrong type: boolean", "pack:\n  long_distance: maybe\n", SF_ERR_INVALID, "line 2, column 18",
		     "'maybe' is not a boolean, expected true or false");
	expect_error("wrong type: dictionary mode", "pack:\n  dictionary: sometimes\n", SF_ERR_INVALID,
		     "line 2, column 15", "expected auto, always or never");
	expect_error("wrong type: null value", "pack:\n  level:\n  threads: 2\n", SF_ERR_INVALID, "line 2, column 9",
		     "pack.level: found no value");
	expect_error("wrong type: section is a scalar", "pack: 3\n", SF_ERR_INVALID, "line 1, column 7",
		     "pack: found '3', expected a mapping of keys (level, frame_size");
	expect_error("wrong type: root is a sequence", "- pack\n", SF_ERR_INVALID, "line 1, column 1",
		     "found a sequence, expected a mapping of sections (pack, mount or gc)");
	expect_error("wrong type: mapping as key", "pack:\n  ? {a: 1}\n  : 3\n", SF_ERR_INVALID, "line 2, column 5",
		     "where a key belongs");
	expect_error("out of range: level", "pack:\n  level: 23\n", SF_ERR_INVALID, "line 2, column 10",
		     "'23' is out of range, expected an integer from -131072 to 22");
	expect_error("out of range: frame size", "pack:\n  frame_size: 32M\n", SF_ERR_INVALID, "line 2, column 15",
		     "pack.frame_size: '32M' is out of range, expected a size from 4K to 16M");
	expect_error("out of range: threads", "pack:\n  threads: 0\n", SF_ERR_INVALID, "line 2, column 12",
		     "'0' is out of range, expected auto or an integer from 1 to 256");
	expect_error("out of range: huge integer", "mount:\n  threads: 99999999999999999999999\n", SF_ERR_INVALID,
		     "line 2, column 12", "is out of range");
	expect_error("out of range: max_age", "gc:\n  max_age: 5000d\n", SF_ERR_INVALID, "line 2, column 12",
		     "gc.max_age: '5000d' is out of range");
	expect_error("bad size suffix", "mount:\n  cache_size: 64X\n", SF_ERR_INVALID, "line 2, column 15",
		     "mount.cache_size: '64X' has an unknown suffix (a size takes K, M, G or T), expected a size from 1M to 1T");
	expect_error("bad duration suffix", "gc:\n  max_age: 3y\n", SF_ERR_INVALID, "line 2, column 12",
		     "gc.max_age: '3y' has an unknown suffix (a duration takes s, m, h, d or w)");
	expect_error("size overflow", "gc:\n  max_size: 99999999999999999999G\n", SF_ERR_INVALID, "line 2, column 13",
		     "is out of range");
	expect_error("alias", "pack:\n  level: &x 3\n  threads: *x\n", SF_ERR_INVALID, "line 3, column 12",
		     "found an alias (aliases are not supported)");
	expect_error("merge key", "base: &b {level: 3}\n", SF_ERR_INVALID, "line 1, column 1",
		     "unknown section 'base'");
	expect_error("malformed YAML: bad indentation", "pack:\n  level: 3\n frame_size: 1M\n", SF_ERR_FORMAT,
		     "line 3, column 2", "invalid YAML");
	expect_error("malformed YAML: unclosed flow", "pack: {level: 3\n", SF_ERR_FORMAT, "line 2, column 1",
		     "invalid YAML: did not find expected ',' or '}'");
	expect_error("malformed YAML: tab", "pack:\n\tlevel: 3\n", SF_ERR_FORMAT, "line 2, column 1",
		     "invalid YAML");
	expect_error("malformed YAML: unterminated quote", "pack:\n  dictionary: \"auto\n", SF_ERR_FORMAT,
		     "line 3, column 1", "invalid YAML: found unexpected end of stream");
	expect_error("two documents", "pack: {}\n---\nmount: {}\n", SF_ERR_FORMAT, "line 2, column 1",
		     "found a second YAML document, expected one");
}

static void test_limits(void)
{
	sf_config config;
	sf_error err;
	char *big = malloc(SF_CONFIG_MAX_BYTES + 2);
	char *deep = malloc(200001);

	sf_config_init_defaults(&config);
	memset(big, '#', SF_CONFIG_MAX_BYTES + 1);
	big[SF_CONFIG_MAX_BYTES + 1] = '\0';
	CHECK(sf_config_load_mem(&config, big, SF_CONFIG_MAX_BYTES + 1, "big.yaml", &err) == SF_ERR_LIMIT &&
		      contains(err.message, "'big.yaml'"),
	      "a document over the size limit is refused");
	memset(deep, '[', 200000);
	deep[200000] = '\0';
	CHECK(sf_config_load_mem(&config, deep, 200000, "deep.yaml", &err) == SF_ERR_INVALID &&
		      contains(err.message, "line 1, column 1"),
	      "deep nesting stops at the first collection");
	memcpy(deep, "pack: {level: ", 14);
	CHECK(sf_config_load_mem(&config, deep, 200000, "deep.yaml", &err) == SF_ERR_INVALID &&
		      contains(err.message, "pack.level: found a sequence"),
	      "deep nesting in a value stops at once");
	CHECK(sf_config_load_mem(&config, "pack: {level: 1}\0x", 18, "nul.yaml", &err) == SF_ERR_FORMAT,
	      "a NUL byte is refused");
	sf_config_release(&config);
	free(big);
	free(deep);
}

static void write_file(const char *path, const char *text)
{
	FILE *file = fopen(path, "w");

	if (file) {
		fputs(text, file);
		fclose(file);
	}
}

static void test_files(void)
{
	char dir[] = "/tmp/test_config.XXXXXX";
	char path[512], xdg[512];
	sf_config config;
	sf_error err;

	if (!mkdtemp(dir)) {
		CHECK(0, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/explicit.yaml", dir);
	write_file(path, "pack:\n  level: 5\n");
	snprintf(xdg, sizeof(xdg), "%s/xdg", dir);
	mkdir(xdg, 0755);
	{
		char sub[600];

		snprintf(sub, sizeof(sub), "%s/stepfs", xdg);
		mkdir(sub, 0755);
		snprintf(sub, sizeof(sub), "%s/stepfs/config.yaml", xdg);
		write_file(sub, "pack:\n  level: 6\nmount:\n  threads: 3\n");
	}
	setenv("XDG_CONFIG_HOME", xdg, 1);

	sf_config_init_defaults(&config);
	CHECK(sf_config_find_and_load(&config, path, &err) == SF_OK && config.pack_level == 5 &&
		      config.mount_threads == 10,
	      "--config FILE is the only file read");
	CHECK(config.file_count == 1 && strcmp(config.files[0], path) == 0, "the explicit file is recorded");
	sf_config_release(&config);

	sf_config_init_defaults(&config);
	CHECK(sf_config_find_and_load(&config, NULL, &err) == SF_OK && config.pack_level == 6 &&
		      config.mount_threads == 3,
	      "$XDG_CONFIG_HOME/stepfs/config.yaml is found");
	sf_config_release(&config);

	sf_config_init_defaults(&config);
	snprintf(path, sizeof(path), "%s/missing.yaml", dir);
	CHECK(sf_config_find_and_load(&config, path, &err) == SF_ERR_NOTFOUND && contains(err.message, "missing.yaml"),
	      "a missing --config FILE is an error");
	CHECK(sf_config_load_file(&config, dir, &err) == SF_ERR_INVALID && contains(err.message, "not a regular file"),
	      "a folder is not a configuration file");
	sf_config_release(&config);

	snprintf(path, sizeof(path), "%s/bad.yaml", dir);
	write_file(path, "mount:\n  cache_size: 1K\n");
	sf_config_init_defaults(&config);
	CHECK(sf_config_load_file(&config, path, &err) == SF_ERR_INVALID && contains(err.message, path) &&
		      contains(err.message, "line 2, column 15") && contains(err.message, "'1K' is out of range"),
	      "an error in a file names its path, line and column");
	sf_config_release(&config);

	snprintf(path, sizeof(path), "%s/empty-xdg", dir);
	mkdir(path, 0755);
	setenv("XDG_CONFIG_HOME", path, 1);
	sf_config_init_defaults(&config);
	CHECK(sf_config_find_and_load(&config, NULL, &err) == SF_OK, "no user file: falls back without error");
	if (access(SF_CONFIG_SYSTEM_PATH, F_OK) != 0)
		CHECK(config.file_count == 0 && config.source[SF_CONFIG_PACK_LEVEL].origin == SF_CONFIG_FROM_DEFAULT,
		      "no file anywhere: built-in defaults");
	sf_config_release(&config);

	{
		char command[700];

		snprintf(command, sizeof(command), "rm -rf '%s'", dir);
		if (system(command) != 0)
			printf("# could not remove %s\n", dir);
	}
}

int main(void)
{
	test_sizes_and_durations();
	test_defaults_and_precedence();
	test_empty_documents();
	test_errors();
	test_limits();
	test_files();
	return check_done();
}
