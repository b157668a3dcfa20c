/*
 * stepstore - pack, unpack, verify and inspect stepfs stores.
 * Exit codes are listed in usage() and in docs/CLI.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "sf_format.h"
#include "sf_pack.h"
#include "sf_seekable.h"
#include "sf_store.h"
#include "sf_unpack.h"

enum {
	EXIT_OK = 0,
	EXIT_DAMAGED = 1,
	EXIT_USAGE = 2,
	EXIT_BAD_INPUT = 3,
	EXIT_IO = 4,
	EXIT_EXISTS = 5,
	EXIT_INTERRUPTED = 130
};

static volatile int interrupted;

/* Set by the handler, read by both packing threads: atomic (a lock-free
   store is safe in a signal handler). */
static void on_signal(int signo)
{
	(void)signo;
	__atomic_store_n(&interrupted, 1, __ATOMIC_RELAXED);
}

static void usage(FILE *out)
{
	fputs("usage: stepstore COMMAND [OPTIONS] ARGS\n"
	      "\n"
	      "commands:\n"
	      "  pack [OPTIONS] SRC STORE   pack a cache folder (or any folder) into a new store\n"
	      "      --level N              zstd level (default 3; negative levels are faster)\n"
	      "      --frame-size SIZE      content bytes per frame, e.g. 256K (default), 1M\n"
	      "      --threads N            compression threads (default: all cores)\n"
	      "      --long                 zstd long-distance matching\n"
	      "      --dictionary MODE      auto (default), always, never: a trained zstd\n"
	      "                             dictionary per shard (pays with small frames)\n"
	      "      --layout NAME          auto (default), current, per-batch, per-step,\n"
	      "                             monolithic, split, plain\n"
	      "      --max-depth N          JSON nesting limit (default 1024)\n"
	      "      --quiet                no progress bar\n"
	      "      --config FILE          read settings from FILE (see docs/CONFIG.md)\n"
	      "      --remove-source        delete SRC once the new store has verified\n"
	      "  unpack STORE DEST          recreate the packed folder byte for byte\n"
	      "  verify STORE               check every checksum and reference\n"
	      "  info [--json] STORE        what the store holds: steps, batches, rows, sizes\n"
	      "  gc ROOT [--max-age DURATION] [--max-size SIZE] [--dry-run] [--config FILE]\n"
	      "                             remove expired stores and caches under ROOT\n"
	      "  upgrade STORE [--dry-run]  rewrite a format 1.0 store as 2.0, atomically\n"
	      "  config [--config FILE]     print the effective configuration and its sources\n"
	      "  stats MNT [--json]         the counters of a stepfs mount: cache hit rate,\n"
	      "                             frames decompressed, bytes served...\n"
	      "  ls STORE [PATH]            list a folder of the store's tree without mounting\n"
	      "  cat STORE PATH             print a file of the store's tree without mounting\n"
	      "  --help, --version\n"
	      "\n"
	      "exit codes: 0 success, 1 the store is damaged, 2 usage error,\n"
	      "  3 invalid or unsupported input, 4 I/O error or missing file,\n"
	      "  5 the target already exists, 130 interrupted\n",
	      out);
}

static int exit_code_for(sf_err code)
{
	switch (code) {
	case SF_OK:
		return EXIT_OK;
	case SF_ERR_CORRUPT:
		return EXIT_DAMAGED;
	case SF_ERR_INVALID:
		return EXIT_USAGE;
	case SF_ERR_FORMAT:
	case SF_ERR_LIMIT:
	case SF_ERR_UNSUPPORTED:
	case SF_ERR_VERSION:
		return EXIT_BAD_INPUT;
	case SF_ERR_EXISTS:
		return EXIT_EXISTS;
	default:
		return EXIT_IO;
	}
}

static int fail(const sf_error *err)
{
	fprintf(stderr, "stepstore: %s\n", err->message);
	return exit_code_for(err->code);
}

static int parse_size(const char *text, uint64_t *out)
{
	char *end;
	unsigned long long value;

	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno || end == text)
		return 0;
	switch (*end) {
	case 'k': case 'K': value <<= 10; end++; break;
	case 'm': case 'M': value <<= 20; end++; break;
	case 'g': case 'G': value <<= 30; end++; break;
	default: break;
	}
	if (*end == 'i' && end[-1] != *text)
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end)
		return 0;
	*out = value;
	return 1;
}

static int parse_int(const char *text, long min, long max, int *out)
{
	char *end;
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno || end == text || *end || value < min || value > max)
		return 0;
	*out = (int)value;
	return 1;
}

static void print_problem(void *context, const char *message);

