/*
 * cmd_extra.c - `stepstore gc` and `stepstore config`, and the loading of
 * the configuration shared by every command that reads it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "sf_config.h"
#include "sf_gc.h"

enum {
	EXTRA_EXIT_OK = 0,
	EXTRA_EXIT_USAGE = 2,
	EXTRA_EXIT_BAD_INPUT = 3,
	EXTRA_EXIT_IO = 4
};

/* The mapping of stepstore.c's exit_code_for(), for the codes these
   commands can meet. */
static int exit_code(sf_err code)
{
	switch (code) {
	case SF_OK:
		return EXTRA_EXIT_OK;
	case SF_ERR_INVALID:
		return EXTRA_EXIT_USAGE;
	case SF_ERR_FORMAT:
	case SF_ERR_LIMIT:
	case SF_ERR_UNSUPPORTED:
		return EXTRA_EXIT_BAD_INPUT;
	default:
		return EXTRA_EXIT_IO;
	}
}

int stepstore_load_config(int argc, char **argv, sf_config *config)
{
	const char *explicit_path = NULL;
	sf_error err = { 0 };
	int i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "stepstore: --config: expected a FILE\n");
				sf_config_init_defaults(config);
				return EXTRA_EXIT_USAGE;
			}
			explicit_path = argv[++i];
		}
	}
	sf_config_init_defaults(config);
	if (sf_config_find_and_load(config, explicit_path, &err) != SF_OK) {
		fprintf(stderr, "stepstore: %s\n", err.message);
		sf_config_release(config);
		return exit_code(err.code);
	}
	return EXTRA_EXIT_OK;
}

/* ---- config ------------------------------------------------------------- */

int stepstore_cmd_config(int argc, char **argv)
{
	sf_config config;
	int i, rc;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			i++;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: stepstore config [--config FILE]\n"
			       "prints the effective configuration as YAML, with where each value came from\n");
			return EXTRA_EXIT_OK;
		} else {
			fprintf(stderr, "stepstore: config: unexpected argument '%s' (usage: stepstore config [--config FILE])\n",
				argv[i]);
			return EXTRA_EXIT_USAGE;
		}
	}
	rc = stepstore_load_config(argc, argv, &config);
	if (rc != EXTRA_EXIT_OK)
		return rc;
	sf_config_print(&config, stdout);
	sf_config_release(&config);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "stepstore: write to standard output failed\n");
		return EXTRA_EXIT_IO;
	}
	return EXTRA_EXIT_OK;
}

/* ---- gc ----------------------------------------------------------------- */

typedef struct gc_printer {
	int dry_run;
	int header_shown;
} gc_printer;

static const char *human_size(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	double value = (double)bytes;
	size_t unit = 0;

	if (bytes < 1024) {
		snprintf(buf, size, "%u B", (unsigned)bytes);
		return buf;
	}
	value /= 1024.0;
	while (value >= 1024.0 && unit + 1 < sizeof(units) / sizeof(units[0])) {
		value /= 1024.0;
		unit++;
	}
	snprintf(buf, size, "%.1f %s", value, units[unit]);
	return buf;
}

static const char *action_word(sf_gc_action action, int dry_run)
{
	switch (action) {
	case SF_GC_KEEP: return "keep";
	case SF_GC_REMOVE: return dry_run ? "would remove" : "removed";
	case SF_GC_IN_USE: return "in use";
	case SF_GC_MOUNTED: return "mounted";
	case SF_GC_UNREADABLE: return "unreadable";
	case SF_GC_FAILED: return "failed";
	default: return "?";
	}
}

