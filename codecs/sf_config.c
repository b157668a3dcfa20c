#include "sf_config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "sf_format.h"
#include "sf_seekable.h"
#include "sf_util.h"

#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GIB (1024ull * 1024ull * 1024ull)
#define TIB (1024ull * 1024ull * 1024ull * 1024ull)
#define DAY_SECONDS 86400ull

typedef enum value_type {
	TYPE_INT,
	TYPE_SIZE,
	TYPE_DURATION,
	TYPE_BOOL,
	TYPE_DICTIONARY
} value_type;

typedef struct key_spec {
	const char *section;
	const char *name;
	const char *dotted;
	value_type type;
	int64_t min, max;      /* TYPE_INT, TYPE_SIZE (bytes), TYPE_DURATION (seconds) */
	int allow_auto;        /* "auto" is accepted and stored as 0 */
	int allow_off;         /* "off" or 0 is accepted and stored as 0 */
	const char *expected;
} key_spec;

/* In the order of sf_config_key. */
static const key_spec key_specs[SF_CONFIG_KEY_COUNT] = {
	{ "pack", "level", "pack.level", TYPE_INT, -131072, 22, 0, 0,
	  "an integer from -131072 to 22" },
	{ "pack", "frame_size", "pack.frame_size", TYPE_SIZE, 4 * KIB, 16 * MIB, 0, 0,
	  "a size from 4K to 16M, such as 256K" },
	{ "pack", "threads", "pack.threads", TYPE_INT, 1, 256, 1, 0,
	  "auto or an integer from 1 to 256" },
	{ "pack", "long_distance", "pack.long_distance", TYPE_BOOL, 0, 1, 0, 0,
	  "true or false" },
	{ "pack", "dictionary", "pack.dictionary", TYPE_DICTIONARY, 0, 2, 0, 0,
	  "auto, always or never" },
	{ "mount", "cache_size", "mount.cache_size", TYPE_SIZE, 1 * MIB, 1 * TIB, 0, 0,
	  "a size from 1M to 1T, such as 64M" },
	{ "mount", "threads", "mount.threads", TYPE_INT, 1, 1024, 0, 0,
	  "an integer from 1 to 1024" },
	{ "mount", "metadata_size", "mount.metadata_size", TYPE_SIZE, 1 * MIB, 1 * TIB, 0, 0,
	  "a size from 1M to 1T, such as 16M" },
	{ "gc", "max_age", "gc.max_age", TYPE_DURATION, 1, 3650 * DAY_SECONDS, 0, 1,
	  "off or a duration from 1s to 3650d, such as 30d (suffix s, m, h, d or w)" },
	{ "gc", "max_size", "gc.max_size", TYPE_SIZE, 1 * KIB, 1024 * TIB, 0, 1,
	  "off or a size from 1K to 1024T, such as 50G" },
};

static const char *const section_names[] = { "pack", "mount", "gc" };
#define SECTION_COUNT (sizeof(section_names) / sizeof(section_names[0]))

static const char *const dictionary_names[] = { "auto", "always", "never" };

/* ---- sizes and durations ------------------------------------------------- */

/* Leading decimal digits of text into *value; returns the end, or NULL. */
static const char *parse_digits(const char *text, uint64_t *value, const char **problem)
{
	uint64_t v = 0;
	const char *p = text;

	if (*p < '0' || *p > '9') {
		*problem = *p ? "is not a number" : "is empty";
		return NULL;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned digit = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - digit) / 10) {
			*problem = "is too large";
			return NULL;
		}
		v = v * 10 + digit;
	}
	*value = v;
	return p;
}

