#include "sf_pipeline_yaml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "sf_util.h"

#define MAX_STEPS 100000
#define MAX_YAML_DEPTH 256

void sf_pipeline_yaml_names_free(char **names, size_t count)
{
	size_t i;

	for (i = 0; names && i < count; i++)
		free(names[i]);
	free(names);
}

/*
 * A small state machine over libyaml events. Depth counts open mappings and
 * sequences; we track where we are by remembering at which depth the
 * interesting keys were seen.
 */
typedef struct walker {
	int depth;
	int expecting_key[MAX_YAML_DEPTH + 1]; /* per mapping depth: next scalar is a key */
	int is_mapping[MAX_YAML_DEPTH + 1];
	char *last_key[MAX_YAML_DEPTH + 1];
	int pipeline_depth;   /* depth of the mapping that is pipeline's value */
	int steps_depth;      /* depth of the sequence that is pipeline.steps */
	char **names;
	size_t count, capacity;
} walker;

static int push_name(walker *w, const char *value, size_t len)
{
	if (w->count == w->capacity) {
		size_t cap = w->capacity ? w->capacity * 2 : 16;
		char **grown;

		if (cap > MAX_STEPS)
			return 0;
		grown = realloc(w->names, cap * sizeof(*grown));
		if (!grown)
			return 0;
		w->names = grown;
		w->capacity = cap;
	}
	w->names[w->count] = sf_strndup(value, len);
	if (!w->names[w->count])
		return 0;
	w->count++;
	return 1;
}

static sf_err run(yaml_parser_t *parser, const char *name, char ***names,
		  size_t *count, sf_error *err)
{
	walker w;
	sf_err rc = SF_OK;
	int done = 0, i;

	memset(&w, 0, sizeof(w));
	w.pipeline_depth = -1;
	w.steps_depth = -1;
	while (!done) {
		yaml_event_t event;
		const char *key;

		if (!yaml_parser_parse(parser, &event)) {
			rc = sf_error_set(err, SF_ERR_FORMAT, "'%s': line %zu, column %zu: %s",
					  name, parser->problem_mark.line + 1,
					  parser->problem_mark.column + 1,
					  parser->problem ? parser->problem : "invalid YAML");
			break;
		}
		key = w.depth > 0 ? w.last_key[w.depth] : NULL;
		switch (event.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT: {
			int parent = w.depth;
			int parent_is_mapping = parent > 0 && w.is_mapping[parent];

			if (w.depth >= MAX_YAML_DEPTH) {
				rc = sf_error_set(err, SF_ERR_LIMIT, "'%s': line %zu: nesting deeper than %d",
						  name, event.start_mark.line + 1, MAX_YAML_DEPTH);
				done = 1;
				break;
			}
			w.depth++;
			w.is_mapping[w.depth] = event.type == YAML_MAPPING_START_EVENT;
			w.expecting_key[w.depth] = 1;
			w.last_key[w.depth] = NULL;
			if (parent_is_mapping) {
				/* a value: the parent's next scalar is a key again */
				w.expecting_key[parent] = 1;
				if (parent == 1 && key && strcmp(key, "pipeline") == 0 &&
				    event.type == YAML_MAPPING_START_EVENT)
					w.pipeline_depth = w.depth;
				if (parent == w.pipeline_depth && key && strcmp(key, "steps") == 0 &&
				    event.type == YAML_SEQUENCE_START_EVENT)
					w.steps_depth = w.depth;
			}
			break;
		}
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			free(w.last_key[w.depth]);
			w.last_key[w.depth] = NULL;
			if (w.depth == w.steps_depth)
				w.steps_depth = -2; /* only the first steps list counts */
			if (w.depth == w.pipeline_depth)
				w.pipeline_depth = -2;
			w.depth--;
			break;
		case YAML_SCALAR_EVENT:
			if (w.depth > 0 && w.is_mapping[w.depth]) {
				if (w.expecting_key[w.depth]) {
					free(w.last_key[w.depth]);
					w.last_key[w.depth] = sf_strndup((const char *)event.data.scalar.value,
									 event.data.scalar.length);
					w.expecting_key[w.depth] = 0;
				} else {
					/* a step item is a mapping directly inside the steps list */
					if (w.steps_depth > 0 && w.depth == w.steps_depth + 1 && key &&
					    strcmp(key, "name") == 0 &&
					    !push_name(&w, (const char *)event.data.scalar.value,
						       event.data.scalar.length)) {
						rc = sf_error_set(err, SF_ERR_LIMIT, "'%s': too many steps", name);
						done = 1;
					}
					w.expecting_key[w.depth] = 1;
				}
			}
			break;
		case YAML_ALIAS_EVENT:
			if (w.depth > 0 && w.is_mapping[w.depth])
				w.expecting_key[w.depth] = !w.expecting_key[w.depth];
			break;
		default:
			break;
		}
		yaml_event_delete(&event);
	}
	for (i = 0; i <= MAX_YAML_DEPTH; i++)
		free(w.last_key[i]);
	if (rc != SF_OK) {
		sf_pipeline_yaml_names_free(w.names, w.count);
		return rc;
	}
	*names = w.names;
	*count = w.count;
	return SF_OK;
}

sf_err sf_pipeline_yaml_steps_mem(const void *data, size_t len, const char *name,
				  char ***names, size_t *count, sf_error *err)
{
	yaml_parser_t parser;
	sf_err rc;

	*names = NULL;
	*count = 0;
	if (!yaml_parser_initialize(&parser))
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	yaml_parser_set_input_string(&parser, data, len);
	rc = run(&parser, name, names, count, err);
	yaml_parser_delete(&parser);
	return rc;
}

sf_err sf_pipeline_yaml_steps(const char *path, char ***names, size_t *count,
			      sf_error *err)
{
	yaml_parser_t parser;
	FILE *file;
	sf_err rc;

	*names = NULL;
	*count = 0;
	file = fopen(path, "rb");
	if (!file)
		return sf_error_io(err, errno, "'%s': cannot open", path);
	if (!yaml_parser_initialize(&parser)) {
		fclose(file);
		return sf_error_set(err, SF_ERR_NOMEM, "out of memory");
	}
	yaml_parser_set_input_file(&parser, file);
	rc = run(&parser, path, names, count, err);
	yaml_parser_delete(&parser);
	fclose(file);
	return rc;
}