static int remove_tree_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *dir;
	struct dirent *d;
	int rc = 0;

	if (fd < 0)
		return unlinkat(dirfd, name, 0);
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -1;
	}
	while ((d = readdir(dir)) != NULL) {
		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (remove_tree_at(fd, d->d_name) != 0)
			rc = -1;
	}
	closedir(dir);
	if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) != 0)
		rc = -1;
	return rc;
}

/* --remove-source: only after the new store verified in full. */
static int remove_verified_source(const char *src, const char *store_path)
{
	sf_store *store;
	sf_error err = { 0 };
	uint64_t problems;

	if (sf_store_open(&store, store_path, NULL, &err) != SF_OK)
		return fail(&err);
	problems = sf_store_verify(store, print_problem, NULL);
	sf_store_free(store);
	if (problems) {
		fprintf(stderr, "stepstore: '%s' did not verify; '%s' was kept\n", store_path, src);
		return EXIT_DAMAGED;
	}
	if (remove_tree_at(AT_FDCWD, src) != 0) {
		fprintf(stderr, "stepstore: '%s': could not remove all of the source: %s\n", src, strerror(errno));
		return EXIT_IO;
	}
	return EXIT_OK;
}

static int cmd_pack(int argc, char **argv)
{
	sf_pack_options options;
	sf_pack_summary summary;
	sf_error err = { 0 };
	const char *args[2];
	int nargs = 0, quiet = 0, remove_source = 0, i;
	struct sigaction sa;

	{
		sf_config config;
		int rc = stepstore_load_config(argc, argv, &config); /* prints its own error */

		if (rc != EXIT_OK)
			return rc;
		sf_pack_options_init(&options);
		sf_config_apply_pack(&config, &options);
		sf_config_release(&config);
	}
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		uint64_t size;

		if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
			quiet = 1;
		} else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
			i++; /* read by stepstore_load_config */
		} else if (strcmp(a, "--remove-source") == 0) {
			remove_source = 1;
		} else if (strcmp(a, "--long") == 0) {
			options.long_distance = 1;
		} else if (strcmp(a, "--dictionary") == 0 && i + 1 < argc) {
			const char *mode = argv[++i];

			if (strcmp(mode, "auto") == 0)
				options.dictionary = SF_SEEK_DICT_AUTO;
			else if (strcmp(mode, "always") == 0)
				options.dictionary = SF_SEEK_DICT_ALWAYS;
			else if (strcmp(mode, "never") == 0)
				options.dictionary = SF_SEEK_DICT_NEVER;
			else {
				fprintf(stderr, "stepstore: --dictionary: '%s' is not auto, always or never\n", mode);
				return EXIT_USAGE;
			}
		} else if (strcmp(a, "--level") == 0 && i + 1 < argc) {
			if (!parse_int(argv[++i], -131072, 22, &options.level)) {
				fprintf(stderr, "stepstore: --level: '%s' is not a zstd level\n", argv[i]);
				return EXIT_USAGE;
			}
		} else if (strcmp(a, "--frame-size") == 0 && i + 1 < argc) {
			if (!parse_size(argv[++i], &size) || size < 4096 || size > (16u << 20)) {
				fprintf(stderr, "stepstore: --frame-size: '%s' is not a size from 4K to 16M\n", argv[i]);
				return EXIT_USAGE;
			}
			options.frame_bytes = (size_t)size;
		} else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
			if (!parse_int(argv[++i], 1, 256, &options.threads)) {
				fprintf(stderr, "stepstore: --threads: '%s' is not a number from 1 to 256\n", argv[i]);
				return EXIT_USAGE;
			}
		} else if (strcmp(a, "--max-depth") == 0 && i + 1 < argc) {
			if (!parse_int(argv[++i], 1, 1000000, &options.max_depth)) {
				fprintf(stderr, "stepstore: --max-depth: '%s' is not a positive number\n", argv[i]);
				return EXIT_USAGE;
			}
		} else if (strcmp(a, "--layout") == 0 && i + 1 < argc) {
			options.layout = argv[++i];
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "stepstore: pack: unknown option '%s'\n", a);
			return EXIT_USAGE;
		} else if (nargs < 2) {
			args[nargs++] = a;
		} else {
			fprintf(stderr, "stepstore: pack: too many arguments\n");
			return EXIT_USAGE;
		}
	}
	if (nargs != 2) {
		fprintf(stderr, "stepstore: pack: expected SRC and STORE\n");
		return EXIT_USAGE;
	}
	options.progress = !quiet && isatty(STDERR_FILENO);
	options.cancel = &interrupted;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (sf_pack(args[0], args[1], &options, &summary, &err) != SF_OK) {
		if (__atomic_load_n(&interrupted, __ATOMIC_RELAXED)) {
			fprintf(stderr, "stepstore: pack interrupted; no store was written\n");
			return EXIT_INTERRUPTED;
		}
		return fail(&err);
	}
	if (remove_source) {
		int rc = remove_verified_source(args[0], args[1]);

		if (rc != EXIT_OK)
			return rc;
	}
	if (!quiet)
		printf("packed '%s' (%s layout): %" PRIu64 " files, %" PRIu64 " steps, %" PRIu64 " batches, %" PRIu64
		       " rows; %.1f MiB -> %.1f MiB\n",
		       args[0], summary.layout, summary.files, summary.steps, summary.batches, summary.rows,
		       (double)summary.source_bytes / 1048576.0, (double)summary.store_bytes / 1048576.0);
	return EXIT_OK;
}

