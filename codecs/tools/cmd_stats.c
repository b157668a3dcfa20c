/*
 * cmd_stats.c - `stepstore stats MNT [--json]`: the counters of a stepfs
 * mount (MNT/.stepfs/stats.json) in human form.
 *
 * MNT may be the mount point or any path inside the mount: the command
 * looks for .stepfs/stats.json there and in each parent folder on the same
 * file system.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "sf_util.h"

enum {
	STATS_EXIT_OK = 0,
	STATS_EXIT_USAGE = 2,
	STATS_EXIT_BAD_INPUT = 3,
	STATS_EXIT_IO = 4
};

#define STATS_FILE ".stepfs/stats.json"
/* stats.json is a few hundred bytes; anything far larger is not ours */
#define STATS_MAX_BYTES (1u << 20)

/* How each known counter is shown, in this order; others follow as they are. */
typedef enum { SHOW_COUNT, SHOW_BYTES, SHOW_RATE } show_kind;

static const struct {
	const char *key;
	const char *label;
	show_kind kind;
} known[] = {
	{ "frames_decompressed", "frames decompressed", SHOW_COUNT },
	{ "cache_hits", "cache hits", SHOW_COUNT },
	{ "cache_misses", "cache misses", SHOW_COUNT },
	{ "cache_hit_rate", "cache hit rate", SHOW_RATE },
	{ "cache_shared_fills", "waits for a frame being filled", SHOW_COUNT },
	{ "cache_buffers_reused", "cache buffers reused", SHOW_COUNT },
	{ "cache_evictions", "cache evictions", SHOW_COUNT },
	{ "cache_bytes", "cache in use", SHOW_BYTES },
	{ "cache_budget_bytes", "cache size", SHOW_BYTES },
	{ "bytes_served", "bytes served", SHOW_BYTES },
	{ "bytes_decompressed", "bytes decompressed", SHOW_BYTES },
	{ "reads", "read requests", SHOW_COUNT },
	{ "read_errors", "read errors", SHOW_COUNT },
	{ "open_files", "open files", SHOW_COUNT },
	{ "indexes_loaded", "indexes loaded", SHOW_COUNT },
	{ "index_failures", "indexes that failed to load", SHOW_COUNT },
	{ "indexes_dropped", "indexes dropped (metadata budget)", SHOW_COUNT },
	{ "indexes_resident", "indexes loaded now", SHOW_COUNT },
	{ "indexes_scanned", "indexes read by the streaming reader", SHOW_COUNT },
	{ "metadata_bytes", "metadata in use", SHOW_BYTES },
	{ "metadata_budget_bytes", "metadata size", SHOW_BYTES },
};

/* 1234567 -> "1,234,567" */
static void group_digits(uint64_t value, char *out, size_t size)
{
	char digits[32];
	size_t len, i, used = 0;

	snprintf(digits, sizeof(digits), "%" PRIu64, value);
	len = strlen(digits);
	for (i = 0; i < len && used + 2 < size; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			out[used++] = ',';
		out[used++] = digits[i];
	}
	out[used] = '\0';
}

static void human_bytes(uint64_t value, char *out, size_t size)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)value;
	unsigned u = 0;

	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(out, size, "%" PRIu64 " B", value);
	else
		snprintf(out, size, "%.1f %s", v, units[u]);
}

/* A counter as an unsigned integer; 0 when absent or not one. */
static int counter(json_t *doc, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(doc, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return 0;
	*out = (uint64_t)json_integer_value(v);
	return 1;
}

static void print_known(json_t *doc, size_t i)
{
	json_t *v = json_object_get(doc, known[i].key);
	char a[64], b[64];
	uint64_t n;

	printf("  %-32s ", known[i].label);
	if (!v) {
		printf("?\n");
		return;
	}
	if (known[i].kind == SHOW_RATE) {
		if (json_is_number(v))
			printf("%.1f%%\n", json_number_value(v) * 100.0);
		else
			printf("?\n");
		return;
	}
	if (!counter(doc, known[i].key, &n)) {
		printf("?\n");
		return;
	}
	group_digits(n, a, sizeof(a));
	if (known[i].kind == SHOW_BYTES) {
		human_bytes(n, b, sizeof(b));
		printf("%s (%s bytes)\n", b, a);
	} else {
		printf("%s\n", a);
	}
}

static int is_known(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(key, known[i].key) == 0)
			return 1;
	return 0;
}

static void print_human(const char *where, json_t *doc)
{
	const char *key;
	json_t *value;
	size_t i;

	printf("stepfs mount at %s\n", where);
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		print_known(doc, i);
	json_object_foreach(doc, key, value) {
		char *text;

		if (is_known(key))
			continue;
		text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
		printf("  %-32s %s\n", key, text ? text : "?");
		free(text);
	}
}