int sf_parse_size(const char *text, uint64_t *bytes, const char **problem)
{
	const char *dummy, *end;
	uint64_t value, unit = 1;

	if (!problem)
		problem = &dummy;
	end = parse_digits(text, &value, problem);
	if (!end)
		return 0;
	switch (*end) {
	case 'k': case 'K': unit = KIB; end++; break;
	case 'm': case 'M': unit = MIB; end++; break;
	case 'g': case 'G': unit = GIB; end++; break;
	case 't': case 'T': unit = TIB; end++; break;
	default: break;
	}
	if (unit > 1 && end[0] == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B' || (unit > 1 && *end == 'b'))
		end++;
	if (*end) {
		*problem = "has an unknown suffix (a size takes K, M, G or T)";
		return 0;
	}
	if (value > UINT64_MAX / unit) {
		*problem = "is too large";
		return 0;
	}
	*bytes = value * unit;
	return 1;
}

int sf_parse_duration(const char *text, uint64_t *seconds, const char **problem)
{
	const char *dummy, *end;
	uint64_t value, unit = 1;

	if (!problem)
		problem = &dummy;
	end = parse_digits(text, &value, problem);
	if (!end)
		return 0;
	switch (*end) {
	case 's': unit = 1; end++; break;
	case 'm': unit = 60; end++; break;
	case 'h': unit = 3600; end++; break;
	case 'd': unit = DAY_SECONDS; end++; break;
	case 'w': unit = 7 * DAY_SECONDS; end++; break;
	default: break;
	}
	if (*end) {
		*problem = "has an unknown suffix (a duration takes s, m, h, d or w)";
		return 0;
	}
	if (value > UINT64_MAX / unit) {
		*problem = "is too large";
		return 0;
	}
	*seconds = value * unit;
	return 1;
}

const char *sf_format_size(uint64_t bytes, char *buf, size_t size)
{
	static const struct { uint64_t unit; char suffix; } units[] = {
		{ TIB, 'T' }, { GIB, 'G' }, { MIB, 'M' }, { KIB, 'K' }
	};
	size_t i;

	for (i = 0; bytes && i < sizeof(units) / sizeof(units[0]); i++) {
		if (bytes % units[i].unit == 0) {
			snprintf(buf, size, "%" PRIu64 "%c", bytes / units[i].unit, units[i].suffix);
			return buf;
		}
	}
	snprintf(buf, size, "%" PRIu64, bytes);
	return buf;
}

const char *sf_format_duration(uint64_t seconds, char *buf, size_t size)
{
	static const struct { uint64_t unit; char suffix; } units[] = {
		{ 7 * DAY_SECONDS, 'w' }, { DAY_SECONDS, 'd' }, { 3600, 'h' }, { 60, 'm' }
	};
	size_t i;

	for (i = 0; seconds && i < sizeof(units) / sizeof(units[0]); i++) {
		if (seconds % units[i].unit == 0) {
			snprintf(buf, size, "%" PRIu64 "%c", seconds / units[i].unit, units[i].suffix);
			return buf;
		}
	}
	snprintf(buf, size, "%" PRIu64 "s", seconds);
	return buf;
}

/* ---- values -------------------------------------------------------------- */

static int is_null(const char *text)
{
	return !*text || strcmp(text, "~") == 0 || strcmp(text, "null") == 0 ||
	       strcmp(text, "Null") == 0 || strcmp(text, "NULL") == 0;
}

static int parse_bool(const char *text, int *value)
{
	static const char *const truths[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" };
	static const char *const lies[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" };
	size_t i;

	for (i = 0; i < sizeof(truths) / sizeof(truths[0]); i++) {
		if (strcmp(text, truths[i]) == 0) {
			*value = 1;
			return 1;
		}
		if (strcmp(text, lies[i]) == 0) {
			*value = 0;
			return 1;
		}
	}
	return 0;
}

static void store_value(sf_config *config, sf_config_key key, int64_t value)
{
	switch (key) {
	case SF_CONFIG_PACK_LEVEL: config->pack_level = (int)value; break;
	case SF_CONFIG_PACK_FRAME_SIZE: config->pack_frame_bytes = (uint64_t)value; break;
	case SF_CONFIG_PACK_THREADS: config->pack_threads = (int)value; break;
	case SF_CONFIG_PACK_LONG_DISTANCE: config->pack_long_distance = (int)value; break;
	case SF_CONFIG_PACK_DICTIONARY: config->pack_dictionary = (sf_config_dictionary)value; break;
	case SF_CONFIG_MOUNT_CACHE_SIZE: config->mount_cache_bytes = (uint64_t)value; break;
	case SF_CONFIG_MOUNT_THREADS: config->mount_threads = (int)value; break;
	case SF_CONFIG_MOUNT_METADATA_SIZE: config->mount_metadata_bytes = (uint64_t)value; break;
	case SF_CONFIG_GC_MAX_AGE: config->gc_max_age_seconds = (uint64_t)value; break;
	case SF_CONFIG_GC_MAX_SIZE: config->gc_max_bytes = (uint64_t)value; break;
	default: break;
	}
}

/*
 * Parse text as the value of key into config. `quoted`: the YAML scalar
 * was quoted, so it is a string (wrong for integers and booleans).
 * On failure writes "'TEXT' PROBLEM, expected EXPECTED" into problem.
 */
static int parse_value(sf_config *config, sf_config_key key, const char *text, int quoted,
		       char *problem, size_t problem_size)
{
	const key_spec *spec = &key_specs[key];
	const char *why = NULL;
	int64_t value = 0;
	int out_of_range = 0;

	if (!quoted && is_null(text)) {
		snprintf(problem, problem_size, "found no value, expected %s", spec->expected);
		return 0;
	}
	if (spec->allow_auto && strcmp(text, "auto") == 0)
		goto store;
	if (spec->allow_off && (strcmp(text, "off") == 0 || strcmp(text, "0") == 0))
		goto store;
	switch (spec->type) {
	case TYPE_INT: {
		char *end;
		long long parsed;

		if (quoted) {
			why = "is a quoted string";
			break;
		}
		errno = 0;
		parsed = strtoll(text, &end, 10);
		if (end == text || *end || (text[0] != '-' && text[0] != '+' && (text[0] < '0' || text[0] > '9'))) {
			why = "is not an integer";
			break;
		}
		if (errno == ERANGE || parsed < spec->min || parsed > spec->max) {
			out_of_range = 1;
			break;
		}
		value = parsed;
		break;
	}
	case TYPE_SIZE:
	case TYPE_DURATION: {
		uint64_t parsed;
		int parsed_ok = spec->type == TYPE_SIZE ? sf_parse_size(text, &parsed, &why)
							: sf_parse_duration(text, &parsed, &why);

		if (!parsed_ok) {
			if (strcmp(why, "is too large") == 0) {
				why = NULL;
				out_of_range = 1;
			}
			break;
		}
		if (parsed < (uint64_t)spec->min || parsed > (uint64_t)spec->max) {
			out_of_range = 1;
			break;
		}
		value = (int64_t)parsed;
		break;
	}
	case TYPE_BOOL: {
		int flag;

		if (quoted)
			why = "is a quoted string";
		else if (!parse_bool(text, &flag))
			why = "is not a boolean";
		else
			value = flag;
		break;
	}
	case TYPE_DICTIONARY: {
		size_t i;

		why = "is not a dictionary mode";
		for (i = 0; i < sizeof(dictionary_names) / sizeof(dictionary_names[0]); i++) {
			if (strcmp(text, dictionary_names[i]) == 0) {
				value = (int64_t)i;
				why = NULL;
			}
		}
		break;
	}
	}
	if (out_of_range)
		why = "is out of range";
	if (why) {
		snprintf(problem, problem_size, "'%.200s' %s, expected %s", text, why, spec->expected);
		return 0;
	}
store:
	store_value(config, key, value);
	return 1;
}

/* ---- defaults, release, printing ----------------------------------------- */

void sf_config_init_defaults(sf_config *config)
{
	memset(config, 0, sizeof(*config));
	config->pack_level = SF_DEFAULT_LEVEL;
	config->pack_frame_bytes = SF_DEFAULT_FRAME_BYTES;
	config->pack_threads = 0;
	config->pack_long_distance = 0;
	config->pack_dictionary = SF_CONFIG_DICTIONARY_AUTO;
	config->mount_cache_bytes = 64 * MIB;
	config->mount_threads = 10;
	config->mount_metadata_bytes = 16 * MIB;
	config->gc_max_age_seconds = 0;
	config->gc_max_bytes = 0;
}

void sf_config_release(sf_config *config)
{
	size_t i;

	for (i = 0; i < SF_CONFIG_KEY_COUNT; i++) {
		if (config->source[i].origin == SF_CONFIG_FROM_FILE)
			memset(&config->source[i], 0, sizeof(config->source[i]));
	}
	for (i = 0; i < config->file_count; i++)
		free(config->files[i]);
	free(config->files);
	config->files = NULL;
	config->file_count = 0;
}

const char *sf_config_key_name(sf_config_key key)
{
	if ((unsigned)key >= SF_CONFIG_KEY_COUNT)
		return NULL;
	return key_specs[key].dotted;
}

const char *sf_config_origin_text(const sf_config *config, sf_config_key key, char *buf,
				  size_t size)
{
	const sf_config_source *source;

	if ((unsigned)key >= SF_CONFIG_KEY_COUNT) {
		snprintf(buf, size, "unknown");
		return buf;
	}
	source = &config->source[key];
	switch (source->origin) {
	case SF_CONFIG_FROM_FILE:
		snprintf(buf, size, "%s:%lu:%lu", source->file ? source->file : "?", source->line,
			 source->column);
		break;
	case SF_CONFIG_FROM_COMMAND_LINE:
		snprintf(buf, size, "command line");
		break;
	default:
		snprintf(buf, size, "default");
		break;
	}
	return buf;
}

static const char *format_value(const sf_config *config, sf_config_key key, char *buf, size_t size)
{
	switch (key) {
	case SF_CONFIG_PACK_LEVEL:
		snprintf(buf, size, "%d", config->pack_level);
		return buf;
	case SF_CONFIG_PACK_FRAME_SIZE:
		return sf_format_size(config->pack_frame_bytes, buf, size);
	case SF_CONFIG_PACK_THREADS:
		if (config->pack_threads == 0)
			snprintf(buf, size, "auto");
		else
			snprintf(buf, size, "%d", config->pack_threads);
		return buf;
	case SF_CONFIG_PACK_LONG_DISTANCE:
		snprintf(buf, size, "%s", config->pack_long_distance ? "true" : "false");
		return buf;
	case SF_CONFIG_PACK_DICTIONARY:
		snprintf(buf, size, "%s", (unsigned)config->pack_dictionary < 3
						  ? dictionary_names[config->pack_dictionary] : "auto");
		return buf;
	case SF_CONFIG_MOUNT_CACHE_SIZE:
		return sf_format_size(config->mount_cache_bytes, buf, size);
	case SF_CONFIG_MOUNT_THREADS:
		snprintf(buf, size, "%d", config->mount_threads);
		return buf;
	case SF_CONFIG_MOUNT_METADATA_SIZE:
		return sf_format_size(config->mount_metadata_bytes, buf, size);
	case SF_CONFIG_GC_MAX_AGE:
		if (config->gc_max_age_seconds == 0) {
			snprintf(buf, size, "off");
			return buf;
		}
		return sf_format_duration(config->gc_max_age_seconds, buf, size);
	case SF_CONFIG_GC_MAX_SIZE:
		if (config->gc_max_bytes == 0) {
			snprintf(buf, size, "off");
			return buf;
		}
		return sf_format_size(config->gc_max_bytes, buf, size);
	default:
		snprintf(buf, size, "?");
		return buf;
	}
}

void sf_config_print(const sf_config *config, FILE *out)
{
	const char *section = NULL;
	size_t i;

	if (config->file_count == 0)
		fprintf(out, "# no configuration file was read: built-in defaults\n");
	for (i = 0; i < config->file_count; i++)
		fprintf(out, "# configuration file: %s\n", config->files[i]);
	for (i = 0; i < SF_CONFIG_KEY_COUNT; i++) {
		char value[64], origin[SF_ERROR_MSG_MAX], line[128];

		if (!section || strcmp(section, key_specs[i].section) != 0) {
			section = key_specs[i].section;
			fprintf(out, "%s:\n", section);
		}
		snprintf(line, sizeof(line), "  %s: %s", key_specs[i].name,
			 format_value(config, (sf_config_key)i, value, sizeof(value)));
		fprintf(out, "%-28s # %s\n", line,
			sf_config_origin_text(config, (sf_config_key)i, origin, sizeof(origin)));
	}
}

void sf_config_apply_pack(const sf_config *config, sf_pack_options *options)
{
	options->level = config->pack_level;
	options->frame_bytes = (size_t)config->pack_frame_bytes;
	if (config->pack_threads > 0)
		options->threads = config->pack_threads;
	options->long_distance = config->pack_long_distance;
	options->dictionary = config->pack_dictionary == SF_CONFIG_DICTIONARY_ALWAYS ? SF_SEEK_DICT_ALWAYS
			      : config->pack_dictionary == SF_CONFIG_DICTIONARY_NEVER ? SF_SEEK_DICT_NEVER
										 : SF_SEEK_DICT_AUTO;
}

/* ---- command line -------------------------------------------------------- */

sf_err sf_config_set(sf_config *config, const char *key, const char *text, const char *option,
		     sf_error *err)
{
	char problem[SF_ERROR_MSG_MAX / 2];
	size_t i;

	for (i = 0; i < SF_CONFIG_KEY_COUNT; i++) {
		if (strcmp(key, key_specs[i].dotted) == 0)
			break;
	}
	if (i == SF_CONFIG_KEY_COUNT)
		return sf_error_set(err, SF_ERR_INVALID, "unknown configuration key '%s'", key);
	if (!parse_value(config, (sf_config_key)i, text, 0, problem, sizeof(problem)))
		return sf_error_set(err, SF_ERR_INVALID, "%s: %s", option ? option : key, problem);
	memset(&config->source[i], 0, sizeof(config->source[i]));
	config->source[i].origin = SF_CONFIG_FROM_COMMAND_LINE;
	return SF_OK;
}

/* ---- YAML ---------------------------------------------------------------- */

typedef struct loader {
	yaml_parser_t parser;
	yaml_event_t event;      /* the current event, owned while have_event */
	int have_event;
	const char *name;
	sf_config work;          /* values only; sources below */
	sf_config_source source[SF_CONFIG_KEY_COUNT];
	int seen[SF_CONFIG_KEY_COUNT];
	unsigned long seen_line[SF_CONFIG_KEY_COUNT];
	unsigned long section_line[SECTION_COUNT];
	sf_error *err;
} loader;

static unsigned long mark_line(const yaml_mark_t *mark)
{
	return (unsigned long)mark->line + 1;
}

static unsigned long mark_column(const yaml_mark_t *mark)
{
	return (unsigned long)mark->column + 1;
}

static sf_err fail_at(loader *l, sf_err code, const yaml_mark_t *mark, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static sf_err fail_at(loader *l, sf_err code, const yaml_mark_t *mark, const char *fmt, ...)
{
	char what[SF_ERROR_MSG_MAX];
	va_list args;

	va_start(args, fmt);
	vsnprintf(what, sizeof(what), fmt, args);
	va_end(args);
	return sf_error_set(l->err, code, "'%s': line %lu, column %lu: %s", l->name, mark_line(mark),
			    mark_column(mark), what);
}

/* Advance to the next event; a syntax error becomes SF_ERR_FORMAT. */
static sf_err next_event(loader *l)
{
	if (l->have_event) {
		yaml_event_delete(&l->event);
		l->have_event = 0;
	}
	if (!yaml_parser_parse(&l->parser, &l->event)) {
		const char *problem = l->parser.problem ? l->parser.problem : "not valid YAML";

		if (l->parser.error == YAML_MEMORY_ERROR)
			return sf_error_set(l->err, SF_ERR_NOMEM, "'%s': out of memory", l->name);
		if (l->parser.context)
			return fail_at(l, SF_ERR_FORMAT, &l->parser.problem_mark,
				       "invalid YAML: %s (%s from line %lu, column %lu)", problem,
				       l->parser.context, mark_line(&l->parser.context_mark),
				       mark_column(&l->parser.context_mark));
		return fail_at(l, SF_ERR_FORMAT, &l->parser.problem_mark, "invalid YAML: %s", problem);
	}
	l->have_event = 1;
	return SF_OK;
}

/* "a mapping", "a sequence", "an alias", "'text'" for messages. */
static const char *describe_event(const yaml_event_t *event, char *buf, size_t size)
{
	switch (event->type) {
	case YAML_MAPPING_START_EVENT: return "a mapping";
	case YAML_SEQUENCE_START_EVENT: return "a sequence";
	case YAML_ALIAS_EVENT: return "an alias (aliases are not supported)";
	case YAML_SCALAR_EVENT:
		if (event->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		    is_null((const char *)event->data.scalar.value))
			return "no value";
		snprintf(buf, size, "'%.200s'", (const char *)event->data.scalar.value);
		return buf;
	default: return "something else";
	}
}

static const char *section_list(void)
{
	return "pack, mount or gc";
}

static void key_list(const char *section, char *buf, size_t size)
{
	size_t i, used = 0, count = 0, total = 0;

	for (i = 0; i < SF_CONFIG_KEY_COUNT; i++)
		total += strcmp(key_specs[i].section, section) == 0;
	buf[0] = '\0';
	for (i = 0; i < SF_CONFIG_KEY_COUNT && used < size; i++) {
		if (strcmp(key_specs[i].section, section) != 0)
			continue;
		count++;
		used += (size_t)snprintf(buf + used, size - used, "%s%s",
					 count == 1 ? "" : count == total ? " or " : ", ",
					 key_specs[i].name);
	}
}

static sf_err parse_key_value(loader *l, const char *section)
{
	char keyname[256], described[256], problem[SF_ERROR_MSG_MAX / 2];
	yaml_mark_t key_mark = l->event.start_mark;
	size_t i;
	sf_err rc;

	snprintf(keyname, sizeof(keyname), "%.100s", (const char *)l->event.data.scalar.value);
	for (i = 0; i < SF_CONFIG_KEY_COUNT; i++) {
		if (strcmp(key_specs[i].section, section) == 0 && strcmp(key_specs[i].name, keyname) == 0)
			break;
	}
	if (i == SF_CONFIG_KEY_COUNT) {
		char keys[256];

		key_list(section, keys, sizeof(keys));
		return fail_at(l, SF_ERR_INVALID, &key_mark, "unknown key '%s.%s', expected %s", section,
			       keyname, keys);
	}
	if (l->seen[i])
		return fail_at(l, SF_ERR_INVALID, &key_mark, "duplicate key '%s' (first given on line %lu)",
			       key_specs[i].dotted, l->seen_line[i]);
	l->seen[i] = 1;
	l->seen_line[i] = mark_line(&key_mark);
	rc = next_event(l);
	if (rc != SF_OK)
		return rc;
	if (l->event.type != YAML_SCALAR_EVENT)
		return fail_at(l, SF_ERR_INVALID, &l->event.start_mark, "%s: found %s, expected %s",
			       key_specs[i].dotted,
			       describe_event(&l->event, described, sizeof(described)),
			       key_specs[i].expected);
	if (!parse_value(&l->work, (sf_config_key)i, (const char *)l->event.data.scalar.value,
			 l->event.data.scalar.style != YAML_PLAIN_SCALAR_STYLE, problem, sizeof(problem)))
		return fail_at(l, SF_ERR_INVALID, &l->event.start_mark, "%s: %s", key_specs[i].dotted,
			       problem);
	l->source[i].origin = SF_CONFIG_FROM_FILE;
	l->source[i].line = mark_line(&l->event.start_mark);
	l->source[i].column = mark_column(&l->event.start_mark);
	return SF_OK;
}

static sf_err parse_section(loader *l, size_t section)
{
	const char *name = section_names[section];
	char described[256], keys[256];
	sf_err rc;

	rc = next_event(l);
	if (rc != SF_OK)
		return rc;
	key_list(name, keys, sizeof(keys));
	if (l->event.type == YAML_SCALAR_EVENT &&
	    l->event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    is_null((const char *)l->event.data.scalar.value))
		return SF_OK; /* "pack:" with nothing below: an empty section */
	if (l->event.type != YAML_MAPPING_START_EVENT)
		return fail_at(l, SF_ERR_INVALID, &l->event.start_mark,
			       "%s: found %s, expected a mapping of keys (%s)", name,
			       describe_event(&l->event, described, sizeof(described)), keys);
	for (;;) {
		rc = next_event(l);
		if (rc != SF_OK)
			return rc;
		if (l->event.type == YAML_MAPPING_END_EVENT)
			return SF_OK;
		if (l->event.type != YAML_SCALAR_EVENT)
			return fail_at(l, SF_ERR_INVALID, &l->event.start_mark,
				       "%s: found %s where a key belongs, expected %s", name,
				       describe_event(&l->event, described, sizeof(described)), keys);
		rc = parse_key_value(l, name);
		if (rc != SF_OK)
			return rc;
	}
}

static sf_err parse_root(loader *l)
{
	char described[256];
	sf_err rc;

	rc = next_event(l);
	if (rc != SF_OK)
		return rc;
	if (l->event.type == YAML_SCALAR_EVENT &&
	    l->event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    is_null((const char *)l->event.data.scalar.value))
		return SF_OK; /* "---" alone: nothing configured */
	if (l->event.type != YAML_MAPPING_START_EVENT)
		return fail_at(l, SF_ERR_INVALID, &l->event.start_mark,
			       "found %s, expected a mapping of sections (%s)",
			       describe_event(&l->event, described, sizeof(described)), section_list());
	for (;;) {
		const char *key;
		size_t i;

		rc = next_event(l);
		if (rc != SF_OK)
			return rc;
		if (l->event.type == YAML_MAPPING_END_EVENT)
			return SF_OK;
		if (l->event.type != YAML_SCALAR_EVENT)
			return fail_at(l, SF_ERR_INVALID, &l->event.start_mark,
				       "found %s where a section name belongs, expected %s",
				       describe_event(&l->event, described, sizeof(described)),
				       section_list());
		key = (const char *)l->event.data.scalar.value;
		for (i = 0; i < SECTION_COUNT; i++) {
			if (strcmp(key, section_names[i]) == 0)
				break;
		}
		if (i == SECTION_COUNT)
			return fail_at(l, SF_ERR_INVALID, &l->event.start_mark,
				       "unknown section '%.100s', expected %s", key, section_list());
		if (l->section_line[i])
			return fail_at(l, SF_ERR_INVALID, &l->event.start_mark,
				       "duplicate section '%s' (first given on line %lu)", key,
				       l->section_line[i]);
		l->section_line[i] = mark_line(&l->event.start_mark);
		rc = parse_section(l, i);
		if (rc != SF_OK)
			return rc;
	}
}

static sf_err parse_stream(loader *l)
{
	sf_err rc;

	rc = next_event(l);
	if (rc != SF_OK)
		return rc;
	if (l->event.type != YAML_STREAM_START_EVENT)
		return fail_at(l, SF_ERR_FORMAT, &l->event.start_mark, "expected the start of a YAML stream");
	rc = next_event(l);
	if (rc != SF_OK)
		return rc;
	if (l->event.type == YAML_STREAM_END_EVENT)
		return SF_OK; /* an empty file */
	if (l->event.type != YAML_DOCUMENT_START_EVENT)
		return fail_at(l, SF_ERR_FORMAT, &l->event.start_mark, "expected a YAML document");
	rc = parse_root(l);
	if (rc != SF_OK)
		return rc;
	rc = next_event(l);
	if (rc != SF_OK)
		return rc;
	if (l->event.type != YAML_DOCUMENT_END_EVENT)
		return fail_at(l, SF_ERR_FORMAT, &l->event.start_mark, "expected the end of the document");
	rc = next_event(l);
	if (rc != SF_OK)
		return rc;
	if (l->event.type != YAML_STREAM_END_EVENT)
		return fail_at(l, SF_ERR_FORMAT, &l->event.start_mark,
			       "found a second YAML document, expected one");
	return SF_OK;
}

/* Remember name in config->files; the returned copy is owned by config. */
static const char *keep_file_name(sf_config *config, const char *name)
{
	char **grown;
	char *copy = sf_strdup(name);

	if (!copy)
		return NULL;
	grown = realloc(config->files, (config->file_count + 1) * sizeof(*grown));
	if (!grown) {
		free(copy);
		return NULL;
	}
	config->files = grown;
	config->files[config->file_count++] = copy;
	return copy;
}

sf_err sf_config_load_mem(sf_config *config, const void *data, size_t size, const char *name,
			  sf_error *err)
{
	loader *l;
	const char *kept;
	size_t i;
	sf_err rc;

	if (!name)
		name = "<memory>";
	if (size > SF_CONFIG_MAX_BYTES)
		return sf_error_set(err, SF_ERR_LIMIT, "'%s': %zu bytes, expected a configuration file of at most %d bytes",
				    name, size, SF_CONFIG_MAX_BYTES);
	l = calloc(1, sizeof(*l));
	if (!l)
		return sf_error_set(err, SF_ERR_NOMEM, "'%s': out of memory", name);
	l->name = name;
	l->err = err;
	l->work = *config;
	if (!yaml_parser_initialize(&l->parser)) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "'%s': out of memory", name);
		goto out_free;
	}
	yaml_parser_set_input_string(&l->parser, (const unsigned char *)data, size);
	rc = parse_stream(l);
	if (rc != SF_OK)
		goto out_parser;
	kept = keep_file_name(config, name);
	if (!kept) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "'%s': out of memory", name);
		goto out_parser;
	}
	for (i = 0; i < SF_CONFIG_KEY_COUNT; i++) {
		if (l->source[i].origin != SF_CONFIG_FROM_FILE)
			continue;
		config->source[i] = l->source[i];
		config->source[i].file = kept;
	}
	config->pack_level = l->work.pack_level;
	config->pack_frame_bytes = l->work.pack_frame_bytes;
	config->pack_threads = l->work.pack_threads;
	config->pack_long_distance = l->work.pack_long_distance;
	config->pack_dictionary = l->work.pack_dictionary;
	config->mount_cache_bytes = l->work.mount_cache_bytes;
	config->mount_threads = l->work.mount_threads;
	config->mount_metadata_bytes = l->work.mount_metadata_bytes;
	config->gc_max_age_seconds = l->work.gc_max_age_seconds;
	config->gc_max_bytes = l->work.gc_max_bytes;
out_parser:
	if (l->have_event)
		yaml_event_delete(&l->event);
	yaml_parser_delete(&l->parser);
out_free:
	free(l);
	return rc;
}