static int open_store(const char *path, sf_store **store)
{
	sf_error err = { 0 };

	if (sf_store_open(store, path, NULL, &err) != SF_OK)
		return fail(&err);
	return EXIT_OK;
}

static int cmd_unpack(int argc, char **argv)
{
	sf_store *store;
	sf_error err = { 0 };
	int rc;

	if (argc != 2) {
		fprintf(stderr, "stepstore: unpack: expected STORE and DEST\n");
		return EXIT_USAGE;
	}
	rc = open_store(argv[0], &store);
	if (rc)
		return rc;
	if (sf_unpack(store, argv[1], &err) != SF_OK)
		rc = fail(&err);
	sf_store_free(store);
	return rc;
}

static void print_problem(void *context, const char *message)
{
	(void)context;
	fprintf(stderr, "stepstore: %s\n", message);
}

static int cmd_verify(int argc, char **argv)
{
	sf_store *store;
	uint64_t problems;
	int rc;

	if (argc != 1) {
		fprintf(stderr, "stepstore: verify: expected STORE\n");
		return EXIT_USAGE;
	}
	rc = open_store(argv[0], &store);
	if (rc)
		return rc;
	problems = sf_store_verify(store, print_problem, NULL);
	if (problems) {
		fprintf(stderr, "stepstore: '%s': %" PRIu64 " problem%s found\n", argv[0], problems,
			problems == 1 ? "" : "s");
		rc = EXIT_DAMAGED;
	} else {
		printf("'%s': ok (%u shards, %u indexes checked)\n", argv[0], sf_store_shard_count(store),
		       sf_store_index_count(store));
	}
	sf_store_free(store);
	return rc;
}

static const char *base_name_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static double mib(json_int_t bytes)
{
	return (double)bytes / 1048576.0;
}

static json_int_t jint(json_t *object, const char *key)
{
	return json_integer_value(json_object_get(object, key));
}

static const char *jstr(json_t *object, const char *key)
{
	const char *s = json_string_value(json_object_get(object, key));

	return s ? s : "-";
}

/* One line per shard: sizes and whether its frames use a dictionary,
   with the figures pack measured when it decided. */
static void print_shards(json_t *shards)
{
	json_t *shard;
	size_t i;

	printf("\n  %-18s %-6s %12s %12s %8s  %s\n", "shard", "kind", "content MiB", "stored MiB",
	       "frames", "dictionary");
	json_array_foreach(shards, i, shard) {
		json_t *dict = json_object_get(shard, "dictionary");
		char what[256];

		if (!dict)
			snprintf(what, sizeof(what), "-");
		else if (json_is_true(json_object_get(dict, "used")))
			snprintf(what, sizeof(what), "yes: %.1f KiB, net saving about %.1f KiB (%s)",
				 (double)jint(dict, "bytes") / 1024.0,
				 (double)jint(dict, "estimated_saved_bytes") / 1024.0, jstr(dict, "file"));
		else if (jint(dict, "bytes") > 0)
			snprintf(what, sizeof(what), "no: %s (%.1f KiB trained; over the whole shard it would have saved about %.1f KiB)",
				 jstr(dict, "reason"), (double)jint(dict, "bytes") / 1024.0,
				 (double)jint(dict, "estimated_saved_bytes") / 1024.0);
		else
			snprintf(what, sizeof(what), "no: %s", jstr(dict, "reason"));
		printf("  %-18s %-6s %12.2f %12.2f %8" JSON_INTEGER_FORMAT "  %s\n", jstr(shard, "file"),
		       jstr(shard, "kind"), mib(jint(shard, "content_bytes")), mib(jint(shard, "compressed_bytes")),
		       jint(shard, "frames"), what);
	}
}