/*
 * The folder holding .stepfs/stats.json: path itself or its nearest parent
 * on the same file system that has one. Returns a malloc'd path, or NULL
 * with errno (ENOENT when there is none).
 */
static char *find_mount_root(const char *path)
{
	char *dir = realpath(path, NULL);
	struct stat top, st;

	if (!dir)
		return NULL;
	if (stat(dir, &top) != 0) {
		int saved = errno;

		free(dir);
		errno = saved;
		return NULL;
	}
	if (!S_ISDIR(top.st_mode)) {
		free(dir);
		errno = ENOTDIR;
		return NULL;
	}
	for (;;) {
		char *candidate = sf_path_join(dir, STATS_FILE);
		char *slash;
		int found;

		if (!candidate) {
			free(dir);
			errno = ENOMEM;
			return NULL;
		}
		found = stat(candidate, &st) == 0 && S_ISREG(st.st_mode);
		free(candidate);
		if (found)
			return dir;
		slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			break;
		*slash = '\0';
		if (stat(dir, &st) != 0 || st.st_dev != top.st_dev)
			break;
	}
	free(dir);
	errno = ENOENT;
	return NULL;
}

/* The whole of a small file; NULL with errno on failure. */
static char *read_small_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *text;
	size_t got;

	if (!f)
		return NULL;
	text = malloc(STATS_MAX_BYTES + 1);
	if (!text) {
		fclose(f);
		errno = ENOMEM;
		return NULL;
	}
	got = fread(text, 1, STATS_MAX_BYTES + 1, f);
	if (ferror(f)) {
		int saved = errno ? errno : EIO;

		fclose(f);
		free(text);
		errno = saved;
		return NULL;
	}
	fclose(f);
	if (got > STATS_MAX_BYTES) {
		free(text);
		errno = EFBIG;
		return NULL;
	}
	text[got] = '\0';
	*len = got;
	return text;
}

int stepstore_cmd_stats(int argc, char **argv)
{
	const char *path = NULL;
	char *root = NULL, *file = NULL, *text = NULL;
	json_t *doc = NULL;
	json_error_t jerr;
	int as_json = 0, rc = STATS_EXIT_OK, i;
	size_t len = 0;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			as_json = 1;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: stepstore stats MNT [--json]\n"
			       "  the counters of the stepfs mount holding MNT (from MNT/%s):\n"
			       "  frames decompressed, cache hits, misses and hit rate, bytes served...\n"
			       "  --json  print the counters as the mount writes them (one JSON object)\n",
			       STATS_FILE);
			return STATS_EXIT_OK;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "stepstore: stats: unknown option '%s' (usage: stepstore stats MNT [--json])\n",
				argv[i]);
			return STATS_EXIT_USAGE;
		} else if (!path) {
			path = argv[i];
		} else {
			fprintf(stderr, "stepstore: stats: expected one MNT, got '%s' and '%s'\n", path, argv[i]);
			return STATS_EXIT_USAGE;
		}
	}
	if (!path) {
		fprintf(stderr, "stepstore: stats: expected MNT (usage: stepstore stats MNT [--json])\n");
		return STATS_EXIT_USAGE;
	}
	root = find_mount_root(path);
	if (!root) {
		if (errno == ENOENT)
			fprintf(stderr, "stepstore: '%s' is not in a stepfs mount (no %s in it or above it)\n",
				path, STATS_FILE);
		else
			fprintf(stderr, "stepstore: '%s': %s\n", path, strerror(errno));
		return STATS_EXIT_IO;
	}
	file = sf_path_join(root, STATS_FILE);
	if (!file) {
		fprintf(stderr, "stepstore: out of memory\n");
		rc = STATS_EXIT_IO;
		goto out;
	}
	text = read_small_file(file, &len);
	if (!text) {
		fprintf(stderr, "stepstore: '%s': cannot read: %s\n", file, strerror(errno));
		rc = STATS_EXIT_IO;
		goto out;
	}
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc || !json_is_object(doc)) {
		if (doc)
			fprintf(stderr, "stepstore: '%s': byte 0: a JSON object expected\n", file);
		else
			fprintf(stderr, "stepstore: '%s': line %d, column %d (byte %d): %s\n", file, jerr.line,
				jerr.column, jerr.position, jerr.text);
		rc = STATS_EXIT_BAD_INPUT;
		goto out;
	}
	if (as_json) {
		fwrite(text, 1, len, stdout);
		if (len == 0 || text[len - 1] != '\n')
			putchar('\n');
	} else {
		print_human(root, doc);
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "stepstore: cannot write the output: %s\n", strerror(errno));
		rc = STATS_EXIT_IO;
	}
out:
	json_decref(doc);
	free(text);
	free(file);
	free(root);
	return rc;
}