static void print_unit(void *context, const sf_gc_unit *unit)
{
	gc_printer *printer = context;
	char when[32] = "-", size[32];
	time_t last_use = (time_t)unit->last_use;
	struct tm tm;

	if (!printer->header_shown) {
		printf("%-12s  %-8s  %-16s  %10s  %s\n", "ACTION", "KIND", "LAST USE", "SIZE", "PATH");
		printer->header_shown = 1;
	}
	if (unit->kind != SF_GC_LEFTOVER && localtime_r(&last_use, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
	printf("%-12s  %-8s  %-16s  %10s  %s%s%s%s\n", action_word(unit->action, printer->dry_run),
	       sf_gc_kind_name(unit->kind), when, human_size(unit->bytes, size, sizeof(size)),
	       unit->path, unit->reason[0] ? "  (" : "", unit->reason, unit->reason[0] ? ")" : "");
}

static void gc_usage(FILE *out)
{
	fputs("usage: stepstore gc ROOT [--max-age DURATION] [--max-size SIZE] [--dry-run] [--config FILE]\n"
	      "removes the stores and caches in ROOT that were not used for DURATION (30d, 12h, 2w)\n"
	      "and, least recently used first, those over a total of SIZE (50G, 500M); stores in\n"
	      "use or mounted are kept. --dry-run lists what would go and removes nothing.\n",
	      out);
}

int stepstore_cmd_gc(int argc, char **argv)
{
	const char *root = NULL, *max_age = NULL, *max_size = NULL;
	sf_gc_options options;
	sf_gc_summary summary;
	sf_config config;
	sf_error err = { 0 };
	gc_printer printer = { 0, 0 };
	char freed[32], kept[32];
	int dry_run = 0, i, rc;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--dry-run") == 0 || strcmp(a, "-n") == 0) {
			dry_run = 1;
		} else if (strcmp(a, "--max-age") == 0 && i + 1 < argc) {
			max_age = argv[++i];
		} else if (strcmp(a, "--max-size") == 0 && i + 1 < argc) {
			max_size = argv[++i];
		} else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
			i++; /* read by stepstore_load_config() */
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			gc_usage(stdout);
			return EXTRA_EXIT_OK;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "stepstore: gc: unknown option '%s' (or a missing value)\n", a);
			gc_usage(stderr);
			return EXTRA_EXIT_USAGE;
		} else if (!root) {
			root = a;
		} else {
			fprintf(stderr, "stepstore: gc: too many arguments, expected one ROOT\n");
			return EXTRA_EXIT_USAGE;
		}
	}
	if (!root) {
		fprintf(stderr, "stepstore: gc: expected ROOT, the folder holding stores and caches\n");
		gc_usage(stderr);
		return EXTRA_EXIT_USAGE;
	}
	rc = stepstore_load_config(argc, argv, &config);
	if (rc != EXTRA_EXIT_OK)
		return rc;
	if ((max_age && sf_config_set(&config, "gc.max_age", max_age, "--max-age", &err) != SF_OK) ||
	    (max_size && sf_config_set(&config, "gc.max_size", max_size, "--max-size", &err) != SF_OK)) {
		fprintf(stderr, "stepstore: gc: %s\n", err.message);
		rc = exit_code(err.code);
		goto out;
	}
	sf_gc_options_init(&options);
	options.max_age_seconds = config.gc_max_age_seconds;
	options.max_bytes = config.gc_max_bytes;
	options.dry_run = dry_run;
	printer.dry_run = dry_run;
	if (!options.max_age_seconds && !options.max_bytes)
		fprintf(stderr, "stepstore: gc: no limit set (--max-age, --max-size, or gc.max_age and "
				"gc.max_size in the configuration): only leftovers of interrupted runs are removed\n");
	if (sf_gc_run(root, &options, print_unit, &printer, &summary, &err) != SF_OK) {
		fflush(stdout);
		fprintf(stderr, "stepstore: gc: %s\n", err.message);
		rc = exit_code(err.code);
	}
	if (summary.units == 0 && summary.removed == 0 && summary.failed == 0 && rc == EXTRA_EXIT_OK)
		printf("no stores or caches in '%s'\n", root);
	else if (rc == EXTRA_EXIT_OK || summary.units) {
		char failed[48] = "";

		if (summary.failed)
			snprintf(failed, sizeof(failed), "; %llu failed", (unsigned long long)summary.failed);
		printf("%s %llu, %s %s; kept %llu (%s)%s\n", dry_run ? "would remove" : "removed",
		       (unsigned long long)summary.removed, dry_run ? "freeing" : "freed",
		       human_size(summary.bytes_freed, freed, sizeof(freed)),
		       (unsigned long long)summary.kept,
		       human_size(summary.bytes_before > summary.bytes_freed
					  ? summary.bytes_before - summary.bytes_freed : 0,
				  kept, sizeof(kept)),
		       failed);
	}
	if (fflush(stdout) != 0 && rc == EXTRA_EXIT_OK) {
		fprintf(stderr, "stepstore: write to standard output failed\n");
		rc = EXTRA_EXIT_IO;
	}
out:
	sf_config_release(&config);
	return rc;
}