sf_err sf_config_load_file(sf_config *config, const char *path, sf_error *err)
{
	struct stat st;
	char *data = NULL;
	size_t used = 0;
	int fd, saved;
	sf_err rc = SF_OK;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		saved = errno;
		if (saved == ENOENT || saved == ENOTDIR)
			return sf_error_set(err, SF_ERR_NOTFOUND, "'%s': no such configuration file", path);
		return sf_error_io(err, saved, "'%s': cannot open", path);
	}
	if (fstat(fd, &st) != 0) {
		rc = sf_error_io(err, errno, "'%s': cannot stat", path);
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = sf_error_set(err, SF_ERR_INVALID, "'%s': not a regular file, expected a YAML file", path);
		goto out_close;
	}
	if (st.st_size > SF_CONFIG_MAX_BYTES) {
		rc = sf_error_set(err, SF_ERR_LIMIT, "'%s': %lld bytes, expected a configuration file of at most %d bytes",
				  path, (long long)st.st_size, SF_CONFIG_MAX_BYTES);
		goto out_close;
	}
	/* One byte more than the limit, to notice a file that grew. */
	data = malloc(SF_CONFIG_MAX_BYTES + 1);
	if (!data) {
		rc = sf_error_set(err, SF_ERR_NOMEM, "'%s': out of memory", path);
		goto out_close;
	}
	for (;;) {
		ssize_t got = read(fd, data + used, SF_CONFIG_MAX_BYTES + 1 - used);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = sf_error_io(err, errno, "'%s': byte %zu: cannot read", path, used);
			goto out_free;
		}
		if (got == 0)
			break;
		used += (size_t)got;
		if (used > SF_CONFIG_MAX_BYTES) {
			rc = sf_error_set(err, SF_ERR_LIMIT, "'%s': expected a configuration file of at most %d bytes",
					  path, SF_CONFIG_MAX_BYTES);
			goto out_free;
		}
	}
	rc = sf_config_load_mem(config, data, used, path, err);