static int cmd_info(int argc, char **argv)
{
	sf_store *store;
	json_t *doc, *out, *executions, *x, *step, *compression, *shard_list;
	const char *path = NULL;
	int as_json = 0, rc, i;
	uint32_t s;
	json_int_t stored = 0, content = 0;
	size_t xi, si;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			as_json = 1;
		else if (!path)
			path = argv[i];
		else {
			fprintf(stderr, "stepstore: info: expected one STORE\n");
			return EXIT_USAGE;
		}
	}
	if (!path) {
		fprintf(stderr, "stepstore: info: expected STORE\n");
		return EXIT_USAGE;
	}
	rc = open_store(path, &store);
	if (rc)
		return rc;
	doc = sf_store_document(store);
	for (s = 0; s < sf_store_shard_count(store); s++) {
		json_t *dict = json_object_get(json_array_get(json_object_get(doc, "shards"), s), "dictionary");
		sf_shard_info shard;

		sf_store_shard_info(store, s, &shard);
		stored += (json_int_t)shard.compressed_bytes;
		if (json_is_true(json_object_get(dict, "used")))
			stored += jint(dict, "bytes"); /* a dictionary is part of what its shard costs */
		content += (json_int_t)shard.content_bytes;
	}
	executions = json_object_get(doc, "executions");
	shard_list = json_object_get(doc, "shards");
	if (as_json) {
		out = json_pack("{s:s,s:O,s:O,s:O,s:O,s:O,s:{s:I,s:I,s:i},s:O,s:O}", "store", path,
				"format_version", json_object_get(doc, "format_version"),
				"writer", json_object_get(doc, "writer"),
				"layout", json_object_get(doc, "layout"),
				"compression", json_object_get(doc, "compression"),
				"source", json_object_get(doc, "source"),
				"stored", "content_bytes", content, "compressed_bytes", stored,
				"shards", (int)sf_store_shard_count(store),
				"executions", executions ? executions : json_array(),
				"shards", shard_list ? shard_list : json_array());
		if (out) {
			json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			fputc('\n', stdout);
			json_decref(out);
		}
		sf_store_free(store);
		return EXIT_OK;
	}
	compression = json_object_get(doc, "compression");
	printf("store:        %s\n", path);
	printf("format:       %" JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT ", written by %s on %s\n",
	       json_integer_value(json_array_get(json_object_get(doc, "format_version"), 0)),
	       json_integer_value(json_array_get(json_object_get(doc, "format_version"), 1)),
	       jstr(doc, "writer"), jstr(doc, "created"));
	printf("layout:       %s\n", jstr(doc, "layout"));
	printf("compression:  %s level %" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT " KiB frames%s%s%s\n",
	       jstr(compression, "codec"), jint(compression, "level"), jint(compression, "frame_bytes") / 1024,
	       json_is_true(json_object_get(compression, "long_distance")) ? ", long-distance matching" : "",
	       json_object_get(compression, "dictionary") ? ", dictionaries " : "",
	       json_object_get(compression, "dictionary") ? jstr(compression, "dictionary") : "");
	{
		json_t *src = json_object_get(doc, "source");

		printf("source:       %" JSON_INTEGER_FORMAT " files, %" JSON_INTEGER_FORMAT " folders, %"
		       JSON_INTEGER_FORMAT " symlinks, %.2f MiB\n",
		       jint(src, "files"), jint(src, "dirs"), jint(src, "symlinks"), mib(jint(src, "bytes")));
		printf("stored:       %.2f MiB in %u shards (%.2f MiB of content; %.1f%% of the source)\n",
		       mib(stored), sf_store_shard_count(store), mib(content),
		       jint(src, "bytes") ? 100.0 * (double)stored / (double)jint(src, "bytes") : 0.0);
	}
	print_shards(shard_list);
	json_array_foreach(executions, xi, x) {
		json_t *steps = json_object_get(x, "steps");

		printf("\nexecution:    %s / %s / %s%s%s\n", jstr(x, "pipeline"), jstr(x, "signature"),
		       jstr(x, "execution"), *jstr(x, "path") ? "  (mounted at " : "",
		       *jstr(x, "path") ? jstr(x, "path") : "");
		if (*jstr(x, "path"))
			printf(")\n");
		printf("  %-8s %-24s %-12s %8s %10s %12s %12s\n", "view", "step", "signature", "batches", "rows",
		       "batch MiB", "stored MiB");
		json_array_foreach(steps, si, step) {
			json_t *bytes = json_object_get(step, "bytes");
			char sig[13];

			snprintf(sig, sizeof(sig), "%s", jstr(step, "signature"));
			printf("  %-8s %-24s %-12s %8" JSON_INTEGER_FORMAT " %10" JSON_INTEGER_FORMAT " %12.2f %12.2f\n",
			       base_name_of(jstr(step, "path")), jstr(step, "name"), sig, jint(step, "batches"),
			       jint(step, "rows"), mib(jint(bytes, "batch_files")), mib(jint(bytes, "stored")));
		}
	}
	sf_store_free(store);
	return EXIT_OK;
}