out_free:
	free(data);
out_close:
	close(fd);
	return rc;
}

sf_err sf_config_find_and_load(sf_config *config, const char *explicit_path, sf_error *err)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	char *user_path = NULL;
	sf_err rc;

	if (explicit_path)
		return sf_config_load_file(config, explicit_path, err);
	if (xdg && xdg[0] == '/') {
		user_path = sf_path_join(xdg, SF_CONFIG_USER_PATH);
	} else {
		const char *home = getenv("HOME");
		char *config_home;

		if (!home || home[0] != '/') {
			struct passwd *pw = getpwuid(getuid());

			home = pw ? pw->pw_dir : NULL;
		}
		if (home) {
			config_home = sf_path_join(home, ".config");
			if (config_home)
				user_path = sf_path_join(config_home, SF_CONFIG_USER_PATH);
			free(config_home);
			if (!user_path)
				return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
		}
	}
	if (user_path) {
		rc = sf_config_load_file(config, user_path, err);
		free(user_path);
		if (rc != SF_ERR_NOTFOUND)
			return rc;
	}
	rc = sf_config_load_file(config, SF_CONFIG_SYSTEM_PATH, err);
	if (rc == SF_ERR_NOTFOUND) {
		if (err)
			memset(err, 0, sizeof(*err));
		return SF_OK;
	}
	return rc;
}