static int cmd_ls(int argc, char **argv)
{
	sf_store *store;
	sf_error err = { 0 };
	const sf_node *node;
	int rc;
	uint32_t i;

	if (argc < 1 || argc > 2) {
		fprintf(stderr, "stepstore: ls: expected STORE [PATH]\n");
		return EXIT_USAGE;
	}
	rc = open_store(argv[0], &store);
	if (rc)
		return rc;
	if (sf_store_lookup(store, argc == 2 ? argv[1] : "", &node, &err) != SF_OK ||
	    (node->type == SF_NODE_DIR && sf_store_load_dir(store, node, &err) != SF_OK)) {
		rc = fail(&err);
	} else if (node->type != SF_NODE_DIR) {
		printf("%12" PRIu64 " %s\n", node->size, node->name);
	} else {
		for (i = 0; i < node->child_count; i++) {
			const sf_node *c = node->children[i];

			printf("%c%04o %12" PRIu64 " %s%s%s\n",
			       c->type == SF_NODE_DIR ? 'd' : c->type == SF_NODE_SYMLINK ? 'l' : '-', c->mode,
			       c->size, c->name, c->type == SF_NODE_SYMLINK ? " -> " : "",
			       c->type == SF_NODE_SYMLINK ? c->target : "");
		}
	}
	sf_store_free(store);
	return rc;
}

static int cmd_cat(int argc, char **argv)
{
	sf_store *store;
	sf_error err = { 0 };
	const sf_node *node;
	static unsigned char buffer[1 << 20];
	uint64_t offset = 0;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "stepstore: cat: expected STORE and PATH\n");
		return EXIT_USAGE;
	}
	rc = open_store(argv[0], &store);
	if (rc)
		return rc;
	if (sf_store_lookup(store, argv[1], &node, &err) != SF_OK) {
		rc = fail(&err);
	} else if (node->type != SF_NODE_FILE) {
		fprintf(stderr, "stepstore: '%s': not a file\n", argv[1]);
		rc = EXIT_USAGE;
	} else {
		while (offset < node->size) {
			size_t got = 0;

			if (sf_store_read_sequential(store, node, offset, sizeof(buffer), buffer, &got, &err) != SF_OK) {
				rc = fail(&err);
				break;
			}
			if (fwrite(buffer, 1, got, stdout) != got) {
				fprintf(stderr, "stepstore: write to standard output failed\n");
				rc = EXIT_IO;
				break;
			}
			offset += got;
		}
	}
	sf_store_free(store);
	return rc;
}

int main(int argc, char **argv)
{
	const char *command;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	command = argv[1];
	if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 || strcmp(command, "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(command, "--version") == 0) {
		printf("stepstore %s (store format %d.%d)\n", SF_VERSION, SF_FORMAT_MAJOR, SF_FORMAT_MINOR);
		return EXIT_OK;
	}
	if (strcmp(command, "pack") == 0)
		return cmd_pack(argc - 2, argv + 2);
	if (strcmp(command, "unpack") == 0)
		return cmd_unpack(argc - 2, argv + 2);
	if (strcmp(command, "verify") == 0)
		return cmd_verify(argc - 2, argv + 2);
	if (strcmp(command, "info") == 0)
		return cmd_info(argc - 2, argv + 2);
	if (strcmp(command, "gc") == 0)
		return stepstore_cmd_gc(argc - 2, argv + 2);
	if (strcmp(command, "upgrade") == 0)
		return stepstore_cmd_upgrade(argc - 2, argv + 2);
	if (strcmp(command, "stats") == 0)
		return stepstore_cmd_stats(argc - 2, argv + 2);
	if (strcmp(command, "config") == 0)
		return stepstore_cmd_config(argc - 2, argv + 2);
	if (strcmp(command, "ls") == 0)
		return cmd_ls(argc - 2, argv + 2);
	if (strcmp(command, "cat") == 0)
		return cmd_cat(argc - 2, argv + 2);
	fprintf(stderr, "stepstore: unknown command '%s' (see stepstore --help)\n", command);
	return EXIT_USAGE;
}
